/**
 * The backend's only door to the API server: typed calls through @kubernetes/client-node,
 * streaming GETs (watch, logs) over node:https with the kubeconfig's credentials, a count of
 * every request made (the benchmark's figure), and the mapping of API failures to typed errors.
 * @module
 */
import * as http from "node:http";
import * as https from "node:https";
import { BackendUnavailableError, RuntimeKernelError } from "../../errors.js";
import { type Cluster, CoreV1Api, type KubeConfig } from "./client.js";

/** Requests made to the API server, by kind. */
export interface RequestCounts {
  total: number;
  byKind: Record<string, number>;
}

/** An error of the API server, with its HTTP status. */
export interface ApiFailure {
  status?: number;
  reason?: string;
  message: string;
}

/** Reads the status code and the server's own message of anything a call threw. */
export function apiFailure(error: unknown): ApiFailure {
  const e = error as { code?: unknown; statusCode?: unknown; body?: unknown; message?: unknown };
  const status =
    typeof e?.code === "number" ? e.code : typeof e?.statusCode === "number" ? e.statusCode : undefined;
  let body: unknown = e?.body;
  if (typeof body === "string") {
    try {
      body = JSON.parse(body);
    } catch {
      // not JSON: keep the text
    }
  }
  const b = body as { message?: unknown; reason?: unknown } | undefined;
  const message =
    typeof b?.message === "string"
      ? b.message
      : typeof body === "string" && body.length > 0
        ? body.slice(0, 500)
        : error instanceof Error
          ? (error.message.split("\n")[0] ?? error.message)
          : String(error);
  const failure: ApiFailure = { message };
  if (status !== undefined) failure.status = status;
  if (typeof b?.reason === "string") failure.reason = b.reason;
  return failure;
}

/** Whether the call failed with HTTP `status`. */
export function isStatus(error: unknown, status: number): boolean {
  return apiFailure(error).status === status;
}

/**
 * A typed error for a failed call: unreachable server, 5xx and 429 are `BACKEND_UNAVAILABLE`
 * (retryable); anything else the server refused is `BACKEND_ERROR` with the server's message.
 */
export function toKernelError(error: unknown, what: string, workloadId?: string): RuntimeKernelError {
  const f = apiFailure(error);
  const opts = { cause: error, workloadId };
  if (f.status === undefined || f.status >= 500 || f.status === 429)
    return new BackendUnavailableError(`Kubernetes API unavailable while ${what}: ${f.message}`, opts);
  return new RuntimeKernelError(
    "BACKEND_ERROR",
    `Kubernetes API refused ${what} (HTTP ${f.status}): ${f.message}`,
    {
      ...opts,
      retryable: f.status === 409,
    },
  );
}

/** A streaming GET in progress: abort it at any time. */
export interface StreamRequest {
  abort(): void;
}

/** Handlers of {@link KubeApi.stream}. */
export interface StreamHandlers {
  /** Each line of the response body (without its newline). */
  onLine(line: string): void;
  /** Called once: `status` is the HTTP status (absent if no response came), `error` any transport error. */
  onEnd(result: { status?: number; error?: unknown; body?: string }): void;
}

type AgentFactory = (cluster: Cluster | null, options: https.AgentOptions) => http.Agent;

/**
 * A view of `config` whose typed calls share keep-alive connections. The client makes a new
 * agent for every request, so each call pays a TLS handshake; at hundreds of Pods that handshake
 * is most of the cost. A prototype view keeps the caller's KubeConfig untouched. Proxied and
 * plain-http clusters keep the client's own agents.
 */
function pooledConfig(config: KubeConfig, maxSockets: number, agents: Map<string, https.Agent>): KubeConfig {
  const own = (config as unknown as { createAgent: AgentFactory }).createAgent.bind(config);
  const view = Object.create(config) as KubeConfig;
  const createAgent: AgentFactory = (cluster, options) => {
    if (!cluster || cluster.proxyUrl || !cluster.server.startsWith("https:")) return own(cluster, options);
    const key = JSON.stringify([
      cluster.server,
      options.rejectUnauthorized,
      options.servername,
      String(options.ca ?? ""),
      String(options.cert ?? ""),
      String(options.key ?? ""),
    ]);
    let agent = agents.get(key);
    if (!agent) {
      // Rotated client certificates make new keys: keep only the newest few agents.
      if (agents.size >= 4)
        for (const [k, a] of agents) {
          a.destroy();
          agents.delete(k);
          break;
        }
      // Idle sockets close well before the API server's own idle timeout.
      agent = new https.Agent({
        ...options,
        keepAlive: true,
        maxSockets,
        timeout: 30_000,
        scheduling: "lifo",
      });
      agents.set(key, agent);
    }
    return agent;
  };
  (view as unknown as { createAgent: AgentFactory }).createAgent = createAgent;
  return view;
}

/** The client of one backend: typed calls, streaming calls, request counts. */
export class KubeApi {
  readonly core: CoreV1Api;
  readonly counts: RequestCounts = { total: 0, byKind: {} };
  readonly #agents = new Map<string, https.Agent>();
  readonly #maxConcurrent: number;
  #inFlight = 0;
  readonly #queued: Array<() => void> = [];

  /**
   * @param maxConcurrent typed calls in flight at once (more wait their turn here); watches and
   *   log streams have their own connections.
   */
  constructor(
    readonly config: KubeConfig,
    maxConcurrent = 32,
  ) {
    this.#maxConcurrent = maxConcurrent;
    this.core = pooledConfig(config, maxConcurrent, this.#agents).makeApiClient(CoreV1Api);
  }

  /** Closes the pooled connections. */
  close(): void {
    for (const agent of this.#agents.values()) agent.destroy();
    this.#agents.clear();
  }

  /**
   * Runs one counted API call, at most `maxConcurrent` at once. Calls beyond that wait here,
   * never in the connection pool: node-fetch 2 (under the client) reports a complete chunked
   * response as cut short ("Premature close") when the pool hands its socket straight to a
   * waiting request (node-fetch#1767). A burst of 500 stops got that error on most deletes,
   * though each Pod was deleted, and escalated every one of them to a kill.
   */
  async call<T>(kind: string, fn: (core: CoreV1Api) => Promise<T>): Promise<T> {
    this.count(kind);
    if (this.#inFlight < this.#maxConcurrent) this.#inFlight++;
    else await new Promise<void>((resolve) => this.#queued.push(resolve));
    try {
      return await fn(this.core);
    } finally {
      // The slot passes straight to the next call waiting, if any.
      const next = this.#queued.shift();
      if (next) next();
      else this.#inFlight--;
    }
  }

  count(kind: string): void {
    this.counts.total++;
    this.counts.byKind[kind] = (this.counts.byKind[kind] ?? 0) + 1;
  }

  /**
   * A counted streaming GET of `path` (watch, follow logs), read line by line. Unlike the
   * client's own helpers it can be aborted before the response arrives, which a dropped or
   * stalled connection needs.
   */
  stream(kind: string, path: string, handlers: StreamHandlers): StreamRequest {
    this.count(kind);
    let ended = false;
    let req: http.ClientRequest | undefined;
    let aborted = false;
    const end = (result: { status?: number; error?: unknown; body?: string }) => {
      if (ended) return;
      ended = true;
      handlers.onEnd(result);
    };
    const start = async () => {
      const cluster = this.config.getCurrentCluster();
      if (!cluster) throw new BackendUnavailableError("The kubeconfig has no current cluster");
      const url = new URL(cluster.server + path);
      const opts: https.RequestOptions = {};
      await this.config.applyToHTTPSOptions(opts);
      if (aborted) return end({ error: new Error("aborted") });
      const mod = url.protocol === "http:" ? http : https;
      req = mod.request(url, { ...opts, method: "GET" }, (res) => {
        const status = res.statusCode ?? 0;
        res.setEncoding("utf8");
        if (status !== 200) {
          let body = "";
          res.on("data", (chunk: string) => {
            if (body.length < 4096) body += chunk;
          });
          res.on("end", () => end({ status, body }));
          res.on("error", (error) => end({ status, error, body }));
          return;
        }
        let buffer = "";
        res.on("data", (chunk: string) => {
          buffer += chunk;
          let nl = buffer.indexOf("\n");
          while (nl >= 0) {
            const line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 1);
            if (!ended) handlers.onLine(line);
            nl = buffer.indexOf("\n");
          }
        });
        res.on("end", () => {
          if (buffer.length > 0 && !ended) handlers.onLine(buffer);
          end({ status });
        });
        res.on("error", (error) => end({ status, error }));
        res.on("aborted", () => end({ status, error: new Error("response aborted") }));
      });
      req.on("error", (error) => end({ error }));
      req.end();
    };
    start().catch((error: unknown) => end({ error }));
    return {
      abort: () => {
        aborted = true;
        req?.destroy();
        end({ error: new Error("aborted") });
      },
    };
  }
}
