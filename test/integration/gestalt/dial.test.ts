/**
 * Dialling hosted plugins back: unix, tcp and tls targets against real gRPC servers, and
 * what a TLS dial sends (TLS 1.2 or later, SNI = the target's host, ALPN h2).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createSecureServer, type Http2SecureServer } from "node:http2";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer as createTlsServer, type TLSSocket } from "node:tls";
import { credentials, Server, ServerCredentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  HealthCheckResponse_ServingStatus,
  HealthClient,
  HealthService,
} from "../../../src/gen/grpc/health/v1/health.js";
import { dialHostedPlugin } from "../../../src/gestalt/index.js";

let dir: string;
let cert: Buffer;
let key: Buffer;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "rk-gdl-"));
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost",
      "-keyout",
      join(dir, "key.pem"),
      "-out",
      join(dir, "cert.pem"),
    ],
    { stdio: "ignore" },
  );
  cert = readFileSync(join(dir, "cert.pem"));
  key = readFileSync(join(dir, "key.pem"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function healthServer(
  address: string,
  creds = ServerCredentials.createInsecure(),
): Promise<{ server: Server; port: number }> {
  const server = new Server();
  server.addService(HealthService, {
    check: (_call: unknown, cb: (e: null, r: { status: number }) => void) =>
      cb(null, { status: HealthCheckResponse_ServingStatus.SERVING }),
    watch: () => {},
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, creds, (e, p) => (e ? reject(e) : resolve(p))),
  );
  return { server, port };
}

async function check(channel: Awaited<ReturnType<typeof dialHostedPlugin>>["channel"]): Promise<number> {
  const client = new HealthClient("localhost", credentials.createInsecure(), { channelOverride: channel });
  return new Promise((resolve, reject) =>
    client.check({ service: "" }, (e, r) => (e ? reject(e) : resolve(r.status))),
  );
}

describe("dialHostedPlugin", () => {
  it("dials unix://PATH and a bare path to a Ready channel", async () => {
    const path = join(dir, "plugin.sock");
    const { server } = await healthServer(`unix:${path}`);
    try {
      for (const target of [`unix://${path}`, path]) {
        const { channel, target: parsed } = await dialHostedPlugin(target);
        expect(parsed.scheme).toBe("unix");
        expect(await check(channel)).toBe(HealthCheckResponse_ServingStatus.SERVING);
        channel.close();
      }
    } finally {
      server.forceShutdown();
    }
  });

  it("dials tcp://HOST:PORT without TLS", async () => {
    const { server, port } = await healthServer("127.0.0.1:0");
    try {
      const { channel } = await dialHostedPlugin(`tcp://127.0.0.1:${port}`);
      expect(await check(channel)).toBe(HealthCheckResponse_ServingStatus.SERVING);
      channel.close();
    } finally {
      server.forceShutdown();
    }
  });

  it("dials tls://HOST:PORT, verifying the server against the given roots", async () => {
    const { server, port } = await healthServer(
      "127.0.0.1:0",
      ServerCredentials.createSsl(null, [{ cert_chain: cert, private_key: key }]),
    );
    try {
      const { channel } = await dialHostedPlugin(`tls://localhost:${port}`, { tls: { ca: cert } });
      expect(await check(channel)).toBe(HealthCheckResponse_ServingStatus.SERVING);
      channel.close();
      // Without the root the certificate is not trusted: never Ready.
      await expect(dialHostedPlugin(`tls://localhost:${port}`, { timeoutMs: 1_000 })).rejects.toThrow(
        /not Ready/,
      );
    } finally {
      server.forceShutdown();
    }
  });

  it("sends TLS 1.2 or later, SNI = the target's host, and ALPN h2", async () => {
    const seen: { servername: string | false; alpn: string | false | null; protocol: string | null }[] = [];
    const server: Http2SecureServer = createSecureServer({ cert, key, allowHTTP1: false });
    server.on("secureConnection", (socket: TLSSocket) =>
      seen.push({
        servername: (socket as TLSSocket & { servername: string | false }).servername,
        alpn: socket.alpnProtocol,
        protocol: socket.getProtocol(),
      }),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    try {
      const { channel } = await dialHostedPlugin(`tls://localhost:${port}`, { tls: { ca: cert } });
      channel.close();
      expect(seen[0]?.servername).toBe("localhost");
      expect(seen[0]?.alpn).toBe("h2");
      expect(["TLSv1.2", "TLSv1.3"]).toContain(seen[0]?.protocol);
    } finally {
      server.close();
    }
  });

  it("refuses a server that offers only TLS 1.1", async () => {
    const server = createTlsServer({
      cert,
      key,
      minVersion: "TLSv1",
      maxVersion: "TLSv1.1",
      ALPNProtocols: ["h2"],
    });
    let handshakes = 0;
    server.on("secureConnection", (s) => {
      handshakes++;
      s.destroy();
    });
    server.on("tlsClientError", () => {});
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as AddressInfo).port;
    try {
      await expect(
        dialHostedPlugin(`tls://localhost:${port}`, { tls: { ca: cert }, timeoutMs: 1_000 }),
      ).rejects.toThrow(/not Ready/);
      expect(handshakes).toBe(0);
    } finally {
      server.close();
    }
  });

  it("gives up at the deadline when nothing listens, and honours an abort", async () => {
    await expect(dialHostedPlugin(`unix://${join(dir, "nobody.sock")}`, { timeoutMs: 300 })).rejects.toThrow(
      /not Ready before the deadline/,
    );
    const controller = new AbortController();
    const dialing = dialHostedPlugin(`unix://${join(dir, "nobody.sock")}`, { signal: controller.signal });
    controller.abort(new Error("the session died"));
    await expect(dialing).rejects.toThrow("the session died");
  });
});
