/**
 * Hostname-based egress: the host check, and a small local HTTP proxy that enforces it.
 *
 * The proxy sees only traffic that is sent to it: clients that honour HTTP_PROXY /
 * HTTPS_PROXY (absolute-URL requests and CONNECT tunnels). A process that ignores those
 * variables, opens raw sockets or resolves names itself is not stopped by a proxy; that
 * needs the network to be closed around the process (a network namespace, a container
 * without a route out, a firewall) with the proxy as its only way out.
 * @module
 */
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
} from "node:http";
import { request as httpsRequest } from "node:https";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";

/** An egress policy: an allow-list and what happens to other hosts when the list is empty. */
export interface EgressPolicy {
  /** Exact hostnames or `*.suffix`, case-insensitive. Non-empty: only these pass. */
  allowedHosts?: readonly string[];
  /** Applies when `allowedHosts` is empty. Default `allow`. */
  defaultAction?: "allow" | "deny" | "";
}

function normaliseHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h;
}

/**
 * Whether `host` may be reached under `policy`: with a non-empty allow-list only listed
 * hosts pass (exact, or `*.suffix` for any subdomain of `suffix`), case-insensitive;
 * otherwise the default action decides (allow when unset).
 *
 * @example
 * ```ts
 * isHostAllowed("API.github.com", { allowedHosts: ["*.github.com"] }); // true
 * isHostAllowed("github.com", { allowedHosts: ["*.github.com"] });     // false
 * isHostAllowed("example.com", { defaultAction: "deny" });             // false
 * ```
 */
export function isHostAllowed(host: string, policy: EgressPolicy): boolean {
  const allowed = policy.allowedHosts ?? [];
  if (allowed.length === 0) return policy.defaultAction !== "deny";
  const h = normaliseHost(host);
  if (h === "") return false;
  return allowed.some((pattern) => {
    const p = normaliseHost(pattern);
    if (p.startsWith("*.")) return h.endsWith(p.slice(1)) && h.length > p.length - 1;
    return h === p;
  });
}

/** One decision of the proxy. */
export interface EgressDecision {
  host: string;
  port: number;
  /** `CONNECT` for tunnels, else the request's method. */
  method: string;
  allowed: boolean;
}

/** Options of {@link createEgressProxy}. */
export interface EgressProxyOptions extends EgressPolicy {
  /** The address to listen on. Default `127.0.0.1`: keep the proxy off other interfaces. */
  host?: string;
  /** Default 0 (any free port). */
  port?: number;
  /** Called for every request or tunnel, allowed or not. */
  onDecision?(decision: EgressDecision): void;
}

/** A running egress proxy. */
export interface EgressProxy {
  /** `http://HOST:PORT`, for HTTP_PROXY and HTTPS_PROXY. */
  readonly url: string;
  readonly port: number;
  /** Stops listening and cuts every open connection. */
  close(): Promise<void>;
}

function splitHostPort(authority: string, defaultPort: number): { host: string; port: number } | undefined {
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(authority);
  if (!m) return undefined;
  const port = m[2] ? Number(m[2]) : defaultPort;
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ""), port };
}

function refuse(socket: Duplex, status: string, body: string): void {
  socket.end(
    `HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * Starts a local HTTP proxy that enforces `policy` by hostname, for absolute-URL
 * requests (`GET http://host/path`) and `CONNECT host:port` tunnels. A denied host gets
 * `403 Forbidden` and no traffic is sent towards it (not even a DNS lookup).
 *
 * @example
 * ```ts
 * const proxy = await createEgressProxy({ allowedHosts: ["api.example.com"] });
 * env.HTTP_PROXY = env.HTTPS_PROXY = proxy.url;
 * // ...
 * await proxy.close();
 * ```
 */
export async function createEgressProxy(options: EgressProxyOptions = {}): Promise<EgressProxy> {
  const policy: EgressPolicy = {
    allowedHosts: [...(options.allowedHosts ?? [])],
    defaultAction: options.defaultAction ?? "allow",
  };
  const sockets = new Set<Duplex>();
  const track = (s: Duplex) => {
    sockets.add(s);
    s.once("close", () => sockets.delete(s));
  };
  const decide = (host: string, port: number, method: string): boolean => {
    const allowed = isHostAllowed(host, policy);
    options.onDecision?.({ host: normaliseHost(host), port, method, allowed });
    return allowed;
  };

  const server: Server = createHttpServer((req: IncomingMessage, res) => {
    let target: URL;
    try {
      target = new URL(req.url ?? "");
    } catch {
      res
        .writeHead(400, { "content-type": "text/plain" })
        .end("egress proxy: only absolute-URL requests and CONNECT\n");
      return;
    }
    if (target.protocol !== "http:" && target.protocol !== "https:") {
      res
        .writeHead(400, { "content-type": "text/plain" })
        .end(`egress proxy: unsupported scheme ${target.protocol}\n`);
      return;
    }
    const port = Number(target.port || (target.protocol === "https:" ? 443 : 80));
    if (!decide(target.hostname, port, req.method ?? "GET")) {
      res
        .writeHead(403, { "content-type": "text/plain", connection: "close" })
        .end(`egress proxy: host ${normaliseHost(target.hostname)} is not allowed\n`);
      return;
    }
    const headers = { ...req.headers };
    delete headers["proxy-connection"];
    delete headers["proxy-authorization"];
    const send = target.protocol === "https:" ? httpsRequest : httpRequest;
    const upstream = send(target, { method: req.method, headers }, (response) => {
      res.writeHead(response.statusCode ?? 502, response.headers);
      response.pipe(res);
    });
    upstream.on("error", (error) => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end(`egress proxy: ${error.message}\n`);
    });
    req.pipe(upstream);
  });

  server.on("connection", track);
  server.on("connect", (req: IncomingMessage, client: Duplex, head: Buffer) => {
    track(client);
    client.on("error", () => client.destroy());
    const where = splitHostPort(req.url ?? "", 443);
    if (!where) {
      refuse(client, "400 Bad Request", "egress proxy: CONNECT needs host:port\n");
      return;
    }
    if (!decide(where.host, where.port, "CONNECT")) {
      refuse(client, "403 Forbidden", `egress proxy: host ${normaliseHost(where.host)} is not allowed\n`);
      return;
    }
    let established = false;
    const upstream: Socket = connect(where.port, where.host, () => {
      established = true;
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    track(upstream);
    upstream.on("error", (error) => {
      if (!established) refuse(client, "502 Bad Gateway", `egress proxy: ${error.message}\n`);
      else client.destroy();
    });
    client.on("close", () => upstream.destroy());
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  const host = options.host ?? "127.0.0.1";
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  let closed: Promise<void> | undefined;
  return {
    url,
    port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closed;
    },
  };
}
