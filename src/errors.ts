/**
 * Every error the library throws is a {@link RuntimeKernelError} with a stable
 * string `code`: callers match on `code`, never on the message or class name.
 * This module is a leaf: the kernel, the backends and the Gestalt layer all import it.
 * @module
 */

/** The stable error codes. New codes may be added in minor versions; existing ones never change. */
export type RuntimeKernelErrorCode =
  | "INVALID_SPEC"
  | "QUOTA_EXCEEDED"
  | "START_FAILED"
  | "START_ABORTED"
  | "WORKLOAD_NOT_FOUND"
  | "WORKLOAD_CONFLICT"
  | "WORKLOAD_LOST"
  | "BACKEND_UNAVAILABLE"
  | "BACKEND_ERROR"
  | "CLEANUP_FAILED"
  | "RESOURCE_EXHAUSTED"
  | "KERNEL_SHUT_DOWN"
  | "EVENTS_OVERFLOW"
  | "CALLBACK_DROPPED"
  | "UNSUPPORTED"
  | "DISPATCH_FAILED"
  | "STORE_UNAVAILABLE";

/** Options accepted by every {@link RuntimeKernelError} constructor. */
export interface RuntimeKernelErrorOptions {
  /** The underlying error, kept for diagnosis. */
  cause?: unknown;
  /** The workload concerned, when there is one. */
  workloadId?: string;
  /** Whether retrying the same call later may succeed. */
  retryable?: boolean;
}

/**
 * The base of every error thrown by runtime-kernel.
 *
 * @example
 * ```ts
 * try { await kernel.create(spec) } catch (e) {
 *   if (isRuntimeKernelError(e, "QUOTA_EXCEEDED")) return tooManyRequests();
 *   throw e;
 * }
 * ```
 */
export class RuntimeKernelError extends Error {
  /** The stable code callers match on. */
  readonly code: RuntimeKernelErrorCode;
  /** The workload concerned, when there is one. */
  readonly workloadId?: string;
  /** Whether retrying the same call later may succeed. */
  readonly retryable: boolean;

  constructor(code: RuntimeKernelErrorCode, message: string, options: RuntimeKernelErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    if (options.workloadId !== undefined) this.workloadId = options.workloadId;
    this.retryable = options.retryable ?? false;
  }

  /** A plain-JSON view (for events, statuses and wire formats): code and message, never the cause. */
  toJSON(): SerializedError {
    return {
      code: this.code,
      message: this.message,
      ...(this.workloadId ? { workloadId: this.workloadId } : {}),
    };
  }
}

/** The plain-JSON form of an error, as carried in events and statuses. */
export interface SerializedError {
  code: RuntimeKernelErrorCode | string;
  message: string;
  workloadId?: string;
}

/** One problem found while validating input. `path` names the field, e.g. `env.API_KEY`. */
export interface ValidationIssue {
  path: string;
  message: string;
}

/** Input was refused at the boundary. Nothing was started and nothing was changed. */
export class InvalidSpecError extends RuntimeKernelError {
  /** Every problem found, each naming its field. */
  readonly issues: readonly ValidationIssue[];
  constructor(
    issues: readonly ValidationIssue[],
    options: RuntimeKernelErrorOptions & { subject?: string } = {},
  ) {
    const subject = options.subject ?? "workload spec";
    const detail = issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join("; ");
    super("INVALID_SPEC", `Invalid ${subject}: ${detail}`, options);
    this.issues = issues;
  }
}

/** The owner already has as many live workloads as its quota allows. Nothing was started. */
export class QuotaExceededError extends RuntimeKernelError {
  readonly owner: string;
  readonly limit: number;
  constructor(owner: string, limit: number, options: RuntimeKernelErrorOptions = {}) {
    super("QUOTA_EXCEEDED", `Owner "${owner}" already has ${limit} live workload(s), the quota`, {
      retryable: true,
      ...options,
    });
    this.owner = owner;
    this.limit = limit;
  }
}

/** No workload with that id is known to the kernel. */
export class WorkloadNotFoundError extends RuntimeKernelError {
  constructor(workloadId: string, options: RuntimeKernelErrorOptions = {}) {
    super("WORKLOAD_NOT_FOUND", `No workload "${workloadId}"`, { workloadId, ...options });
  }
}

/** The call conflicts with the workload's current state or owner. */
export class WorkloadConflictError extends RuntimeKernelError {
  constructor(workloadId: string, message: string, options: RuntimeKernelErrorOptions = {}) {
    super("WORKLOAD_CONFLICT", message, { workloadId, ...options });
  }
}

/** The backend could not start the workload. `cause` holds the backend's error. */
export class StartFailedError extends RuntimeKernelError {
  constructor(workloadId: string, message: string, options: RuntimeKernelErrorOptions = {}) {
    super("START_FAILED", message, { workloadId, ...options });
  }
}

/** A start was aborted through its AbortSignal; the backend left nothing behind. */
export class StartAbortedError extends RuntimeKernelError {
  constructor(workloadId: string, options: RuntimeKernelErrorOptions = {}) {
    super("START_ABORTED", `Start of "${workloadId}" was aborted`, { workloadId, ...options });
  }
}

/** The backend can no longer find the workload (deleted behind the kernel's back, node gone, ...). */
export class WorkloadLostError extends RuntimeKernelError {
  constructor(workloadId: string, message?: string, options: RuntimeKernelErrorOptions = {}) {
    super("WORKLOAD_LOST", message ?? `Workload "${workloadId}" can no longer be found by its backend`, {
      workloadId,
      ...options,
    });
  }
}

/** The backend's substrate (engine, API server, supervisor) cannot be reached. */
export class BackendUnavailableError extends RuntimeKernelError {
  constructor(message: string, options: RuntimeKernelErrorOptions = {}) {
    super("BACKEND_UNAVAILABLE", message, { retryable: true, ...options });
  }
}

/** Reclaiming a workload's resources failed; the workload stays `stopped` and the reaper retries. */
export class CleanupFailedError extends RuntimeKernelError {
  constructor(workloadId: string, message: string, options: RuntimeKernelErrorOptions = {}) {
    super("CLEANUP_FAILED", message, { workloadId, ...options });
  }
}

/** A budget (file descriptors, processes, ...) would be exceeded; nothing was started. */
export class ResourceExhaustedError extends RuntimeKernelError {
  constructor(message: string, options: RuntimeKernelErrorOptions = {}) {
    super("RESOURCE_EXHAUSTED", message, { retryable: true, ...options });
  }
}

/** The kernel is shutting down or has shut down and accepts no new work. */
export class KernelShutDownError extends RuntimeKernelError {
  constructor(options: RuntimeKernelErrorOptions = {}) {
    super("KERNEL_SHUT_DOWN", "The kernel has been shut down", options);
  }
}

/**
 * A workload's callback could not be delivered within its retry budget (attempts or age)
 * and was dropped; later events of the workload go on. Reported on the HTTP surface's `error`
 * listeners, never thrown at a caller.
 */
export class CallbackDroppedError extends RuntimeKernelError {
  /** The dropped event's idempotency key. */
  readonly eventId: string;
  /** How many deliveries were tried. */
  readonly attempts: number;
  constructor(
    workloadId: string,
    eventId: string,
    attempts: number,
    message: string,
    options: RuntimeKernelErrorOptions = {},
  ) {
    super("CALLBACK_DROPPED", message, { workloadId, ...options });
    this.eventId = eventId;
    this.attempts = attempts;
  }
}

/** The class behind each code that has one of its own. */
interface ErrorByCode {
  INVALID_SPEC: InvalidSpecError;
  QUOTA_EXCEEDED: QuotaExceededError;
  START_FAILED: StartFailedError;
  START_ABORTED: StartAbortedError;
  WORKLOAD_NOT_FOUND: WorkloadNotFoundError;
  WORKLOAD_CONFLICT: WorkloadConflictError;
  WORKLOAD_LOST: WorkloadLostError;
  BACKEND_UNAVAILABLE: BackendUnavailableError;
  CLEANUP_FAILED: CleanupFailedError;
  RESOURCE_EXHAUSTED: ResourceExhaustedError;
  KERNEL_SHUT_DOWN: KernelShutDownError;
  CALLBACK_DROPPED: CallbackDroppedError;
}

/** The error type that `code` narrows to (for example `InvalidSpecError` for `INVALID_SPEC`, with its `issues`). */
export type RuntimeKernelErrorFor<C extends RuntimeKernelErrorCode> = C extends keyof ErrorByCode
  ? ErrorByCode[C]
  : RuntimeKernelError;

/**
 * Whether `error` is a {@link RuntimeKernelError}, optionally with the given `code` (and then
 * narrowed to that code's class). Works across copies of the library: it matches on shape,
 * not on `instanceof`.
 */
export function isRuntimeKernelError(error: unknown): error is RuntimeKernelError;
export function isRuntimeKernelError<C extends RuntimeKernelErrorCode>(
  error: unknown,
  code: C,
): error is RuntimeKernelErrorFor<C>;
export function isRuntimeKernelError(error: unknown, code?: RuntimeKernelErrorCode): boolean {
  if (!(error instanceof Error)) return false;
  const c = (error as { code?: unknown }).code;
  if (typeof c !== "string" || typeof (error as { retryable?: unknown }).retryable !== "boolean")
    return false;
  return code === undefined || c === code;
}

/** Turns anything thrown into the plain-JSON form carried by events and statuses. */
export function serializeError(error: unknown): SerializedError {
  if (isRuntimeKernelError(error)) return { code: error.code, message: error.message };
  if (error instanceof Error) return { code: "BACKEND_ERROR", message: error.message };
  return { code: "BACKEND_ERROR", message: String(error) };
}
