/**
 * Credential hygiene. A {@link CredentialBroker} hands out secrets at start time; the
 * kernel passes them to `backend.start` inside `StartRequest.env` and keeps them
 * nowhere else. Anything a backend throws while it held them is scrubbed before it
 * reaches an event, a status or a caller.
 * @module
 */

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
