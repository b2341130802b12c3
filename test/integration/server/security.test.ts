import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRuntimeKernel } from "../../../src/index.js";
import {
  createRuntimeClient,
  type RuntimeServiceError,
  serveRuntimeKernel,
} from "../../../src/server/index.js";
import { FakeBackend } from "../../../src/testing/index.js";
import { PROFILES, socketDir, startHarness } from "./harness.js";

const newKernel = () => createRuntimeKernel({ backend: new FakeBackend(), profiles: PROFILES });

describe("who may call the service", () => {
  describe("with a bearer token", () => {
    it("refuses calls without the token or with a wrong one (UNAUTHENTICATED), and serves the right one", async () => {
      const h = await startHarness({ server: { token: "s3cret-token" }, client: { token: "s3cret-token" } });
      try {
        expect((await h.client.create({ workloadId: "w1", profile: "default" })).state).toBe("running");
        for (const client of [
          h.connect({}),
          h.connect({ token: "wrong-token!" }),
          h.connect({ token: "s3cret-token-and-more" }),
        ]) {
          const error = (await client.list().catch((e: unknown) => e)) as RuntimeServiceError;
          expect([error.statusName, error.fromKernel]).toEqual(["UNAUTHENTICATED", false]);
          expect(error.message).toBe("missing or wrong bearer token");
          const streamError = await (async () => {
            for await (const _ of client.events({ sinceSeq: 0 })) return "got an event";
          })().catch((e: RuntimeServiceError) => e.statusName);
          expect(streamError).toBe("UNAUTHENTICATED");
        }
        expect(h.fake.started).toBe(1);
      } finally {
        await h.close();
      }
    });

    it("answers health checks without a token: they reveal nothing but whether it serves", async () => {
      const h = await startHarness({ server: { token: "s3cret-token" } });
      try {
        expect(await h.client.health()).toBe("SERVING");
      } finally {
        await h.close();
      }
    });
  });

  describe("over TLS", () => {
    let pki: string;
    beforeAll(() => {
      pki = mkdtempSync(join(tmpdir(), "rk-tls-"));
      const run = (...args: string[]) => execFileSync("openssl", args, { cwd: pki, stdio: "pipe" });
      run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=rk-test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
      );
      run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
      );
      writeFileSync(join(pki, "san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
      run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
      );
    });
    afterAll(() => rmSync(pki, { recursive: true, force: true }));
    const pem = (name: string) => readFileSync(join(pki, name));

    it("serves a client that trusts its CA, and refuses a plaintext one", async () => {
      const server = await serveRuntimeKernel(newKernel(), {
        address: "127.0.0.1:0",
        tls: { cert: pem("server.crt"), key: pem("server.key") },
      });
      // The certificate names "localhost"; SNI carries a name, never an IP.
      const secure = createRuntimeClient(server.address, {
        tls: { ca: pem("ca.crt"), serverName: "localhost" },
      });
      const plain = createRuntimeClient(server.address);
      try {
        expect(server.address).toMatch(/^127\.0\.0\.1:\d+$/);
        expect((await secure.create({ workloadId: "w1", profile: "default" })).state).toBe("running");
        const error = (await plain
          .list({}, { timeoutMs: 2_000 })
          .catch((e: unknown) => e)) as RuntimeServiceError;
        expect(["UNAVAILABLE", "DEADLINE_EXCEEDED"]).toContain(error.statusName);
      } finally {
        secure.close();
        plain.close();
        await server.close();
      }
    });
  });

  describe("where it listens", () => {
    it("refuses a plaintext listener that other machines could reach, naming the address", async () => {
      await expect(serveRuntimeKernel(newKernel(), { address: "0.0.0.0:0" })).rejects.toThrow(
        /address: 0\.0\.0\.0 is reachable from other machines: serve it with tls/,
      );
    });

    it("listens by default on a unix socket private to the user, where clients look by default", async () => {
      const runtimeDir = mkdtempSync(join(tmpdir(), "rk-xdg-"));
      const saved = { xdg: process.env.XDG_RUNTIME_DIR, address: process.env.RUNTIME_KERNEL_ADDRESS };
      process.env.XDG_RUNTIME_DIR = runtimeDir;
      delete process.env.RUNTIME_KERNEL_ADDRESS;
      try {
        const server = await serveRuntimeKernel(newKernel());
        const socket = join(runtimeDir, "runtime-kernel", "runtime.sock");
        expect(server.address).toBe(`unix:${socket}`);
        expect(statSync(join(runtimeDir, "runtime-kernel")).mode & 0o777).toBe(0o700);
        const client = createRuntimeClient();
        expect(await client.health()).toBe("SERVING");
        client.close();
        await server.close();
        expect(existsSync(socket)).toBe(false);
      } finally {
        if (saved.xdg === undefined) delete process.env.XDG_RUNTIME_DIR;
        else process.env.XDG_RUNTIME_DIR = saved.xdg;
        if (saved.address !== undefined) process.env.RUNTIME_KERNEL_ADDRESS = saved.address;
        rmSync(runtimeDir, { recursive: true, force: true });
      }
    });

    it("replaces a socket left behind by a server that died", async () => {
      const dir = socketDir();
      const path = join(dir, "rk.sock");
      // What a SIGKILLed server leaves: a socket file that nobody listens on any more.
      const script = `require("net").createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, "SIGKILL"))`;
      expect(spawnSync(process.execPath, ["-e", script]).signal).toBe("SIGKILL");
      expect(statSync(path).isSocket()).toBe(true);
      const server = await serveRuntimeKernel(newKernel(), { address: `unix:${path}` });
      const client = createRuntimeClient(server.address);
      try {
        expect(await client.health()).toBe("SERVING");
      } finally {
        client.close();
        await server.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("refuses to take over the socket of a server that is alive", async () => {
      const h = await startHarness();
      try {
        await expect(serveRuntimeKernel(newKernel(), { address: h.server.address })).rejects.toThrow(
          "address: another server is already listening on",
        );
        expect(await h.client.health()).toBe("SERVING");
      } finally {
        await h.close();
      }
    });
  });
});
