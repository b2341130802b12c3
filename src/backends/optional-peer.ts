/**
 * Loads an optional peer dependency (dockerode, @kubernetes/client-node) when the entry that
 * needs it is imported. Synchronous and resolved from this package's own location, so it
 * works the same from the ESM and the CommonJS build, and a missing peer fails the import at
 * once with an error that says what to install, rather than a resolver's stack trace.
 * @module
 */
import { createRequire } from "node:module";
import { BackendUnavailableError } from "../errors.js";

const requireFromHere = createRequire(import.meta.url);

/** Whether `error` says that `name` itself (not something it depends on) could not be found. */
function isMissing(error: unknown, name: string): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  return (
    (code === "MODULE_NOT_FOUND" || code === "ERR_MODULE_NOT_FOUND") &&
    typeof message === "string" &&
    message.includes(`'${name}'`)
  );
}

/**
 * Loads `name` for `entry`; throws {@link BackendUnavailableError} (not retryable) naming the
 * package to install when it is absent.
 */
export function requirePeer<T>(name: string, entry: string): T {
  try {
    return requireFromHere(name) as T;
  } catch (error) {
    if (!isMissing(error, name)) throw error;
    throw new BackendUnavailableError(
      `${entry} needs the package ${name}, which is not installed (it is an optional peer dependency): npm install ${name}`,
      { cause: error, retryable: false },
    );
  }
}
