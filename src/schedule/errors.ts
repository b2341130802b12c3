/**
 * Errors of the scheduler: a firing that failed, and a store that cannot be used.
 * @module
 */
import { RuntimeKernelError, type RuntimeKernelErrorOptions } from "../index.js";

/**
 * A firing failed. `retryable` says whether the scheduler tries again (after the job's
 * backoff) or marks the job failed at once. A custom `dispatch` throws it with
 * `retryable: false` for a failure that no retry can fix; anything else it throws is retried.
 */
export class DispatchFailedError extends RuntimeKernelError {
  constructor(message: string, options: RuntimeKernelErrorOptions = {}) {
    super("DISPATCH_FAILED", message, { retryable: true, ...options });
  }
}

/** The store cannot be opened or reached: a journal held by another process, a Redis that does not answer, a missing client package. */
export class StoreUnavailableError extends RuntimeKernelError {
  constructor(message: string, options: RuntimeKernelErrorOptions = {}) {
    super("STORE_UNAVAILABLE", message, { retryable: true, ...options });
  }
}
