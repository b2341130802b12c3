/**
 * How kernel errors cross the wire. The server turns a {@link RuntimeKernelError} into a
 * gRPC status whose code a generic gRPC client understands (RESOURCE_EXHAUSTED, NOT_FOUND,
 * ...) and puts the kernel's stable `code` in the trailers, so a control plane in any
 * language can still match on `QUOTA_EXCEEDED` exactly. The client turns it back into a
 * {@link RuntimeServiceError}, itself a `RuntimeKernelError` with the same `code`, so
 * `isRuntimeKernelError(e, "QUOTA_EXCEEDED")` works the same in process and remote.
 *
 * Pure code (no grpc-js import): the status numbers are the ones fixed by the gRPC spec.
 * @module
 */
import { isRuntimeKernelError, RuntimeKernelError, type RuntimeKernelErrorCode } from "../errors.js";

/** gRPC status codes, as numbered by the gRPC specification (and `@grpc/grpc-js`'s `status`). */
export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** A gRPC status code number. */
export type GrpcStatusCode = (typeof GrpcStatus)[keyof typeof GrpcStatus];

/** The name of a gRPC status code (`"NOT_FOUND"` for 5). */
export function grpcStatusName(code: number): string {
  return (
    Object.keys(GrpcStatus).find((k) => GrpcStatus[k as keyof typeof GrpcStatus] === code) ?? String(code)
  );
}

/** Trailer keys that carry the kernel's view of an error next to the gRPC status. */
export const ERROR_METADATA = {
  /** The kernel's stable error code, for example `QUOTA_EXCEEDED`. */
  code: "runtime-kernel-error-code",
  /** `"true"` when retrying the same call later may succeed. */
  retryable: "runtime-kernel-retryable",
  /** The workload concerned, when there is one. */
  workloadId: "runtime-kernel-workload-id",
} as const;

/**
 * The gRPC status for each kernel error code. Two codes depend on the error's
 * `retryable` flag: a transient failure is UNAVAILABLE (a gRPC client may retry it), a
 * permanent one is FAILED_PRECONDITION (`START_FAILED`: bad image, missing program) or
 * INTERNAL (`CLEANUP_FAILED`).
 */
const STATUS_BY_CODE: Record<
  RuntimeKernelErrorCode,
  GrpcStatusCode | { retryable: GrpcStatusCode; permanent: GrpcStatusCode }
> = {
  INVALID_SPEC: GrpcStatus.INVALID_ARGUMENT,
  QUOTA_EXCEEDED: GrpcStatus.RESOURCE_EXHAUSTED,
  RESOURCE_EXHAUSTED: GrpcStatus.RESOURCE_EXHAUSTED,
  WORKLOAD_NOT_FOUND: GrpcStatus.NOT_FOUND,
  WORKLOAD_CONFLICT: GrpcStatus.FAILED_PRECONDITION,
  START_FAILED: { retryable: GrpcStatus.UNAVAILABLE, permanent: GrpcStatus.FAILED_PRECONDITION },
  START_ABORTED: GrpcStatus.ABORTED,
  WORKLOAD_LOST: GrpcStatus.NOT_FOUND,
  BACKEND_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
  BACKEND_ERROR: GrpcStatus.INTERNAL,
  CLEANUP_FAILED: { retryable: GrpcStatus.UNAVAILABLE, permanent: GrpcStatus.INTERNAL },
  KERNEL_SHUT_DOWN: GrpcStatus.UNAVAILABLE,
  EVENTS_OVERFLOW: GrpcStatus.RESOURCE_EXHAUSTED,
  UNSUPPORTED: GrpcStatus.UNIMPLEMENTED,
};

/** The gRPC status code for a kernel error code (and its `retryable` flag, for the two codes that depend on it). */
export function grpcStatusForCode(code: string, retryable = false): GrpcStatusCode {
  const entry = (
    STATUS_BY_CODE as Record<string, (typeof STATUS_BY_CODE)[RuntimeKernelErrorCode] | undefined>
  )[code];
  // A code from a newer kernel than this server knows: say so rather than guess.
  if (entry === undefined) return GrpcStatus.UNKNOWN;
  return typeof entry === "number" ? entry : retryable ? entry.retryable : entry.permanent;
}

/** A gRPC status ready to send: code, details and the trailers that carry the kernel's code. */
export interface WireError {
  code: GrpcStatusCode;
  details: string;
  /** Trailer entries (keys of {@link ERROR_METADATA}); empty for errors that are not the kernel's. */
  metadata: Record<string, string>;
}

/**
 * Turns anything a kernel call threw into the status to send. A `RuntimeKernelError`
 * keeps its message (the kernel has already scrubbed secrets from it); anything else is
 * a bug or an unexpected failure, sent as INTERNAL with its message only.
 */
export function toWireError(error: unknown): WireError {
  if (isRuntimeKernelError(error)) {
    const metadata: Record<string, string> = {
      [ERROR_METADATA.code]: error.code,
      [ERROR_METADATA.retryable]: String(error.retryable),
    };
    if (error.workloadId !== undefined) metadata[ERROR_METADATA.workloadId] = error.workloadId;
    return { code: grpcStatusForCode(error.code, error.retryable), details: error.message, metadata };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { code: GrpcStatus.INTERNAL, details: `internal error: ${message}`, metadata: {} };
}

/** The kernel error code a client reports for a status that carried none (transport failures, auth, ...). */
function codeForBareStatus(status: number): RuntimeKernelErrorCode {
  switch (status) {
    case GrpcStatus.UNAVAILABLE:
    case GrpcStatus.DEADLINE_EXCEEDED:
      // The server is the client's substrate: unreachable reads as a backend that is unavailable.
      return "BACKEND_UNAVAILABLE";
    case GrpcStatus.INVALID_ARGUMENT:
      return "INVALID_SPEC";
    case GrpcStatus.NOT_FOUND:
      return "WORKLOAD_NOT_FOUND";
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    default:
      return "BACKEND_ERROR";
  }
}

/**
 * A failed call to a runtime.v1 server, as the TypeScript client throws it: a
 * {@link RuntimeKernelError} with the kernel's `code` (from the trailers), plus the gRPC
 * `status` it travelled with.
 */
export class RuntimeServiceError extends RuntimeKernelError {
  /** The gRPC status code (see {@link GrpcStatus}). */
  readonly status: number;
  /** The gRPC status name, for example `RESOURCE_EXHAUSTED`. */
  readonly statusName: string;
  /**
   * Whether the kernel itself reported the error (its code came in the trailers). False when
   * the failure is gRPC's or the server's own: no server answered, a deadline passed, a token was refused.
   */
  readonly fromKernel: boolean;
  constructor(
    code: RuntimeKernelErrorCode,
    message: string,
    options: {
      status: number;
      fromKernel: boolean;
      workloadId?: string;
      retryable: boolean;
      cause?: unknown;
    },
  ) {
    super(code, message, options);
    this.status = options.status;
    this.statusName = grpcStatusName(options.status);
    this.fromKernel = options.fromKernel;
  }
}

/** What the client needs of a failed call: gRPC's ServiceError, reduced to plain data. */
export interface ReceivedStatus {
  code: number;
  details: string;
  /** Trailer values by key (first value of each). */
  metadata: Record<string, string | undefined>;
}

/** Turns a received gRPC error status back into the kernel's error. */
export function fromWireError(received: ReceivedStatus, cause?: unknown): RuntimeServiceError {
  const kernelCode = received.metadata[ERROR_METADATA.code];
  const code = (kernelCode || codeForBareStatus(received.code)) as RuntimeKernelErrorCode;
  const retryableHeader = received.metadata[ERROR_METADATA.retryable];
  const retryable =
    retryableHeader !== undefined
      ? retryableHeader === "true"
      : received.code === GrpcStatus.UNAVAILABLE ||
        received.code === GrpcStatus.DEADLINE_EXCEEDED ||
        received.code === GrpcStatus.RESOURCE_EXHAUSTED;
  const workloadId = received.metadata[ERROR_METADATA.workloadId];
  const details = received.details || grpcStatusName(received.code);
  return new RuntimeServiceError(code, details, {
    status: received.code,
    fromKernel: Boolean(kernelCode),
    retryable,
    ...(workloadId ? { workloadId } : {}),
    ...(cause !== undefined ? { cause } : {}),
  });
}
