/**
 * Hostname-based egress: the host check, and a small local HTTP proxy that enforces it.
 *
 * The proxy sees only traffic that is sent to it: clients that honour HTTP_PROXY /
 * HTTPS_PROXY (absolute-URL requests and CONNECT tunnels). A process that ignores those
 * variables, opens raw sockets or resolves names itself is not stopped by a proxy; that
 * needs the network to be closed around the process (a network namespace, a container
 * without a route out, a firewall) with the proxy as its only way out.
 *
 * Its clients are the plugins it confines, so it is built to hold up against them: a
 * `Host` header must name an allowed host too (no reaching a forbidden virtual host on an
 * allowed address), every connection has header, request and idle timeouts, and one client
 * address can hold only so many connections open.
 * @module
 */
import {
  createServer as createHttpServer,
  request as httpRequest,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { request as httpsRequest } from "node:https";
import { connect, type Socket } from "node:net";
import type { Duplex } from "node:stream";
import { z } from "zod";
import { InvalidSpecError } from "../errors.js";

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
  /**
   * Listen on this unix socket instead of a TCP port (`host` and `port` are then ignored):
   * for a sandbox that has no network but a socket bound in. Its directory should be private.
   */
  path?: string;
  /** Called for every request or tunnel, allowed or not (and for a refused `Host` header). */
  onDecision?(decision: EgressDecision): void;
  /** How long a client has to send a request's headers, and a new connection to start one. Default 10,000 ms. */
  headersTimeoutMs?: number;
  /** How long a client has to send a whole request (headers and body). Default 300,000 ms. */
  requestTimeoutMs?: number;
  /** A connection or tunnel with no traffic for this long is closed. Default 60,000 ms. */
  idleTimeoutMs?: number;
  /** How many connections one client address may hold open; more are refused with 429. Default 64. */
  maxConnectionsPerClient?: number;
}

/** The longest timeout a Node timer holds. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const timeout = z
  .number({ error: "must be a number of milliseconds" })
  .int("must be an integer number of milliseconds")
  .min(1, "must be > 0")
  .max(MAX_TIMER_MS, `must be at most ${MAX_TIMER_MS}`);
const limitsSchema = z
  .object({
    headersTimeoutMs: timeout.default(10_000),
    requestTimeoutMs: timeout.default(300_000),
    idleTimeoutMs: timeout.default(60_000),
    maxConnectionsPerClient: z.number().int("must be an integer").min(1, "must be > 0").default(64),
  })
  .refine((l) => l.headersTimeoutMs <= l.requestTimeoutMs, {
    path: ["headersTimeoutMs"],
    message: "must not be longer than requestTimeoutMs",
  });

/** The proxy's timeouts and per-client cap, defaults applied. */
type ProxyLimits = z.infer<typeof limitsSchema>;

function limitsOf(options: EgressProxyOptions): ProxyLimits {
  const result = limitsSchema.safeParse({
    headersTimeoutMs: options.headersTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs,
    idleTimeoutMs: options.idleTimeoutMs,
    maxConnectionsPerClient: options.maxConnectionsPerClient,
  });
  if (result.success) return result.data;
  throw new InvalidSpecError(
    result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })),
    { subject: "egress proxy options" },
  );
}

/** A running egress proxy. */
export interface EgressProxy {
  /** `http://HOST:PORT`, for HTTP_PROXY and HTTPS_PROXY (`unix:PATH` when it listens on `path`). */
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

/** The proxy's rule for each request or tunnel: the policy, and the `Host` header check, each decision reported. */
class EgressGate {
  readonly #policy: EgressPolicy;
  readonly #onDecision: EgressProxyOptions["onDecision"];
  readonly #listenHost: string;
  /** The port the proxy listens on, once it does. */
  port = 0;

  constructor(options: EgressProxyOptions, listenHost: string) {
    this.#policy = {
      allowedHosts: [...(options.allowedHosts ?? [])],
      defaultAction: options.defaultAction ?? "allow",
    };
    this.#onDecision = options.onDecision;
    this.#listenHost = listenHost;
  }

  /** Whether `host` may be reached; reports the decision. */
  decide(host: string, port: number, method: string): boolean {
    const allowed = isHostAllowed(host, this.#policy);
    this.#onDecision?.({ host: normaliseHost(host), port, method, allowed });
    return allowed;
  }

  /**
   * Why a request's `Host` header is refused, or undefined. A header naming the proxy itself
   * (some clients address the proxy) is no claim on a target; any other must be allowed, or an
   * allowed address could be asked for a forbidden virtual host.
   */
  hostHeaderRefusal(value: string | undefined, method: string, defaultPort: number): string | undefined {
    if (value === undefined) return undefined;
    const named = splitHostPort(value.trim(), defaultPort);
    if (!named) return "egress proxy: malformed Host header\n";
    if (named.port === this.port && normaliseHost(named.host) === normaliseHost(this.#listenHost))
      return undefined;
    if (isHostAllowed(named.host, this.#policy)) return undefined;
    this.#onDecision?.({ host: normaliseHost(named.host), port: named.port, method, allowed: false });
    return `egress proxy: Host header ${normaliseHost(named.host)} is not allowed\n`;
  }
}

/** The proxy's open sockets (to cut at close), and the per-client cap on connections. */
class OpenConnections {
  readonly #sockets = new Set<Duplex>();
  /** Open connections per client address. */
  readonly #perClient = new Map<string, number>();
  /** Connections refused for their client's cap: answered 429 and closed, never served. */
  readonly #overCap = new WeakSet<Duplex>();
  readonly #max: number;

  constructor(maxConnectionsPerClient: number) {
    this.#max = maxConnectionsPerClient;
  }

  /** Keeps `socket` until it closes. */
  track(socket: Duplex): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }

  /** Counts a new connection against its client's cap, or answers it 429 and closes it. */
  admit(socket: Socket): void {
    this.track(socket);
    const client = socket.remoteAddress ?? "";
    const open = this.#perClient.get(client) ?? 0;
    if (open >= this.#max) {
      this.#overCap.add(socket);
      socket.on("error", () => socket.destroy());
      socket.end(
        `HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\negress proxy: ${this.#max} connections already open from ${client}\n`,
      );
      return;
    }
    this.#perClient.set(client, open + 1);
    socket.once("close", () => {
      const left = (this.#perClient.get(client) ?? 1) - 1;
      if (left > 0) this.#perClient.set(client, left);
      else this.#perClient.delete(client);
    });
  }

  /** Whether `socket` was refused for its client's cap (the 429 is already on its way). */
  refused(socket: Duplex): boolean {
    return this.#overCap.has(socket);
  }

  /** Cuts every open socket. */
  destroyAll(): void {
    for (const s of this.#sockets) s.destroy();
  }
}

/** Closes `socket` (and `partner`) once `socket` has seen no traffic for `idleTimeoutMs`. */
function closeWhenIdle(socket: Duplex, idleTimeoutMs: number, partner?: Duplex): void {
  (socket as Socket).setTimeout?.(idleTimeoutMs, () => {
    socket.destroy();
    partner?.destroy();
  });
}

/** Forwards one absolute-URL request to its target, if the gate lets it through. */
function forwardRequest(
  req: IncomingMessage,
  res: ServerResponse,
  gate: EgressGate,
  limits: ProxyLimits,
): void {
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
  if (!gate.decide(target.hostname, port, req.method ?? "GET")) {
    res
      .writeHead(403, { "content-type": "text/plain", connection: "close" })
      .end(`egress proxy: host ${normaliseHost(target.hostname)} is not allowed\n`);
    return;
  }
  const refusal = gate.hostHeaderRefusal(req.headers.host, req.method ?? "GET", port);
  if (refusal) {
    res.writeHead(403, { "content-type": "text/plain", connection: "close" }).end(refusal);
    return;
  }
  const headers = { ...req.headers };
  delete headers["proxy-connection"];
  delete headers["proxy-authorization"];
  // The target decides the Host upstream sees: Node sets it from the URL.
  delete headers.host;
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  const upstream = send(target, { method: req.method, headers }, (response) => {
    res.writeHead(response.statusCode ?? 502, response.headers);
    response.pipe(res);
  });
  // An upstream silent for the idle timeout (no answer, or a stalled body) is given up on.
  let timedOut = false;
  upstream.setTimeout(limits.idleTimeoutMs, () => {
    timedOut = true;
    upstream.destroy(new Error(`no traffic from upstream for ${limits.idleTimeoutMs} ms`));
  });
  upstream.on("error", (error) => {
    if (!res.headersSent)
      res.writeHead(timedOut ? 504 : 502, { "content-type": "text/plain", connection: "close" });
    res.end(`egress proxy: ${error.message}\n`);
  });
  req.pipe(upstream);
}

/** Opens one CONNECT tunnel to its target, if the gate lets it through. */
function openTunnel(
  req: IncomingMessage,
  client: Duplex,
  head: Buffer,
  gate: EgressGate,
  connections: OpenConnections,
  limits: ProxyLimits,
): void {
  connections.track(client);
  client.on("error", () => client.destroy());
  if (connections.refused(client)) return void client.destroy();
  closeWhenIdle(client, limits.idleTimeoutMs);
  const where = splitHostPort(req.url ?? "", 443);
  if (!where) {
    refuse(client, "400 Bad Request", "egress proxy: CONNECT needs host:port\n");
    return;
  }
  if (!gate.decide(where.host, where.port, "CONNECT")) {
    refuse(client, "403 Forbidden", `egress proxy: host ${normaliseHost(where.host)} is not allowed\n`);
    return;
  }
  const refusal = gate.hostHeaderRefusal(req.headers.host, "CONNECT", where.port);
  if (refusal) {
    refuse(client, "403 Forbidden", refusal);
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
  connections.track(upstream);
  closeWhenIdle(upstream, limits.idleTimeoutMs, client);
  upstream.on("error", (error) => {
    if (!established) refuse(client, "502 Bad Gateway", `egress proxy: ${error.message}\n`);
    else client.destroy();
  });
  client.on("close", () => upstream.destroy());
}

/** Listens on `options.path`, or on `listenHost` at `options.port`; resolves with the port (0 on a socket). */
async function listen(server: Server, options: EgressProxyOptions, listenHost: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const listening = () => {
      server.off("error", reject);
      resolve();
    };
    if (options.path !== undefined) server.listen(options.path, listening);
    else server.listen(options.port ?? 0, listenHost, listening);
  });
  const address = server.address();
  return typeof address === "object" && address ? address.port : 0;
}

/**
 * Starts a local HTTP proxy that enforces `policy` by hostname, for absolute-URL
 * requests (`GET http://host/path`) and `CONNECT host:port` tunnels. A denied host, or a
 * `Host` header naming one, gets `403 Forbidden` and no traffic is sent towards it (not even
 * a DNS lookup). A client that sends no headers within `headersTimeoutMs` gets 408, a
 * connection or tunnel idle for `idleTimeoutMs` is closed, and a client address over
 * `maxConnectionsPerClient` open connections gets 429 (see {@link EgressProxyOptions}).
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
  const limits = limitsOf(options);
  const listenHost = options.host ?? "127.0.0.1";
  const gate = new EgressGate(options, listenHost);
  const connections = new OpenConnections(limits.maxConnectionsPerClient);
  const server: Server = createHttpServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.idleTimeoutMs,
      // Node enforces the header and request timeouts on this interval: keep it well under them.
      connectionsCheckingInterval: Math.max(5, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
    },
    (req, res) => {
      // The 429 is already on its way; what the client sent meanwhile is not served.
      if (connections.refused(req.socket)) return void req.socket.destroy();
      forwardRequest(req, res, gate, limits);
    },
  );
  server.on("connection", (socket: Socket) => connections.admit(socket));
  server.on("connect", (req: IncomingMessage, client: Duplex, head: Buffer) =>
    openTunnel(req, client, head, gate, connections, limits),
  );
  gate.port = await listen(server, options, listenHost);
  const url =
    options.path !== undefined
      ? `unix:${options.path}`
      : `http://${listenHost.includes(":") ? `[${listenHost}]` : listenHost}:${gate.port}`;
  let closed: Promise<void> | undefined;
  return {
    url,
    port: gate.port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        connections.destroyAll();
      });
      return closed;
    },
  };
}
