/**
 * Signed callbacks. With a signing secret, each delivery attempt carries
 * `X-Runtime-Timestamp` (Unix seconds) and `X-Runtime-Signature: sha256=<hex>`, the
 * HMAC-SHA256 of `<timestamp>.<body>` under the secret, so a receiver in any language can
 * check that the body came from this kernel, unmodified, recently (the timestamp bounds
 * replays). `X-Runtime-Event-Id` is the idempotency key: the same on every retry of an event.
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/** The headers of a callback, lower-case as Node reports them. */
export const CALLBACK_HEADERS = {
  /** The event's idempotency key: equal on every retry, distinct between events. */
  eventId: "x-runtime-event-id",
  /** Unix seconds at which this attempt was signed. */
  timestamp: "x-runtime-timestamp",
  /** `sha256=` and the hex HMAC-SHA256 of `<timestamp>.<body>` (only with a signing secret). */
  signature: "x-runtime-signature",
  /** The trace id of the request that created the workload, when it had one. */
  traceId: "x-trace-id",
} as const;

/** The `X-Runtime-Signature` value for a body sent at `timestamp` (Unix seconds). */
export function signCallback(secret: string | Buffer, timestamp: number, body: string): string {
  return `sha256=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** What {@link verifyCallbackSignature} checks. */
export interface VerifyCallbackOptions {
  /** The shared signing secret. */
  secret: string | Buffer;
  /** The raw request body, exactly as received (not re-serialised JSON). */
  body: string | Buffer;
  /** The request's headers (Node's lower-case `IncomingHttpHeaders` shape). */
  headers: Record<string, string | string[] | undefined>;
  /** How far the timestamp may be from now, in seconds. Default 300. */
  toleranceSec?: number;
  /** Unix seconds now (for tests). Default the system clock. */
  now?: number;
}

/**
 * Whether a received callback is signed by `secret` and recent: the receiver's side of
 * {@link signCallback}, compared in constant time.
 *
 * @example
 * ```ts
 * if (!verifyCallbackSignature({ secret, body: rawBody, headers: req.headers })) return res.writeHead(401).end();
 * ```
 */
export function verifyCallbackSignature(options: VerifyCallbackOptions): boolean {
  const one = (name: string) => {
    const value = options.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const timestamp = one(CALLBACK_HEADERS.timestamp);
  const signature = one(CALLBACK_HEADERS.signature);
  if (!timestamp || !signature || !/^\d{1,12}$/.test(timestamp)) return false;
  const now = options.now ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > (options.toleranceSec ?? 300)) return false;
  const expected = Buffer.from(signCallback(options.secret, Number(timestamp), options.body.toString()));
  const given = Buffer.from(signature);
  return given.length === expected.length && timingSafeEqual(given, expected);
}
