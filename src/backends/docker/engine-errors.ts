/**
 * What the engine's errors mean to the kernel. dockerode rejects with an `Error` carrying
 * `statusCode` and the engine's JSON message, or with a socket error (`ECONNREFUSED`,
 * `ENOENT`, ...) when the engine cannot be reached. Only the status and the engine's message
 * are kept: the request (a create body holds the environment, with its secrets) never is.
 * @module
 */
import { BackendUnavailableError, RuntimeKernelError } from "../../errors.js";

/** An engine error reduced to what is safe to keep. */
export class EngineError extends Error {
  readonly statusCode: number | undefined;
  constructor(statusCode: number | undefined, message: string) {
    super(message);
    this.name = "EngineError";
    this.statusCode = statusCode;
  }
}

const CONNECTION_CODES = new Set([
  "ENOENT",
  "ECONNREFUSED",
  "ECONNRESET",
  "EACCES",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ECONNABORTED",
]);

/** Whether `error` says the engine could not be reached (rather than that it refused the call). */
export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string" && CONNECTION_CODES.has(code)) return true;
  return /socket hang up/i.test(error.message);
}

/** The HTTP status of an engine error, if it has one. */
export function statusOf(error: unknown): number | undefined {
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === "number" ? status : undefined;
}

/** The engine's own message (`{"message": ...}`), without dockerode's `(HTTP code ...)` wrapping. */
export function engineMessage(error: unknown): string {
  const json = (error as { json?: unknown } | null)?.json;
  if (json && typeof json === "object" && typeof (json as { message?: unknown }).message === "string") {
    return (json as { message: string }).message.trim();
  }
  if (typeof json === "string" && json.trim()) return json.trim();
  if (error instanceof Error) return error.message.replace(/^\(HTTP code \d+\)\s*[^-]*-\s*/, "").trim();
  return String(error);
}

/** `error` reduced to an {@link EngineError} (status and engine message only). */
export function sanitize(error: unknown): Error {
  if (error instanceof RuntimeKernelError || error instanceof EngineError) return error;
  if (isConnectionError(error)) {
    const e = error as Error & { code?: string };
    return new EngineError(undefined, `${e.code ?? "connection error"}: ${e.message}`);
  }
  return new EngineError(statusOf(error), engineMessage(error));
}

/** Whether `error` is the engine's "no such container" (or image). */
export function isNotFound(error: unknown): boolean {
  return statusOf(error) === 404;
}

/** Whether `error` is a 409 conflict (name in use, container not running, removal in progress). */
export function isConflict(error: unknown): boolean {
  return statusOf(error) === 409;
}

/** The engine is unreachable: a retryable {@link BackendUnavailableError}. */
export function unavailable(what: string, error: unknown): BackendUnavailableError {
  return new BackendUnavailableError(`Docker engine unreachable while ${what}: ${sanitize(error).message}`, {
    cause: sanitize(error),
  });
}
