/**
 * Credential hygiene. A {@link CredentialBroker} hands out secrets at start time; the
 * kernel passes them to `backend.start` inside `StartRequest.env` and keeps them
 * nowhere else. Anything a backend throws while it held them is scrubbed before it
 * reaches an event, a status or a caller.
 * @module
 */
import { StartFailedError } from "../errors.js";
import { ENV_NAME } from "../name-rules.js";

/** Who is asking for credentials. */
export interface CredentialRequest {
  workloadId: string;
  runId: string;
  profile: string;
  owner?: string;
}

/** Supplies secrets (API keys, tokens) for one run, as environment variables. */
export interface CredentialBroker {
  /** Called once per run, just before `backend.start`. */
  credentials(request: CredentialRequest): Promise<Record<string, string>> | Record<string, string>;
}

const REDACTED = "[REDACTED]";

/** Replaces every secret value in `text` (values shorter than 4 characters are too common to scrub). */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 4) out = out.split(secret).join(REDACTED);
  return out;
}

/**
 * Returns an error safe to keep: the same class and code, with secrets scrubbed from its
 * message and stack, and from its cause chain.
 */
export function redactError(error: unknown, secrets: readonly string[]): unknown {
  if (secrets.length === 0) return error;
  if (!(error instanceof Error)) return typeof error === "string" ? redact(error, secrets) : error;
  error.message = redact(error.message, secrets);
  if (error.stack) error.stack = redact(error.stack, secrets);
  const cause = (error as { cause?: unknown }).cause;
  if (cause !== undefined && cause !== error) {
    (error as { cause?: unknown }).cause = redactError(cause, secrets);
  }
  for (const key of [
    "command",
    "escapedCommand",
    "shortMessage",
    "originalMessage",
    "stderr",
    "stdout",
    "all",
  ]) {
    const value = (error as unknown as Record<string, unknown>)[key];
    if (typeof value === "string")
      (error as unknown as Record<string, unknown>)[key] = redact(value, secrets);
  }
  return error;
}

/** A name safe to quote from a thrown error (its class or code), or undefined. */
function quotable(value: unknown): string | undefined {
  return typeof value === "string" && /^[A-Za-z][A-Za-z0-9_]{0,63}$/.test(value) ? value : undefined;
}

/**
 * Asks `broker` for one run's credentials. What a broker throws may quote the very secrets it
 * guards (a vault URL with a token, a refused key), and the kernel does not know them yet to
 * scrub them, so its message is never kept: the run fails with `START_FAILED` naming only the
 * error's class and code, retryable when the broker's error says so. A result that is not a
 * map of environment variables to strings is refused the same way, without quoting it.
 */
export async function brokerCredentials(
  broker: CredentialBroker,
  request: CredentialRequest,
): Promise<Record<string, string>> {
  const failed = (what: string, retryable = false) =>
    new StartFailedError(
      request.workloadId,
      `The credential broker ${what} for "${request.workloadId}" (its message is not kept: it may hold a secret)`,
      { retryable },
    );
  let credentials: unknown;
  try {
    credentials = await broker.credentials(request);
  } catch (error) {
    const e = error as { name?: unknown; code?: unknown; retryable?: unknown } | null;
    const name = quotable(e?.name) ?? typeof error;
    const code = quotable(e?.code);
    throw failed(`threw ${name}${code ? ` ${code}` : ""}`, e?.retryable === true);
  }
  if (
    typeof credentials !== "object" ||
    credentials === null ||
    Object.entries(credentials).some(([key, value]) => !ENV_NAME.test(key) || typeof value !== "string")
  ) {
    throw failed("returned something other than environment variable names mapped to strings");
  }
  return credentials as Record<string, string>;
}
