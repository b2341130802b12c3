/**
 * `serveRuntimeKernel()`: the runtime.v1 gRPC service in front of a kernel, so a control
 * plane in any language can drive it. The service is a thin translation: every call is
 * one kernel call, every error keeps the kernel's code (see `errors.ts`), every status and
 * event carries exactly the kernel's fields (see `convert.ts`).
 *
 * Safe by default: it listens on a unix socket private to the user unless told otherwise,
 * refuses a plaintext listener reachable from other machines, and can require a bearer
 * token. Closing it drains: health turns NOT_SERVING, new calls are refused, open streams
 * end with UNAVAILABLE (clients resume from their last `seq`), calls in flight finish,
 * then the kernel stops its workloads or leaves them running for recovery, as configured.
 * @module
 */
import { type Metadata, Server, ServerCredentials, type ServerOptions } from "@grpc/grpc-js";
import { InvalidSpecError, WorkloadNotFoundError } from "../errors.js";
import { HealthCheckResponse_ServingStatus, HealthService } from "../gen/grpc/health/v1/health.js";
import * as wire from "../gen/runtime/v1/runtime.js";
import { checkedDecoding } from "../grpc/decode.js";
import { type GrpcListener, listenGrpc } from "../grpc/listen.js";
import type { RuntimeKernel } from "../index.js";
import { bearerChecker, checkListenSecurity } from "../net/listen.js";
import {
  defaultAddress,
  defaultSocketPath,
  grpcTarget,
  parseAddress,
  type ServiceAddress,
} from "./address.js";
import { ServedCalls } from "./calls.js";
import {
  eventToWire,
  listFilterFromWire,
  logEntryToWire,
  requireWorkloadId,
  specFromWire,
  statusToWire,
  stopOptionsFromWire,
} from "./convert.js";
import { eventStreamHeaders } from "./event-stream.js";
import { HealthRegistry } from "./health.js";

/** The 64-bit fields of each runtime.v1 request, by field number, as runtime.proto numbers them. */
const UINT64_FIELDS = {
  create: { 8: "spec.idleTimeoutMs", 9: "spec.maxLifetimeMs", 10: "spec.graceMs" },
  stop: { 3: "graceMs" },
  destroy: { 2: "graceMs" },
  watchEvents: { 2: "sinceSeq" },
};

/** The full name of the runtime.v1 service, as health checks and reflection name it. */
export const RUNTIME_SERVICE_NAME = "runtime.v1.Runtime";

/** What happens to the kernel when the server closes. */
export type KernelOnClose =
  /** `kernel.shutdown()`: every workload is stopped (reason `shutdown`) and cleaned up. */
  | "stop-workloads"
  /** `kernel.shutdown({ leaveRunning: true })`: workloads keep running for a later `kernel.recover()`. */
  | "leave-running"
  /** The kernel is left alone (it is shared with something else in this process). */
  | "keep-kernel";

/** PEM material for a TLS listener. */
export interface ServerTlsOptions {
  /** The server's certificate chain (PEM). */
  cert: string | Buffer;
  /** The server's private key (PEM). */
  key: string | Buffer;
  /** CA certificates to verify client certificates with (PEM); enables mutual TLS. */
  ca?: string | Buffer;
  /** Refuse clients without a certificate signed by `ca` (default: true when `ca` is given). */
  requireClientCert?: boolean;
}

/** Options of {@link serveRuntimeKernel}. */
export interface ServeRuntimeKernelOptions {
  /**
   * `unix:PATH`, `HOST:PORT` (port 0 picks a free one), or a path. Default: `$RUNTIME_KERNEL_ADDRESS`,
   * else a unix socket private to the user (see `defaultAddress()`).
   */
  address?: string;
  /** gRPC server credentials; default plaintext (fine on a unix socket or loopback). Exclusive with `tls`. */
  credentials?: ServerCredentials;
  /** A TLS listener from PEM material; shorthand for `credentials`. */
  tls?: ServerTlsOptions;
  /** When set, every runtime.v1 call must carry `authorization: Bearer <token>` (health checks need none). */
  token?: string;
  /**
   * Allow a plaintext listener on an address other machines can reach. Off by default: a
   * kernel runs arbitrary commands, so a network listener needs TLS (and a token).
   */
  allowInsecureRemote?: boolean;
  /** What closing the server does to the kernel. Default `"stop-workloads"`. */
  onClose?: KernelOnClose;
  /** How long `close()` waits for calls in flight before cutting them. Default 10,000 ms. */
  drainTimeoutMs?: number;
  /** Extra grpc-js server options (message sizes, keepalive, ...). */
  serverOptions?: ServerOptions;
  /**
   * Told about failures that are not the kernel's answer to a call: a handler that threw
   * something other than a `RuntimeKernelError` (answered INTERNAL), an answer grpc-js could
   * not send. The server survives each; this is where they get logged. Default: a process
   * warning (`process.emitWarning`).
   */
  onError?: (error: unknown, context: { method: string }) => void;
}

/** Options of {@link RuntimeKernelServer.close}. */
export interface CloseServerOptions {
  /** Overrides the server's `onClose` for this close. */
  onClose?: KernelOnClose;
  /** Overrides the server's `drainTimeoutMs` for this close. */
  drainTimeoutMs?: number;
}

/** A running runtime.v1 server. */
export interface RuntimeKernelServer {
  /** The bound address, as clients dial it (`unix:/path`, or `host:port` with the real port). */
  readonly address: string;
  /** Drains and stops the server, then applies `onClose` to the kernel. Idempotent. */
  close(options?: CloseServerOptions): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

function warn(error: unknown, context: { method: string }): void {
  const message = error instanceof Error ? error.message : String(error);
  process.emitWarning(`${context.method}: ${message}`, { type: "RuntimeKernelServerWarning" });
}

function tokenChecker(token: string | undefined): (metadata: Metadata) => boolean {
  const matches = bearerChecker(token);
  return (metadata) => {
    const given = metadata.get("authorization")[0];
    return matches(typeof given === "string" ? given : given?.toString());
  };
}

function credentialsFor(options: ServeRuntimeKernelOptions): ServerCredentials {
  if (options.credentials && options.tls) {
    throw new InvalidSpecError([{ path: "tls", message: "give either credentials or tls, not both" }], {
      subject: "server options",
    });
  }
  if (options.credentials) return options.credentials;
  if (!options.tls) return ServerCredentials.createInsecure();
  const { cert, key, ca, requireClientCert } = options.tls;
  const toBuffer = (v: string | Buffer) => (typeof v === "string" ? Buffer.from(v) : v);
  return ServerCredentials.createSsl(
    ca === undefined ? null : toBuffer(ca),
    [{ cert_chain: toBuffer(cert), private_key: toBuffer(key) }],
    requireClientCert ?? ca !== undefined,
  );
}

/**
 * Serves `kernel` over gRPC as the runtime.v1 `Runtime` service (plus grpc.health.v1).
 * Resolves once the server is listening.
 *
 * @example
 * ```ts
 * const server = await serveRuntimeKernel(kernel, { address: "127.0.0.1:0" });
 * const client = createRuntimeClient(server.address);
 * await client.create({ workloadId: "w1", profile: "default" });
 * await server.close(); // drains, then stops the kernel's workloads
 * ```
 */
export async function serveRuntimeKernel(
  kernel: RuntimeKernel,
  options: ServeRuntimeKernelOptions = {},
): Promise<RuntimeKernelServer> {
  const usingDefault = options.address === undefined;
  const parsed: ServiceAddress = parseAddress(options.address ?? defaultAddress());
  const credentials = credentialsFor(options);
  checkListenSecurity(parsed, {
    secure: options.credentials !== undefined || options.tls !== undefined,
    ...(options.allowInsecureRemote !== undefined
      ? { allowInsecureRemote: options.allowInsecureRemote }
      : {}),
  });
  const calls = new ServedCalls(tokenChecker(options.token), options.onError ?? warn);
  const health = new HealthRegistry([RUNTIME_SERVICE_NAME]);
  // Channelz only feeds a debugging service this server does not expose; its per-call bookkeeping is pure cost.
  const server = new Server({ "grpc.enable_channelz": 0, ...options.serverOptions });
  server.addService(checkedDecoding(wire.RuntimeService, UINT64_FIELDS), runtimeService(kernel, calls));
  server.addService(checkedDecoding(HealthService, {}), health.implementation());
  let listener: GrpcListener;
  try {
    listener = await listenGrpc(server, parsed, credentials, {
      // Only the default location is checked for privacy: a chosen path lives where its owner put it.
      privateDir: usingDefault && parsed.kind === "unix" && parsed.path === defaultSocketPath(),
    });
  } catch (error) {
    server.forceShutdown();
    throw error;
  }
  const address =
    parsed.kind === "unix" ? `unix:${parsed.path}` : grpcTarget({ ...parsed, port: listener.port });

  let closed: Promise<void> | undefined;
  const close = (closeOptions: CloseServerOptions = {}): Promise<void> => {
    closed ??= (async () => {
      calls.close();
      health.setAll(HealthCheckResponse_ServingStatus.NOT_SERVING);
      health.endWatches();
      await drain(server, calls, closeOptions.drainTimeoutMs ?? options.drainTimeoutMs ?? 10_000);
      listener.release();
      const onClose = closeOptions.onClose ?? options.onClose ?? "stop-workloads";
      if (onClose === "stop-workloads") await kernel.shutdown();
      else if (onClose === "leave-running") await kernel.shutdown({ leaveRunning: true });
    })();
    return closed;
  };

  return {
    address,
    close,
    [Symbol.asyncDispose]: () => close(),
  };
}

/** runtime.v1's methods, each one kernel call with its request and answer translated (see `convert.ts`). */
function runtimeService(kernel: RuntimeKernel, calls: ServedCalls): wire.RuntimeServer {
  return {
    create: calls.unary<wire.CreateRequest, wire.WorkloadStatus>("Create", async (request) =>
      statusToWire(await kernel.create(specFromWire(request.spec))),
    ),
    get: calls.unary<wire.GetRequest, wire.WorkloadStatus>("Get", (request) => {
      const status = kernel.get(requireWorkloadId(request.workloadId));
      if (status === undefined) throw new WorkloadNotFoundError(request.workloadId);
      return statusToWire(status);
    }),
    list: calls.unary<wire.ListRequest, wire.ListResponse>("List", (request) => ({
      workloads: kernel.list(listFilterFromWire(request)).map(statusToWire),
    })),
    touch: calls.unary<wire.TouchRequest, wire.TouchResponse>("Touch", (request) => {
      kernel.touch(requireWorkloadId(request.workloadId));
      return {};
    }),
    stop: calls.unary<wire.StopRequest, wire.WorkloadStatus>("Stop", async (request) =>
      statusToWire(await kernel.stop(requireWorkloadId(request.workloadId), stopOptionsFromWire(request))),
    ),
    destroy: calls.unary<wire.DestroyRequest, wire.DestroyResponse>("Destroy", async (request) => {
      const id = requireWorkloadId(request.workloadId);
      await kernel.destroy(id, { graceMs: request.graceMs });
      return {};
    }),
    logs: calls.streaming<wire.LogsRequest, Parameters<typeof logEntryToWire>[0], wire.LogEntry>(
      "Logs",
      (request, signal) =>
        kernel.logs(requireWorkloadId(request.workloadId), {
          follow: request.follow,
          tail: request.tail,
          signal,
        }),
      logEntryToWire,
    ),
    watchEvents: calls.streaming<
      wire.WatchEventsRequest,
      Parameters<typeof eventToWire>[0],
      wire.TransitionEvent
    >(
      "WatchEvents",
      (request, signal) =>
        kernel.events({
          workloadId: request.workloadId,
          sinceSeq: request.sinceSeq,
          signal,
        }),
      eventToWire,
      () => eventStreamHeaders(kernel),
    ),
  };
}

/**
 * Waits for the calls in flight to finish, up to `drainTimeoutMs`; then answers what is left
 * with a status a client can act on (rather than a bare CANCELLED), and gives those answers
 * a moment to leave before cutting the connections.
 */
function drain(server: Server, calls: ServedCalls, drainTimeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    let force: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      calls.cutPending();
      force = setTimeout(() => {
        server.forceShutdown();
        resolve();
      }, 1_000);
    }, drainTimeoutMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      if (force) clearTimeout(force);
      resolve();
    });
  });
}
