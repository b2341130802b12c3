import { type ChildProcess, spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from "node:net";
import { join, resolve } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { EgressProxyOptions } from "../../../src/gestalt/egress.js";

/**
 * The egress proxy in its own process (test/fixtures/gestalt/egress-proxy.ts), driven over
 * raw sockets as a confined plugin could: silent and idle connections, many connections from
 * one client, and a Host header that names a host the allow-list does not.
 */
const ROOT = resolve(import.meta.dirname, "../../..");

let target: Server;
let targetPort: number;
let targetConnections = 0;
const proxies: ChildProcess[] = [];
const sockets: Socket[] = [];

beforeAll(async () => {
  target = createServer((req, res) => res.end(`hello from ${req.headers.host}${req.url}`));
  target.on("connection", () => targetConnections++);
  // "localhost" as the proxy will resolve it, whichever address family comes first.
  await new Promise<void>((r) => target.listen(0, "localhost", r));
  targetPort = (target.address() as AddressInfo).port;
});

afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(
    proxies.splice(0).map((p) => {
      const closed = new Promise((r) => p.once("close", r));
      p.kill("SIGTERM");
      return closed;
    }),
  );
});

afterAll(async () => {
  target.closeAllConnections();
  await new Promise((r) => target.close(r));
});

/** Starts a proxy process with `options` and resolves with its port. */
async function startProxy(options: EgressProxyOptions): Promise<number> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      import.meta.resolve("tsx"),
      join(ROOT, "test/fixtures/gestalt/egress-proxy.ts"),
      JSON.stringify(options),
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  proxies.push(child);
  let output = "";
  return new Promise<number>((ready, fail) => {
    const read = (c: Buffer) => {
      output += c;
      const m = /proxy http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
      if (m) ready(Number(m[1]));
    };
    child.stdout!.on("data", read);
    child.stderr!.on("data", read);
    child.on("close", (code) => fail(new Error(`proxy exited with ${code}:\n${output}`)));
  });
}

/** A raw connection to the proxy, from `localAddress`; `text()` is what it received so far. */
async function open(port: number, localAddress = "127.0.0.1") {
  const socket = connect({ port, host: "127.0.0.1", localAddress });
  sockets.push(socket);
  let received = "";
  socket.on("data", (c: Buffer) => (received += c));
  socket.on("error", () => {});
  const closed = new Promise<void>((r) => socket.once("close", () => r()));
  await new Promise<void>((r, f) => {
    socket.once("connect", () => r());
    socket.once("error", f);
  });
  /** Resolves once the received text matches `pattern`. */
  const until = (pattern: RegExp) =>
    new Promise<string>((done, fail) => {
      const check = () => {
        if (pattern.test(received)) {
          socket.off("data", check);
          done(received);
        }
      };
      socket.on("data", check);
      socket.once("close", () => (pattern.test(received) ? done(received) : fail(new Error(received))));
      check();
    });
  return { socket, closed, until, text: () => received };
}

const get = (path: string, host: string, keepAlive = false) =>
  `GET http://localhost:${targetPort}${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: ${keepAlive ? "keep-alive" : "close"}\r\n\r\n`;

describe("the egress proxy's timeouts", () => {
  it("closes a connection that never sends its headers", async () => {
    const port = await startProxy({ headersTimeoutMs: 200, requestTimeoutMs: 400 });
    const silent = await open(port);
    const partial = await open(port);
    partial.socket.write(`GET http://localhost:${targetPort}/ HTTP/1.1\r\nHost: loc`);
    await Promise.all([silent.closed, partial.closed]);
    expect(partial.text()).toMatch(/^HTTP\/1\.1 408/);
  }, 20_000);

  it("closes a kept-alive connection once it has been idle", async () => {
    const port = await startProxy({ allowedHosts: ["localhost"], idleTimeoutMs: 300 });
    const client = await open(port);
    client.socket.write(get("/first", `localhost:${targetPort}`, true));
    await client.until(/hello from localhost:\d+\/first/);
    await client.closed;
  }, 20_000);

  it("answers 504 and closes when the upstream accepts a request and never answers", async () => {
    const silent = createNetServer(() => {});
    await new Promise<void>((r) => silent.listen(0, "localhost", r));
    try {
      const port = await startProxy({ allowedHosts: ["localhost"], idleTimeoutMs: 300 });
      const client = await open(port);
      const silentPort = (silent.address() as AddressInfo).port;
      client.socket.write(
        `GET http://localhost:${silentPort}/ HTTP/1.1\r\nHost: localhost:${silentPort}\r\n\r\n`,
      );
      await client.closed;
      expect(client.text()).toMatch(/^HTTP\/1\.1 504/);
    } finally {
      silent.close();
    }
  }, 20_000);

  it("closes a CONNECT tunnel once it has been idle", async () => {
    const port = await startProxy({ allowedHosts: ["localhost"], idleTimeoutMs: 300 });
    const client = await open(port);
    client.socket.write(`CONNECT localhost:${targetPort} HTTP/1.1\r\nHost: localhost:${targetPort}\r\n\r\n`);
    await client.until(/^HTTP\/1\.1 200/);
    await client.closed;
  }, 20_000);
});

describe("the egress proxy's connection cap", () => {
  it("refuses a client over its cap with 429 while another client is served", async () => {
    const port = await startProxy({ allowedHosts: ["localhost"], maxConnectionsPerClient: 3 });
    // Three connections from one client, each proven accepted by an answer, kept open.
    for (let i = 0; i < 3; i++) {
      const c = await open(port, "127.0.0.2");
      c.socket.write(get(`/held-${i}`, `localhost:${targetPort}`, true));
      await c.until(new RegExp(`/held-${i}`));
    }
    const fourth = await open(port, "127.0.0.2");
    fourth.socket.write(get("/one-too-many", `localhost:${targetPort}`));
    expect(await fourth.until(/^HTTP\/1\.1 429/)).toContain("3 connections already open from 127.0.0.2");
    await fourth.closed;
    expect(fourth.text()).not.toContain("one-too-many");
    const other = await open(port, "127.0.0.3");
    other.socket.write(get("/served", `localhost:${targetPort}`));
    expect(await other.until(/hello from localhost:\d+\/served/)).toMatch(/^HTTP\/1\.1 200/);
  }, 20_000);
});

describe("the egress proxy's Host check", () => {
  it("refuses a request whose Host header names a host the allow-list does not, sending nothing", async () => {
    const port = await startProxy({ allowedHosts: ["localhost"] });
    const before = targetConnections;
    const fronted = await open(port);
    fronted.socket.write(get("/", "forbidden.test"));
    expect(await fronted.until(/^HTTP\/1\.1 403/)).toContain("Host header forbidden.test is not allowed");
    const tunnel = await open(port);
    tunnel.socket.write(`CONNECT localhost:${targetPort} HTTP/1.1\r\nHost: forbidden.test:443\r\n\r\n`);
    await tunnel.until(/^HTTP\/1\.1 403/);
    expect(targetConnections).toBe(before);
  }, 20_000);

  it("forwards a request whose Host header is allowed, or names the proxy itself", async () => {
    const port = await startProxy({ allowedHosts: ["localhost"] });
    for (const host of [`localhost:${targetPort}`, `127.0.0.1:${port}`]) {
      const client = await open(port);
      client.socket.write(get("/ok", host));
      expect(await client.until(/hello from/)).toMatch(`hello from localhost:${targetPort}/ok`);
    }
  }, 20_000);
});
