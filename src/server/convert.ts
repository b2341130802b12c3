/**
 * The two vocabularies of runtime.v1 and the mapping between them: the kernel's public
 * TypeScript types (epoch-ms numbers, string unions, absent optionals) and the generated
 * wire types (Dates for Timestamps, numeric enums, empty defaults). Both directions are
 * here so that a round trip is the identity: what a remote client sees is exactly what
 * `kernel.get()` returns in process.
 *
 * Wire input is validated as it is converted: an unknown enum value or an impossible stop
 * reason is an {@link InvalidSpecError} naming the field, sent as INVALID_ARGUMENT.
 * @module
 */
import type { Runnable } from "../backends/backend.js";
import { InvalidSpecError, type SerializedError } from "../errors.js";
import * as wire from "../gen/runtime/v1/runtime.js";
import type {
  ListFilter,
  LogEntry,
  RequestedStopReason,
  StopReason,
  TransitionEvent,
  WorkloadSpec,
  WorkloadState,
  WorkloadStatus,
} from "../index.js";

const STATES: Record<WorkloadState, wire.WorkloadState> = {
  starting: wire.WorkloadState.WORKLOAD_STATE_STARTING,
  running: wire.WorkloadState.WORKLOAD_STATE_RUNNING,
  stopping: wire.WorkloadState.WORKLOAD_STATE_STOPPING,
  stopped: wire.WorkloadState.WORKLOAD_STATE_STOPPED,
  destroyed: wire.WorkloadState.WORKLOAD_STATE_DESTROYED,
};
const STATE_NAMES = invert(STATES);

const REASONS: Record<StopReason, wire.StopReason> = {
  requested: wire.StopReason.STOP_REASON_REQUESTED,
  idle_timeout: wire.StopReason.STOP_REASON_IDLE_TIMEOUT,
  max_lifetime: wire.StopReason.STOP_REASON_MAX_LIFETIME,
  shutdown: wire.StopReason.STOP_REASON_SHUTDOWN,
  completed: wire.StopReason.STOP_REASON_COMPLETED,
  failed: wire.StopReason.STOP_REASON_FAILED,
  oom: wire.StopReason.STOP_REASON_OOM,
  lost: wire.StopReason.STOP_REASON_LOST,
  start_failed: wire.StopReason.STOP_REASON_START_FAILED,
};
const REASON_NAMES = invert(REASONS);

/** The reasons a caller may give to `stop()`; the others are the kernel's to decide. */
const REQUESTABLE: ReadonlySet<StopReason> = new Set<RequestedStopReason>([
  "requested",
  "idle_timeout",
  "max_lifetime",
  "shutdown",
]);

function invert<K extends string, V extends number>(record: Record<K, V>): Map<number, K> {
  return new Map(Object.entries(record).map(([k, v]) => [v as number, k as K]));
}

function invalid(path: string, message: string, subject = "request"): InvalidSpecError {
  return new InvalidSpecError([{ path, message }], { subject });
}

/** The wire enum of a state. */
export function stateToWire(state: WorkloadState): wire.WorkloadState {
  return STATES[state];
}

/** The state named by a wire enum; throws {@link InvalidSpecError} naming `path` for anything else. */
export function stateFromWire(value: wire.WorkloadState, path = "state"): WorkloadState {
  const state = STATE_NAMES.get(value);
  if (state === undefined) throw invalid(path, `unknown workload state ${value}`);
  return state;
}

/** The wire enum of a stop reason. */
export function stopReasonToWire(reason: StopReason): wire.StopReason {
  return REASONS[reason];
}

/** The stop reason named by a wire enum; throws {@link InvalidSpecError} naming `path` for anything else. */
export function stopReasonFromWire(value: wire.StopReason, path = "stopReason"): StopReason {
  const reason = REASON_NAMES.get(value);
  if (reason === undefined) throw invalid(path, `unknown stop reason ${value}`);
  return reason;
}

const ms = (value: number | undefined): Date | undefined =>
  value === undefined ? undefined : new Date(value);
const epoch = (value: Date | undefined): number | undefined =>
  value === undefined ? undefined : value.getTime();

function errorToWire(error: SerializedError | undefined): wire.WorkloadError | undefined {
  if (error === undefined) return undefined;
  return { code: error.code, message: error.message, workloadId: error.workloadId };
}

function errorFromWire(error: wire.WorkloadError | undefined): SerializedError | undefined {
  if (error === undefined) return undefined;
  const out: SerializedError = { code: error.code, message: error.message };
  if (error.workloadId !== undefined) out.workloadId = error.workloadId;
  return out;
}

/** Copies the defined entries only: the kernel's types mark absence by a missing key, not by `undefined`. */
function defined<T extends object>(object: T): T {
  for (const key of Object.keys(object) as (keyof T)[]) if (object[key] === undefined) delete object[key];
  return object;
}

const nonEmpty = (map: Record<string, string>): Record<string, string> | undefined =>
  Object.keys(map).length > 0 ? map : undefined;

/** A status as sent on the wire. */
export function statusToWire(status: WorkloadStatus): wire.WorkloadStatus {
  return {
    workloadId: status.workloadId,
    runId: status.runId,
    owner: status.owner,
    profile: status.profile,
    state: STATES[status.state],
    createdAt: ms(status.createdAt),
    startedAt: ms(status.startedAt),
    stoppedAt: ms(status.stoppedAt),
    exitCode: status.exitCode,
    signal: status.signal,
    stopReason: status.stopReason === undefined ? undefined : REASONS[status.stopReason],
    error: errorToWire(status.error),
    restarts: status.restarts,
    restartAt: ms(status.restartAt),
    ports: status.ports ?? {},
    idleDeadline: ms(status.idleDeadline),
    maxLifetimeDeadline: ms(status.maxLifetimeDeadline),
    traceId: status.traceId,
  };
}

/** A status received from the wire, in the kernel's own shape. */
export function statusFromWire(status: wire.WorkloadStatus): WorkloadStatus {
  return defined<WorkloadStatus>({
    workloadId: status.workloadId,
    runId: status.runId,
    owner: status.owner,
    profile: status.profile,
    state: stateFromWire(status.state),
    createdAt: epoch(status.createdAt) ?? 0,
    startedAt: epoch(status.startedAt),
    stoppedAt: epoch(status.stoppedAt),
    exitCode: status.exitCode,
    signal: status.signal,
    stopReason: status.stopReason === undefined ? undefined : stopReasonFromWire(status.stopReason),
    error: errorFromWire(status.error),
    restarts: status.restarts,
    restartAt: epoch(status.restartAt),
    ports: nonEmpty(status.ports),
    idleDeadline: epoch(status.idleDeadline),
    maxLifetimeDeadline: epoch(status.maxLifetimeDeadline),
    traceId: status.traceId,
  });
}

/** A transition event as sent on the wire. */
export function eventToWire(event: TransitionEvent): wire.TransitionEvent {
  return {
    workloadId: event.workloadId,
    runId: event.runId,
    owner: event.owner,
    profile: event.profile,
    from: event.from === null ? undefined : STATES[event.from],
    state: STATES[event.state],
    at: new Date(event.at),
    seq: event.seq,
    exitCode: event.exitCode,
    signal: event.signal,
    stopReason: event.stopReason === undefined ? undefined : REASONS[event.stopReason],
    error: errorToWire(event.error),
    ports: event.ports ?? {},
    restart: event.restart,
    recovered: event.recovered,
    traceId: event.traceId,
  };
}

/** A transition event received from the wire, in the kernel's own shape. */
export function eventFromWire(event: wire.TransitionEvent): TransitionEvent {
  return defined<TransitionEvent>({
    workloadId: event.workloadId,
    runId: event.runId,
    owner: event.owner,
    profile: event.profile,
    from: event.from === undefined ? null : stateFromWire(event.from, "from"),
    state: stateFromWire(event.state),
    at: epoch(event.at) ?? 0,
    seq: event.seq,
    exitCode: event.exitCode,
    signal: event.signal,
    stopReason: event.stopReason === undefined ? undefined : stopReasonFromWire(event.stopReason),
    error: errorFromWire(event.error),
    ports: nonEmpty(event.ports),
    restart: event.restart,
    recovered: event.recovered,
    traceId: event.traceId,
  });
}

const KNOWN_RUNNABLE_KEYS = new Set(["command", "image", "cwd"]);

function runnableToWire(runnable: Partial<Runnable> | undefined): wire.Runnable | undefined {
  if (runnable === undefined) return undefined;
  const extra: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(runnable)) {
    if (!KNOWN_RUNNABLE_KEYS.has(key) && value !== undefined) extra[key] = value;
  }
  return {
    command: runnable.command ?? [],
    image: runnable.image,
    cwd: runnable.cwd,
    extra: Object.keys(extra).length > 0 ? extra : undefined,
  };
}

function runnableFromWire(runnable: wire.Runnable | undefined): Partial<Runnable> | undefined {
  if (runnable === undefined) return undefined;
  // Extras first: the typed fields are authoritative when a Struct also names them.
  const out: Partial<Runnable> = { ...(runnable.extra ?? {}) };
  if (runnable.command.length > 0) out.command = runnable.command;
  if (runnable.image !== undefined) out.image = runnable.image;
  if (runnable.cwd !== undefined) out.cwd = runnable.cwd;
  return out;
}

/** A spec as sent on the wire. */
export function specToWire(spec: WorkloadSpec): wire.WorkloadSpec {
  return {
    workloadId: spec.workloadId,
    profile: spec.profile,
    owner: spec.owner,
    env: spec.env ?? {},
    runnable: runnableToWire(spec.runnable),
    resources: spec.resources,
    workspace: spec.workspace,
    idleTimeoutMs: spec.idleTimeoutMs,
    maxLifetimeMs: spec.maxLifetimeMs,
    graceMs: spec.graceMs,
    labels: spec.labels ?? {},
    traceId: spec.traceId,
    mounts: (spec.mounts ?? []).map((m) => ({
      source: m.source,
      target: m.target,
      readOnly: m.readOnly ?? false,
    })),
  };
}

/**
 * A spec received from the wire, for `kernel.create()` (which validates it in full). A
 * missing `spec` is refused here, naming the field.
 */
export function specFromWire(spec: wire.WorkloadSpec | undefined): WorkloadSpec {
  if (spec === undefined) throw invalid("spec", "is required", "workload spec");
  return defined<WorkloadSpec>({
    workloadId: spec.workloadId,
    profile: spec.profile,
    owner: spec.owner,
    env: nonEmpty(spec.env),
    runnable: runnableFromWire(spec.runnable),
    resources: spec.resources === undefined ? undefined : defined({ ...spec.resources }),
    workspace: spec.workspace,
    idleTimeoutMs: spec.idleTimeoutMs,
    maxLifetimeMs: spec.maxLifetimeMs,
    graceMs: spec.graceMs,
    labels: nonEmpty(spec.labels),
    traceId: spec.traceId,
    mounts:
      spec.mounts.length === 0
        ? undefined
        : spec.mounts.map((m) => (m.readOnly ? { ...m } : { source: m.source, target: m.target })),
  });
}

/** A list filter as sent on the wire. */
export function listFilterToWire(filter: ListFilter = {}): wire.ListRequest {
  const states =
    filter.state === undefined ? [] : typeof filter.state === "string" ? [filter.state] : filter.state;
  return { owner: filter.owner, profile: filter.profile, states: states.map((s) => STATES[s]) };
}

/** A list filter received from the wire. */
export function listFilterFromWire(request: wire.ListRequest): ListFilter {
  const states = request.states.map((s, i) => stateFromWire(s, `states.${i}`));
  return defined<ListFilter>({
    owner: request.owner,
    profile: request.profile,
    state: states.length === 0 ? undefined : states.length === 1 ? states[0] : states,
  });
}

/** The options of `kernel.stop()` from a wire request; refuses reasons only the kernel may give. */
export function stopOptionsFromWire(request: wire.StopRequest): {
  reason?: RequestedStopReason;
  graceMs?: number;
} {
  const out: { reason?: RequestedStopReason; graceMs?: number } = {};
  if (request.reason !== undefined) {
    const reason = stopReasonFromWire(request.reason, "reason");
    if (!REQUESTABLE.has(reason)) {
      throw invalid(
        "reason",
        `must be one of REQUESTED, IDLE_TIMEOUT, MAX_LIFETIME, SHUTDOWN (got ${reason})`,
      );
    }
    out.reason = reason as RequestedStopReason;
  }
  if (request.graceMs !== undefined) out.graceMs = request.graceMs;
  return out;
}

/** A log line as sent on the wire. */
export function logEntryToWire(entry: LogEntry): wire.LogEntry {
  return {
    stream: entry.stream === "stderr" ? wire.LogStream.LOG_STREAM_STDERR : wire.LogStream.LOG_STREAM_STDOUT,
    line: entry.line,
    at: ms(entry.at),
  };
}

/** A log line received from the wire. */
export function logEntryFromWire(entry: wire.LogEntry): LogEntry {
  return defined<LogEntry>({
    stream: entry.stream === wire.LogStream.LOG_STREAM_STDERR ? "stderr" : "stdout",
    line: entry.line,
    at: epoch(entry.at),
  });
}

/** Refuses an empty workload id before it reaches the kernel, naming the field. */
export function requireWorkloadId(workloadId: string): string {
  if (workloadId === "") throw invalid("workloadId", "is required");
  return workloadId;
}
