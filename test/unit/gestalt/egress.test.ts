import { createServer, request, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createEgressProxy,
  type EgressDecision,
  type EgressProxy,
  isHostAllowed,
} from "../../../src/gestalt/egress.js";

describe("isHostAllowed", () => {
  it("with an allow-list, passes only listed hosts, exact or *.suffix, case-insensitive", () => {
    const policy = { allowedHosts: ["api.example.com", "*.GitHub.com"] };
    expect(isHostAllowed("api.example.com", policy)).toBe(true);
    expect(isHostAllowed("API.Example.COM", policy)).toBe(true);
    expect(isHostAllowed("api.example.com.", policy)).toBe(true);
    expect(isHostAllowed("raw.github.com", policy)).toBe(true);
    expect(isHostAllowed("a.b.github.com", policy)).toBe(true);
    expect(isHostAllowed("github.com", policy)).toBe(false);
    expect(isHostAllowed("evilgithub.com", policy)).toBe(false);
    expect(isHostAllowed("example.com", policy)).toBe(false);
    expect(isHostAllowed("other.example.com", policy)).toBe(false);
    expect(isHostAllowed("", policy)).toBe(false);
  });

  it("ignores the default action when an allow-list is set", () => {
    expect(isHostAllowed("x.com", { allowedHosts: ["y.com"], defaultAction: "allow" })).toBe(false);
    expect(isHostAllowed("y.com", { allowedHosts: ["y.com"], defaultAction: "deny" })).toBe(true);
  });

  it("without an allow-list, follows the default action, allow when unset", () => {
    expect(isHostAllowed("x.com", {})).toBe(true);
    expect(isHostAllowed("x.com", { defaultAction: "allow" })).toBe(true);
    expect(isHostAllowed("x.com", { defaultAction: "deny" })).toBe(false);
  });
});

describe("createEgressProxy", () => {
  let target: Server;
  let targetPort: number;
  let connections: number;
  let proxy: EgressProxy | undefined;

  beforeEach(async () => {
    connections = 0;
    target = createServer((req, res) => res.end(`hello from ${req.url}`));
    target.on("connection", () => connections++);
    await new Promise<void>((r) => target.listen(0, "127.0.0.1", r));
    targetPort = (target.address() as AddressInfo).port;
  });

  afterEach(async () => {
    await proxy?.close();
    proxy = undefined;
    target.closeAllConnections();
    await new Promise((r) => target.close(r));
  });

  function viaProxy(url: string): Promise<{ status: number; body: string }> {
    const p = new URL(proxy!.url);
    return new Promise((resolve, reject) => {
      const req = request({ host: p.hostname, port: p.port, path: url, method: "GET" }, (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on("error", reject);
      req.end();
    });
  }

  function tunnel(authority: string): Promise<{ status: number; socket: Socket }> {
    const p = new URL(proxy!.url);
    return new Promise((resolve, reject) => {
      const req = request({ host: p.hostname, port: p.port, method: "CONNECT", path: authority });
      req.on("connect", (res, socket) => resolve({ status: res.statusCode ?? 0, socket }));
      req.on("response", (res) => resolve({ status: res.statusCode ?? 0, socket: res.socket }));
      req.on("error", reject);
      req.end();
    });
  }

  it("forwards an absolute-URL request to an allowed host", async () => {
    const decisions: EgressDecision[] = [];
    proxy = await createEgressProxy({ allowedHosts: ["127.0.0.1"], onDecision: (d) => decisions.push(d) });
    expect(proxy.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const response = await viaProxy(`http://127.0.0.1:${targetPort}/path?q=1`);
    expect(response).toEqual({ status: 200, body: "hello from /path?q=1" });
    expect(connections).toBe(1);
    expect(decisions).toEqual([{ host: "127.0.0.1", port: targetPort, method: "GET", allowed: true }]);
  });

  it("answers 403 for a denied host and sends it nothing", async () => {
    proxy = await createEgressProxy({ allowedHosts: ["*.example.com"] });
    const response = await viaProxy(`http://127.0.0.1:${targetPort}/secret`);
    expect(response.status).toBe(403);
    expect(response.body).toMatch(/host 127\.0\.0\.1 is not allowed/);
    expect(connections).toBe(0);
  });

  it("denies every host under defaultAction deny with no allow-list", async () => {
    proxy = await createEgressProxy({ defaultAction: "deny" });
    expect((await viaProxy(`http://127.0.0.1:${targetPort}/`)).status).toBe(403);
    expect(connections).toBe(0);
  });

  it("tunnels CONNECT to an allowed host", async () => {
    proxy = await createEgressProxy({ allowedHosts: ["127.0.0.1"] });
    const { status, socket } = await tunnel(`127.0.0.1:${targetPort}`);
    expect(status).toBe(200);
    const reply = await new Promise<string>((resolve) => {
      let text = "";
      socket.on("data", (c) => {
        text += c;
        if (text.includes("hello from /tunnelled")) resolve(text);
      });
      socket.write("GET /tunnelled HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    });
    expect(reply).toMatch(/^HTTP\/1\.1 200/);
    socket.destroy();
  });

  it("refuses CONNECT to a denied host with 403 and opens no connection", async () => {
    proxy = await createEgressProxy({ allowedHosts: ["allowed.example.com"] });
    const { status, socket } = await tunnel(`127.0.0.1:${targetPort}`);
    expect(status).toBe(403);
    socket.destroy();
    expect(connections).toBe(0);
  });

  it("refuses timeouts and caps no timer can hold or that make no sense, naming the field", async () => {
    for (const [options, field] of [
      [{ idleTimeoutMs: Number.NaN }, "idleTimeoutMs"],
      [{ headersTimeoutMs: 2 ** 40 }, "headersTimeoutMs"],
      [{ requestTimeoutMs: 0 }, "requestTimeoutMs"],
      [{ maxConnectionsPerClient: 1.5 }, "maxConnectionsPerClient"],
      [{ headersTimeoutMs: 5_000, requestTimeoutMs: 1_000 }, "headersTimeoutMs"],
    ] as const) {
      const error = await createEgressProxy(options).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "INVALID_SPEC" });
      expect((error as { issues: { path: string }[] }).issues.map((i) => i.path)).toContain(field);
    }
  });

  it("refuses origin-form requests: it is a proxy, not a server", async () => {
    proxy = await createEgressProxy({});
    expect((await viaProxy("/relative")).status).toBe(400);
  });

  it("answers 502 when an allowed host cannot be reached", async () => {
    proxy = await createEgressProxy({});
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    expect((await viaProxy(`http://127.0.0.1:${port}/`)).status).toBe(502);
    expect((await tunnel(`127.0.0.1:${port}`)).status).toBe(502);
  });
});
