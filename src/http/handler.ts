/**
 * `createRuntimeHttpHandler()`: runtime.v1 over HTTP/JSON as a plain node:http request
 * handler, so it mounts in any Node server or framework. Every route answers JSON; every
 * failure is a status with `{detail, code}` (and `issues` naming each bad field); no request
 * can throw out of the handler. Transitions of workloads created with a `callbackUrl` go to
 * the durable callback outbox (see `outbox.ts`).
 *
 * Requests from browsers (any request with an `Origin` header) are refused: this is a
 * server-to-server API, and a page that could reach a loopback kernel must not be able to
 * drive it. Bodies must be `application/json` and at most `maxBodyBytes`.
 * @module
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { hostname } from "node:os";
import { EventEmitter } from "eventemitter3";
import { z } from "zod";
import type { Clock } from "../clock.js";
import {
  InvalidSpecError,
  isRuntimeKernelError,
  type RuntimeKernel,
  type RuntimeKernelErrorCode,
} from "../index.js";
import { bearerChecker } from "../net/listen.js";
import { issuesOf } from "../zod-issues.js";
import { KernelCallbacks } from "./callbacks.js";
import { BACKEND_KINDS, type BackendKind, type WireError } from "./contract.js";
import { backendKindOf } from "./convert.js";
import { openApiDocument, openApiRoutes } from "./openapi.js";
import { type CallbackLogEntry, type CallbackOptions, CallbackOutbox } from "./outbox.js";
import { type Route, type RouteGroup, Router } from "./router.js";
import { type HealthCheck, healthRoutes } from "./routes/health.js";
import { workloadRoutes } from "./routes/workloads.js";

/** The header that carries a request's trace id, in and out. */
export const TRACE_HEADER = "x-trace-id";

/** One line of the surface's log: a request answered, or a callback delivered, retried or dropped. */
export type HttpLogEntry =
  | {
      event: "request";
      method: string;
      path: string;
      status: number;
      ms: number;
      traceId: string;
      /** The kernel's error code, for an error answer. */
      code?: string;
    }
  | CallbackLogEntry;

/** Options of {@link createRuntimeHttpHandler}. */
export interface RuntimeHttpHandlerOptions {
  /** When set, every route but `/health` needs `Authorization: Bearer <token>`. Read it from a file. */
  token?: string;
  /** The largest request body accepted; larger ones are refused with 413. Default 1 MiB. */
  maxBodyBytes?: number;
  /**
   * This kernel's backend as the contract names it (`docker`, `k8s`, `process`): what statuses
   * report and what a spec's `backend` must be. Default: from `kernel.backend.name`; a backend
   * with another name (a custom one, the fake) must be given one.
   */
  backend?: BackendKind;
  /** What statuses report as `node`. Default: this host's name on the process backend, else none. */
  node?: string;
  /**
   * The env variable of a spec whose value is the workload's owner, for the kernel's per-owner
   * quota (the contract keeps tenancy out of the spec). `false`: no owners. Default `VEXA_OWNER`.
   */
  ownerEnv?: string | false;
  /** The callback outbox: where it is kept, the signing secret, retry budget. */
  callbacks?: CallbackOptions;
  /** Extra checks of `GET /health`, beside `kernel` and `callbacks`. */
  healthChecks?: Record<string, HealthCheck>;
  /** Receives a structured entry per request answered and per callback attempt. */
  log?: (entry: HttpLogEntry) => void;
  /** The clock of callback retries (inject `ManualClock` in tests). */
  clock?: Clock;
}

/** What a {@link RuntimeHttpHandler} reports on its `error` listeners. */
export interface RuntimeHttpHandlerEvents {
  /** A callback dropped (`CALLBACK_DROPPED`), the outbox file unwritable, or a route failed unexpectedly. */
  error: [error: Error];
}

/** The request handler, with what a server needs to close it. */
export interface RuntimeHttpHandler {
  /** Handles one request; never throws, every failure is answered with a status. */
  (req: IncomingMessage, res: ServerResponse): void;
  /** How many callbacks wait for delivery. */
  readonly pendingCallbacks: number;
  /** Resolves true once no callback is pending, false after `timeoutMs`. */
  flushCallbacks(timeoutMs: number): Promise<boolean>;
  /** New requests are answered 503 from now on (a server draining before it closes). */
  refuseNewRequests(): void;
  /** Subscribes to errors (dropped callbacks, an unwritable outbox). */
  on<E extends keyof RuntimeHttpHandlerEvents>(
    event: E,
    listener: (...args: RuntimeHttpHandlerEvents[E]) => void,
  ): RuntimeHttpHandler;
  /** Reports an error on the `error` listeners (for the server around the handler). */
  report(error: Error): void;
  /** Unsubscribes. */
  off<E extends keyof RuntimeHttpHandlerEvents>(
    event: E,
    listener: (...args: RuntimeHttpHandlerEvents[E]) => void,
  ): RuntimeHttpHandler;
  /**
   * Stops routing the kernel's transitions, waits up to `flushTimeoutMs` (default 5,000) for
   * pending callbacks, then closes the outbox; what is still pending stays in its file for the
   * next start. The kernel is left as it is. Idempotent.
   */
  close(options?: { flushTimeoutMs?: number }): Promise<void>;
}

const optionsSchema = z.strictObject({
  token: z.string().min(1, "must not be empty").optional(),
  maxBodyBytes: z
    .int()
    .positive()
    .max(1 << 30)
    .optional(),
  backend: z.enum(BACKEND_KINDS).optional(),
  node: z.string().min(1).optional(),
  ownerEnv: z.union([z.string().min(1), z.literal(false)]).optional(),
  callbacks: z
    .strictObject({
      outboxPath: z.string().min(1).optional(),
      signingSecret: z
        .union([z.string().min(1), z.instanceof(Buffer)])
        .optional()
        .refine((s) => s === undefined || s.length > 0, "must not be empty"),
      maxAttempts: z.int().nonnegative().optional(),
      maxAgeMs: z.int().positive().optional(),
      initialBackoffMs: z
        .int()
        .positive()
        .max(2 ** 31 - 1)
        .optional(),
      maxBackoffMs: z
        .int()
        .positive()
        .max(2 ** 31 - 1)
        .optional(),
      timeoutMs: z
        .int()
        .positive()
        .max(2 ** 31 - 1)
        .optional(),
      maxConcurrentPerReceiver: z.int().positive().max(1_000).optional(),
    })
    .optional(),
  healthChecks: z
    .record(
      z.string(),
      z.custom<HealthCheck>((f) => typeof f === "function"),
    )
    .optional(),
  log: z.custom<(entry: HttpLogEntry) => void>((f) => typeof f === "function").optional(),
  clock: z.custom<Clock>((c) => typeof c === "object" && c !== null && "setTimeout" in c).optional(),
});

/** The HTTP status of each kernel error code. */
const STATUS_BY_CODE: Record<RuntimeKernelErrorCode, number> = {
  INVALID_SPEC: 400,
  WORKLOAD_NOT_FOUND: 404,
  WORKLOAD_CONFLICT: 409,
  QUOTA_EXCEEDED: 429,
  UNSUPPORTED: 501,
  START_FAILED: 502,
  START_ABORTED: 502,
  WORKLOAD_LOST: 502,
  BACKEND_ERROR: 502,
  CLEANUP_FAILED: 502,
  BACKEND_UNAVAILABLE: 503,
  RESOURCE_EXHAUSTED: 503,
  KERNEL_SHUT_DOWN: 503,
  EVENTS_OVERFLOW: 503,
  CALLBACK_DROPPED: 500,
  DISPATCH_FAILED: 502,
  STORE_UNAVAILABLE: 503,
};

/** Past this much discarded body, the connection is cut rather than drained. */
const MAX_DISCARD_BYTES = 64 * 1024 * 1024;
const TRACE_ID = /^[\x21-\x7e]{1,128}$/;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function errorBody(error: unknown): { status: number; body: WireError; headers: Record<string, string> } {
  if (error instanceof HttpError) {
    return {
      status: error.status,
      body: { detail: error.message, code: error.code },
      headers: error.headers,
    };
  }
  if (isRuntimeKernelError(error)) {
    return {
      status: STATUS_BY_CODE[error.code] ?? 500,
      body: {
        detail: error.message,
        code: error.code,
        ...(error instanceof InvalidSpecError ? { issues: [...error.issues] } : {}),
      },
      headers:
        error.code === "QUOTA_EXCEEDED" || error.code === "KERNEL_SHUT_DOWN" ? { "retry-after": "1" } : {},
    };
  }
  return { status: 500, body: { detail: "internal error", code: "INTERNAL" }, headers: {} };
}

/** Reads the body up to `limit` bytes; beyond it, the rest is discarded and a 413 follows. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new HttpError(413, "PAYLOAD_TOO_LARGE", `the body is larger than ${limit} bytes`);
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) return reject(tooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off("data", onData);
        req.off("end", onEnd);
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => resolve(Buffer.concat(chunks, size));
    req.on("data", onData);
    req.once("end", onEnd);
    // A client that went away mid-body: nothing to answer, and no fault of this process.
    req.once("error", () => reject(new HttpError(400, "BAD_REQUEST", "the request was cut short")));
  });
}

/** Parses and validates a route's JSON body. */
async function parseBody(req: IncomingMessage, route: Route<unknown>, limit: number): Promise<unknown> {
  const raw = await readBody(req, limit);
  const spec = route.body;
  if (!spec) return undefined;
  if (raw.length === 0) {
    if (spec.required)
      throw new InvalidSpecError([{ path: "", message: "a JSON body is required" }], { subject: "request" });
    return undefined;
  }
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") {
    throw new HttpError(
      415,
      "UNSUPPORTED_MEDIA_TYPE",
      "the body must be JSON, sent as Content-Type: application/json",
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(raw.toString("utf8"));
  } catch {
    // Never echo the parser's message: it quotes the body, which may hold a secret.
    throw new InvalidSpecError([{ path: "", message: "the body is not valid JSON" }], { subject: "request" });
  }
  const result = spec.schema.safeParse(value);
  if (!result.success) throw new InvalidSpecError(issuesOf(result.error), { subject: "request" });
  return result.data;
}

/**
 * A runtime.v1 HTTP handler for `kernel`, speaking Vexa's published contract: `POST
 * /workloads`, `GET /workloads`, `GET|DELETE /workloads/{id}`, `POST /workloads/{id}/stop`,
 * `GET /health`, and `GET /openapi.json`.
 *
 * @example
 * ```ts
 * const handler = createRuntimeHttpHandler(kernel, { callbacks: { outboxPath: "./state/outbox.jsonl" } });
 * http.createServer(handler).listen(8090, "127.0.0.1");
 * ```
 */
export function createRuntimeHttpHandler(
  kernel: RuntimeKernel,
  options: RuntimeHttpHandlerOptions = {},
): RuntimeHttpHandler {
  return createHttpSurface(kernel, options, []);
}

/** {@link createRuntimeHttpHandler} with more route groups mounted after runtime.v1's (for surfaces layered on it). */
export function createHttpSurface(
  kernel: RuntimeKernel,
  options: RuntimeHttpHandlerOptions,
  extraGroups: readonly RouteGroup[],
): RuntimeHttpHandler {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw new InvalidSpecError(issuesOf(parsed.error), { subject: "HTTP options" });
  const backend = options.backend ?? backendKindOf(kernel.backend.name);
  if (backend === undefined) {
    throw new InvalidSpecError(
      [
        {
          path: "backend",
          message: `backend "${kernel.backend.name}" has no name in the contract: give one of ${BACKEND_KINDS.join(", ")}`,
        },
      ],
      { subject: "HTTP options" },
    );
  }
  const node = options.node ?? (kernel.backend.name === "process" ? hostname() : undefined);
  const events = new EventEmitter<RuntimeHttpHandlerEvents>();
  const log = options.log ?? (() => {});
  const outbox = new CallbackOutbox({
    ...options.callbacks,
    ...(options.clock ? { clock: options.clock } : {}),
    onError: (error) => events.emit("error", error),
    log,
  });
  const callbacks = new KernelCallbacks(kernel, outbox);
  const authorized = bearerChecker(options.token);
  const maxBodyBytes = options.maxBodyBytes ?? 1024 * 1024;
  let refusing = false;

  const router: Router = new Router([
    healthRoutes({
      kernel: () => !refusing,
      callbacks: () => outbox.writable,
      ...options.healthChecks,
    }),
    workloadRoutes({
      kernel,
      callbacks,
      backend,
      ownerEnv: options.ownerEnv ?? "VEXA_OWNER",
      ...(node !== undefined ? { node } : {}),
    }),
    openApiRoutes(() => openApiDocument(router, { title: "runtime-kernel runtime.v1", version: "1" })),
    ...extraGroups,
  ]);

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    if (res.headersSent || res.destroyed) return;
    const text = body === undefined ? "" : JSON.stringify(body);
    res.writeHead(status, {
      ...headers,
      ...(text ? { "content-type": "application/json" } : {}),
      "content-length": String(Buffer.byteLength(text)),
    });
    res.end(text);
  };

  const serve = async (req: IncomingMessage, traceId: string) => {
    if (refusing)
      throw new HttpError(503, "KERNEL_SHUT_DOWN", "the server is shutting down", { "retry-after": "1" });
    if (req.headers.origin !== undefined) {
      throw new HttpError(
        403,
        "FORBIDDEN",
        "requests from browsers (with an Origin header) are not accepted",
      );
    }
    const target = req.url ?? "";
    if (!target.startsWith("/")) throw new HttpError(400, "BAD_REQUEST", "the request target must be a path");
    const queryAt = target.indexOf("?");
    const pathname = queryAt < 0 ? target : target.slice(0, queryAt);
    const match = router.match(req.method ?? "", pathname);
    if (match.kind === "none") throw new HttpError(404, "NOT_FOUND", "Not Found");
    if (match.kind === "malformed") {
      throw new InvalidSpecError([{ path: match.param, message: "is not valid percent-encoding" }], {
        subject: "request path",
      });
    }
    if (match.kind === "method") {
      throw new HttpError(405, "METHOD_NOT_ALLOWED", "Method Not Allowed", {
        allow: match.allowed.join(", "),
      });
    }
    const { route, params } = match;
    if (!route.public && !authorized(req.headers.authorization)) {
      throw new HttpError(401, "UNAUTHENTICATED", "missing or wrong bearer token", {
        "www-authenticate": "Bearer",
      });
    }
    const body = await parseBody(req, route, maxBodyBytes);
    return route.handle({
      params,
      query: new URLSearchParams(queryAt < 0 ? "" : target.slice(queryAt + 1)),
      body,
      traceId,
    });
  };

  const handler = ((req: IncomingMessage, res: ServerResponse) => {
    const started = performance.now();
    // A client that goes away mid-request is not an error of this process.
    req.on("error", () => {});
    res.on("error", () => {});
    const given = req.headers[TRACE_HEADER];
    const traceId =
      typeof given === "string" && TRACE_ID.test(given) ? given : randomUUID().replaceAll("-", "");
    const finish = (status: number, body: unknown, headers: Record<string, string>, code?: string) => {
      send(res, status, body, { [TRACE_HEADER]: traceId, ...headers });
      // Whatever body is left unread is drained so the connection can be reused, within a bound.
      let discarded = 0;
      req.on("data", (chunk: Buffer) => {
        discarded += chunk.length;
        if (discarded > MAX_DISCARD_BYTES) req.socket.destroy();
      });
      req.resume();
      const pathname = (req.url ?? "").split("?")[0] as string;
      try {
        log({
          event: "request",
          method: req.method ?? "",
          path: pathname.length > 200 ? `${pathname.slice(0, 200)}…` : pathname,
          status,
          ms: Math.round((performance.now() - started) * 1000) / 1000,
          traceId,
          ...(code !== undefined ? { code } : {}),
        });
      } catch {
        // A log sink that throws must not turn an answer into a crash.
      }
    };
    serve(req, traceId).then(
      (reply) => finish(reply.status, reply.body, {}),
      (error: unknown) => {
        const out = errorBody(error);
        if (out.status === 500)
          events.emit("error", error instanceof Error ? error : new Error(String(error)));
        finish(out.status, out.body, out.headers, out.body.code);
      },
    );
  }) as RuntimeHttpHandler;

  let closed: Promise<void> | undefined;
  Object.defineProperty(handler, "pendingCallbacks", { get: () => outbox.pending });
  return Object.assign(handler, {
    flushCallbacks: (timeoutMs: number) => outbox.flush(timeoutMs),
    refuseNewRequests: () => {
      refusing = true;
    },
    on(event: keyof RuntimeHttpHandlerEvents, listener: (error: Error) => void) {
      events.on(event, listener);
      return handler;
    },
    report: (error: Error) => {
      events.emit("error", error);
    },
    off(event: keyof RuntimeHttpHandlerEvents, listener: (error: Error) => void) {
      events.off(event, listener);
      return handler;
    },
    close(closeOptions: { flushTimeoutMs?: number } = {}) {
      closed ??= (async () => {
        callbacks.close();
        await outbox.flush(closeOptions.flushTimeoutMs ?? 5_000);
        outbox.close();
      })();
      return closed;
    },
  }) as RuntimeHttpHandler;
}
