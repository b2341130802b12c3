/**
 * How kernel errors cross the runtime.v1 wire. The mapping itself is the one gRPC boundary
 * every surface shares (`src/grpc/status.ts`): the server sends a status whose code a
 * generic gRPC client understands (RESOURCE_EXHAUSTED, NOT_FOUND, ...) with the kernel's
 * stable `code` in the trailers, so a control plane in any language can still match on
 * `QUOTA_EXCEEDED` exactly. The client turns it back into a {@link RuntimeServiceError},
 * itself a `RuntimeKernelError` with the same `code`, so `isRuntimeKernelError(e,
 * "QUOTA_EXCEEDED")` works the same in process and remote.
 * @module
 */
import { RuntimeKernelError, type RuntimeKernelErrorCode } from "../errors.js";
import { decodeStatus, grpcStatusName, type ReceivedStatus } from "../grpc/status.js";

export type { GrpcStatusCode, ReceivedStatus, WireError } from "../grpc/status.js";
export {
  ERROR_METADATA,
  GrpcStatus,
  grpcStatusForCode,
  grpcStatusName,
  toWireError,
} from "../grpc/status.js";

/**
 * A failed call to a runtime.v1 server, as the TypeScript client throws it: a
 * {@link RuntimeKernelError} with the kernel's `code` (from the trailers), plus the gRPC
 * `status` it travelled with.
 */
export class RuntimeServiceError extends RuntimeKernelError {
  /** The gRPC status code (see `GrpcStatus`). */
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

/** Turns a received gRPC error status back into the kernel's error. */
export function fromWireError(received: ReceivedStatus, cause?: unknown): RuntimeServiceError {
  const { code, message, ...rest } = decodeStatus(received);
  return new RuntimeServiceError(code, message, {
    status: received.code,
    ...rest,
    cause,
  });
}
