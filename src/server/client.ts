/**
 * `createRuntimeClient()`: a typed TypeScript client of the runtime.v1 service, over the
 * generated ts-proto code. It speaks the kernel's own vocabulary: `create(spec)` takes a
 * `WorkloadSpec`, statuses and events come back exactly as `kernel.get()` and
 * `kernel.events()` produce them in process, and failures are `RuntimeKernelError`s with
 * the kernel's `code` ({@link RuntimeServiceError}). Swapping an in-process kernel for a
 * remote one changes the constructor call, not the code around it.
 * @module
 */
import {
  type ChannelCredentials,
  type ChannelOptions,
  type CallOptions as GrpcCallOptions,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import { HealthClient, healthCheckResponse_ServingStatusToJSON } from "../gen/grpc/health/v1/health.js";
import * as wire from "../gen/runtime/v1/runtime.js";
import { trailersOf } from "../grpc/status.js";
import type {
  ListFilter,
  LogEntry,
  RequestedStopReason,
  TransitionEvent,
  WorkloadSpec,
  WorkloadStatus,
} from "../index.js";
import { defaultAddress, grpcTarget, parseAddress } from "./address.js";
import {
  eventFromWire,
  listFilterToWire,
  logEntryFromWire,
  specToWire,
  statusFromWire,
  stopReasonToWire,
} from "./convert.js";
import { ERROR_METADATA, fromWireError, GrpcStatus, type RuntimeServiceError } from "./errors.js";
import { readEventStreamHeaders } from "./event-stream.js";

/** PEM material to dial a TLS server. */
export interface ClientTlsOptions {
  /** CA certificates that sign the server's certificate (PEM); default: the system's roots. */
  ca?: string | Buffer;
  /** The client's certificate chain, for mutual TLS (PEM). */
  cert?: string | Buffer;
  /** The client's private key, for mutual TLS (PEM). */
  key?: string | Buffer;
  /** The name to verify the server's certificate against, when it differs from the address's host. */
  serverName?: string;
}

/** Options of {@link createRuntimeClient}. */
export interface RuntimeClientOptions {
  /** gRPC channel credentials; default plaintext. Exclusive with `tls`. */
  credentials?: ChannelCredentials;
  /** Dial with TLS; shorthand for `credentials`. */
  tls?: ClientTlsOptions;
  /** Sent as `authorization: Bearer <token>` on every runtime.v1 call. */
  token?: string;
  /** Extra grpc-js channel options. */
  channelOptions?: ChannelOptions;
}

/** Per-call options. */
export interface RuntimeCallOptions {
  /** Cancels the call; the returned promise rejects with the signal's reason. */
  signal?: AbortSignal;
  /** Fails the call with a retryable `BACKEND_UNAVAILABLE` (gRPC DEADLINE_EXCEEDED) after this long. */
  timeoutMs?: number;
}

/** Options of {@link RuntimeClient.events}. */
export interface EventsOptions {
  /** Only this workload's events. */
  workloadId?: string;
  /** Replay the retained events after this `seq` first (0: all retained); absent: live events only. */
  sinceSeq?: number;
  /** Ends the iteration. */
  signal?: AbortSignal;
  /**
   * Reconnect after a failure that may pass (`UNAVAILABLE`: the server went away, is
   * restarting or shutting down; `EVENTS_OVERFLOW`: this reader fell too far behind), and
   * go on after the last event seen, with no duplicate and no gap the kernel's retention
   * covers. When the server that answers is a new kernel (its `seq`s start over), the
   * stream goes on with everything that kernel retains. `true` uses the defaults.
   */
  resume?: boolean | EventsResumeOptions;
}

/** How {@link RuntimeClient.events} reconnects. */
export interface EventsResumeOptions {
  /** Wait before the first reconnect (default 100 ms); doubles after each failed one. */
  initialDelayMs?: number;
  /** Longest wait between reconnects (default 5,000 ms). */
  maxDelayMs?: number;
  /** Failed reconnects in a row before the iteration fails with the last error (default: no limit). */
  maxAttempts?: number;
}

/** The health of a server, as grpc.health.v1 reports it. */
export type ServingStatus = "SERVING" | "NOT_SERVING" | "UNKNOWN" | "SERVICE_UNKNOWN";

/** A remote kernel: the runtime.v1 calls with the kernel's own types. */
export interface RuntimeClient {
  /** The address this client dials. */
  readonly address: string;
  /** `kernel.create(spec)`: resolves with the running status (idempotent on `workloadId`). */
  create(spec: WorkloadSpec, options?: RuntimeCallOptions): Promise<WorkloadStatus>;
  /** `kernel.get(id)`: the status, or `undefined` when the kernel does not know the workload. */
  get(workloadId: string, options?: RuntimeCallOptions): Promise<WorkloadStatus | undefined>;
  /** `kernel.list(filter)`. */
  list(filter?: ListFilter, options?: RuntimeCallOptions): Promise<WorkloadStatus[]>;
  /** `kernel.touch(id)`: records activity. */
  touch(workloadId: string, options?: RuntimeCallOptions): Promise<void>;
  /** `kernel.stop(id, options)`: resolves with the stopped status. */
  stop(
    workloadId: string,
    options?: RuntimeCallOptions & { reason?: RequestedStopReason; graceMs?: number },
  ): Promise<WorkloadStatus>;
  /** `kernel.destroy(id, options)`: resolves once cleanup is confirmed. */
  destroy(workloadId: string, options?: RuntimeCallOptions & { graceMs?: number }): Promise<void>;
  /** `kernel.logs(id, options)`: the output line by line; ends quietly when `signal` aborts. */
  logs(
    workloadId: string,
    options?: { follow?: boolean; tail?: number; signal?: AbortSignal },
  ): AsyncIterableIterator<LogEntry>;
  /**
   * `kernel.events(options)`: retained events after `sinceSeq` (if given), then live ones, until
   * `signal` aborts. With `resume`, a stream the server or the network broke reconnects by
   * itself and goes on after the last event seen (see {@link EventsOptions.resume}); without
   * it, the iteration fails, and calling again with the last `seq` seen resumes it.
   */
  events(options?: EventsOptions): AsyncIterableIterator<TransitionEvent>;
  /** The server's health (grpc.health.v1 Check of the runtime.v1 service). */
  health(options?: RuntimeCallOptions): Promise<ServingStatus>;
  /** Resolves once the channel is connected; rejects with a retryable `BACKEND_UNAVAILABLE` after `timeoutMs`. */
  waitForReady(timeoutMs: number): Promise<void>;
  /** Closes the channel. */
  close(): void;
  [Symbol.dispose](): void;
}

function channelCredentials(options: RuntimeClientOptions): ChannelCredentials {
  if (options.credentials && options.tls) throw new TypeError("give either credentials or tls, not both");
  if (options.credentials) return options.credentials;
  if (!options.tls) return grpcCredentials.createInsecure();
  const pem = (v: string | Buffer | undefined) =>
    v === undefined ? null : typeof v === "string" ? Buffer.from(v) : v;
  return grpcCredentials.createSsl(pem(options.tls.ca), pem(options.tls.key), pem(options.tls.cert));
}

/** Waits `ms`, or less if `signal` aborts first. */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** A grpc-js unary method of a generated client. */
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => { cancel(): void };

/** One channel to a server, and how every call on it is made: metadata, deadline, cancelling, errors. */
class Connection {
  readonly target: string;
  readonly client: wire.RuntimeClient;
  /** Shares the runtime client's channel rather than opening a second one. */
  readonly health: HealthClient;
  readonly #token: string | undefined;

  constructor(target: string, options: RuntimeClientOptions) {
    this.target = target;
    this.#token = options.token;
    const channelOptions: ChannelOptions = {
      // Channelz only feeds a debugging service; its per-call bookkeeping is pure cost.
      "grpc.enable_channelz": 0,
      ...(options.tls?.serverName ? { "grpc.ssl_target_name_override": options.tls.serverName } : {}),
      ...options.channelOptions,
    };
    const creds = channelCredentials(options);
    this.client = new wire.RuntimeClient(target, creds, channelOptions);
    this.health = new HealthClient(target, creds, {
      ...channelOptions,
      channelOverride: this.client.getChannel(),
    });
  }

  /** The metadata of every runtime.v1 call: the bearer token, if any. */
  metadata(): Metadata {
    const m = new Metadata();
    if (this.#token !== undefined) m.set("authorization", `Bearer ${this.#token}`);
    return m;
  }

  /** A failed call as the kernel's error, saying which server was unavailable. */
  toError(error: ServiceError): RuntimeServiceError {
    const received = { code: error.code, details: error.details, metadata: trailersOf(error.metadata) };
    if (error.code === GrpcStatus.UNAVAILABLE && received.metadata[ERROR_METADATA.code] === undefined) {
      received.details = `runtime-kernel server at ${this.target} is unavailable: ${error.details}`;
    }
    return fromWireError(received, error);
  }

  /** Calls one unary method; an abort cancels the call and rejects with the signal's reason. */
  unary<Req, Res>(
    method: UnaryMethod<Req, Res>,
    request: Req,
    options: RuntimeCallOptions | undefined,
  ): Promise<Res> {
    const signal = options?.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const deadline: Partial<GrpcCallOptions> =
      options?.timeoutMs === undefined ? {} : { deadline: Date.now() + options.timeoutMs };
    return new Promise<Res>((resolve, reject) => {
      const onAbort = () => {
        call.cancel();
        reject(signal?.reason);
      };
      // Every method runs on the runtime client: the health client's share its channel.
      const call = method.call(this.client, request, this.metadata(), deadline, (error, response) => {
        signal?.removeEventListener("abort", onAbort);
        if (error) reject(signal?.aborted ? signal.reason : this.toError(error));
        else resolve(response);
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /** Reads one server stream, decoded; an abort of `signal` ends it quietly, as `kernel.events()` does. */
  async *stream<W, T>(
    open: () => AsyncIterable<W> & { cancel(): void },
    decode: (message: W) => T,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<T, void, undefined> {
    if (signal?.aborted) return;
    const call = open();
    const onAbort = () => call.cancel();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for await (const message of call) yield decode(message);
    } catch (error) {
      // Cancelled by our own signal: the iteration simply ends, as kernel.events() does.
      if (signal?.aborted && (error as ServiceError).code === GrpcStatus.CANCELLED) return;
      throw this.toError(error as ServiceError);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      // The consumer may stop early (break): release the server-side stream too.
      call.cancel();
    }
  }
}

/**
 * WatchEvents, reconnected when asked (`resume`) after a failure that may pass, going on
 * after the last event seen; a new kernel (a new epoch in the stream's headers) is read
 * from its start.
 */
async function* watchEvents(
  connection: Connection,
  opts: EventsOptions,
): AsyncGenerator<TransitionEvent, void, undefined> {
  const { workloadId, signal } = opts;
  const resume = opts.resume === true ? {} : opts.resume || undefined;
  let sinceSeq = opts.sinceSeq;
  let epoch: string | undefined;
  let failures = 0;
  for (;;) {
    let restarted = false;
    const open = () => {
      const call = connection.client.watchEvents({ workloadId, sinceSeq }, connection.metadata());
      // The headers come before any event: a new kernel is recognised before one is read.
      call.on("metadata", (headers: Metadata) => {
        const opened = readEventStreamHeaders(headers);
        failures = 0;
        if (epoch !== undefined && opened.epoch !== undefined && opened.epoch !== epoch) {
          // A new kernel: its seqs start over, so all it retains is news. Ask again for all of it.
          restarted = true;
          sinceSeq = 0;
          call.cancel();
        } else if (sinceSeq === undefined) {
          // Live only: from here on, so that a reconnect misses nothing in between.
          sinceSeq = opened.seq;
        }
        epoch = opened.epoch ?? epoch;
      });
      return call;
    };
    const decode = (message: wire.TransitionEvent) => {
      const event = eventFromWire(message);
      sinceSeq = event.seq;
      return event;
    };
    try {
      yield* connection.stream(open, decode, signal);
      return; // The server ended the stream: the kernel shut down.
    } catch (error) {
      if (restarted) continue;
      const failure = error as RuntimeServiceError;
      const mayPass = failure.status === GrpcStatus.UNAVAILABLE || failure.code === "EVENTS_OVERFLOW";
      // The break itself is the first failure; each reconnect that fails adds one.
      failures++;
      if (!resume || !mayPass || failures > (resume.maxAttempts ?? Number.POSITIVE_INFINITY)) throw failure;
      const initial = resume.initialDelayMs ?? 100;
      await pause(Math.min(resume.maxDelayMs ?? 5_000, initial * 2 ** (failures - 1)), signal);
      if (signal?.aborted) return;
    }
  }
}

/**
 * Dials a runtime.v1 server. `address` defaults to where `runtime-kernel serve` listens by
 * default (`$RUNTIME_KERNEL_ADDRESS`, else the user's private unix socket). The channel
 * connects lazily, on the first call.
 *
 * @example
 * ```ts
 * const client = createRuntimeClient("unix:/tmp/runtime-kernel-1000/runtime.sock");
 * const status = await client.create({ workloadId: "job-1", profile: "default", runnable: { command: ["sleep", "5"] } });
 * for await (const event of client.events({ workloadId: "job-1", sinceSeq: 0 })) console.log(event.state);
 * ```
 */
export function createRuntimeClient(address?: string, options: RuntimeClientOptions = {}): RuntimeClient {
  const target = grpcTarget(parseAddress(address ?? defaultAddress()));
  const connection = new Connection(target, options);
  const { client, health } = connection;
  const api: RuntimeClient = {
    address: target,
    async create(spec, callOpts) {
      return statusFromWire(await connection.unary(client.create, { spec: specToWire(spec) }, callOpts));
    },
    async get(workloadId, callOpts) {
      try {
        return statusFromWire(await connection.unary(client.get, { workloadId }, callOpts));
      } catch (error) {
        if ((error as RuntimeServiceError).code === "WORKLOAD_NOT_FOUND") return undefined;
        throw error;
      }
    },
    async list(filter, callOpts) {
      const response = await connection.unary(client.list, listFilterToWire(filter), callOpts);
      return response.workloads.map(statusFromWire);
    },
    async touch(workloadId, callOpts) {
      await connection.unary(client.touch, { workloadId }, callOpts);
    },
    async stop(workloadId, callOpts) {
      const request: wire.StopRequest = {
        workloadId,
        reason: callOpts?.reason === undefined ? undefined : stopReasonToWire(callOpts.reason),
        graceMs: callOpts?.graceMs,
      };
      return statusFromWire(await connection.unary(client.stop, request, callOpts));
    },
    async destroy(workloadId, callOpts) {
      await connection.unary(client.destroy, { workloadId, graceMs: callOpts?.graceMs }, callOpts);
    },
    logs(workloadId, logOpts = {}) {
      const request: wire.LogsRequest = { workloadId, follow: logOpts.follow ?? false, tail: logOpts.tail };
      return connection.stream(
        () => client.logs(request, connection.metadata()),
        logEntryFromWire,
        logOpts.signal,
      );
    },
    events(eventOpts = {}) {
      return watchEvents(connection, eventOpts);
    },
    async health(callOpts) {
      try {
        const response = await connection.unary(
          health.check,
          { service: wire.RuntimeClient.serviceName },
          callOpts,
        );
        return healthCheckResponse_ServingStatusToJSON(response.status) as ServingStatus;
      } catch (error) {
        if ((error as RuntimeServiceError).status === GrpcStatus.NOT_FOUND) return "SERVICE_UNKNOWN";
        throw error;
      }
    },
    waitForReady(timeoutMs) {
      return new Promise<void>((resolve, reject) => {
        client.waitForReady(Date.now() + timeoutMs, (error) => {
          if (!error) return resolve();
          reject(
            fromWireError({
              code: GrpcStatus.UNAVAILABLE,
              details: `runtime-kernel server at ${target} did not answer within ${timeoutMs} ms: ${error.message}`,
              metadata: {},
            }),
          );
        });
      });
    },
    close() {
      health.close();
      client.close();
    },
    [Symbol.dispose]() {
      api.close();
    },
  };
  return api;
}
