import type { IncomingMessage, ServerResponse } from "node:http";
import { hostname } from "node:os";
import { EventEmitter } from "eventemitter3";
import { z } from "zod";
import type { Clock } from "../clock.js";
import { InvalidSpecError, type RuntimeKernel } from "../index.js";
import { HOST_PATTERN, HOST_PATTERN_MESSAGE } from "../name-rules.js";
import { bearerChecker } from "../net/listen.js";
import { issuesOf } from "../zod-issues.js";
import { KernelCallbacks } from "./callbacks.js";
import { BACKEND_KINDS, type BackendKind } from "./contract.js";
import { backendKindOf } from "./convert.js";
import { answer, route, type Surface } from "./http-request.js";
import { openApiDocument, openApiRoutes } from "./openapi.js";
import { type CallbackLogEntry, type CallbackOptions, CallbackOutbox } from "./outbox.js";
import { type RouteGroup, Router } from "./router.js";
import { type HealthCheck, healthRoutes } from "./routes/health.js";
import { workloadRoutes } from "./routes/workloads.js";

export { TRACE_HEADER } from "./http-request.js";

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
      allowedHosts: z.array(z.string().regex(HOST_PATTERN, HOST_PATTERN_MESSAGE)).optional(),
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
    clock: options.clock,
    onError: (error) => events.emit("error", error),
    log,
  });
  const callbacks = new KernelCallbacks(kernel, outbox, options.callbacks?.allowedHosts);
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
      node,
    }),
    openApiRoutes(() => openApiDocument(router, { title: "runtime-kernel runtime.v1", version: "1" })),
    ...extraGroups,
  ]);

  const surface: Surface = { router, authorized, maxBodyBytes, refusing: () => refusing };
  const handler = ((req: IncomingMessage, res: ServerResponse) => {
    answer(
      req,
      res,
      log,
      (traceId) => route(req, traceId, surface),
      (error) => events.emit("error", error instanceof Error ? error : new Error(String(error))),
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
