/**
 * One HTTP request, from arrival to answer: its trace id, the checks every route shares (a
 * server draining, a browser's Origin, the bearer token), routing, the JSON body, the error
 * answer of each failure, and the request's log line. It owns no route; what a route does is
 * its group's (routes/).
 * @module
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { InvalidSpecError, isRuntimeKernelError, type RuntimeKernelErrorCode } from "../errors.js";
import { issuesOf } from "../zod-issues.js";
import type { WireError } from "./contract.js";
import type { HttpLogEntry } from "./handler.js";
import type { Route, RouteReply, Router } from "./router.js";

/** The header that carries a request's trace id, in and out. */
export const TRACE_HEADER = "x-trace-id";

/** The HTTP status of each kernel error code. */
const STATUS_BY_CODE: Record<RuntimeKernelErrorCode, number> = {
  INVALID_SPEC: 400,
  WORKLOAD_NOT_FOUND: 404,
  WORKLOAD_CONFLICT: 409,
  QUOTA_EXCEEDED: 429,
  UNSUPPORTED: 501,
  START_FAILED: 502,
  START_ABORTED: 502,
  WORKLOAD_LOST: 502,
  BACKEND_ERROR: 502,
  CLEANUP_FAILED: 502,
  BACKEND_UNAVAILABLE: 503,
  RESOURCE_EXHAUSTED: 503,
  KERNEL_SHUT_DOWN: 503,
  EVENTS_OVERFLOW: 503,
  CALLBACK_DROPPED: 500,
  DISPATCH_FAILED: 502,
  STORE_UNAVAILABLE: 503,
};
/** Past this much discarded body, the connection is cut rather than drained. */
const MAX_DISCARD_BYTES = 64 * 1024 * 1024;
const TRACE_ID = /^[\x21-\x7e]{1,128}$/;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

function errorBody(error: unknown): { status: number; body: WireError; headers: Record<string, string> } {
  if (error instanceof HttpError) {
    return {
      status: error.status,
      body: { detail: error.message, code: error.code },
      headers: error.headers,
    };
  }
  if (isRuntimeKernelError(error)) {
    return {
      status: STATUS_BY_CODE[error.code] ?? 500,
      body: {
        detail: error.message,
        code: error.code,
        ...(error instanceof InvalidSpecError ? { issues: [...error.issues] } : {}),
      },
      headers:
        error.code === "QUOTA_EXCEEDED" || error.code === "KERNEL_SHUT_DOWN" ? { "retry-after": "1" } : {},
    };
  }
  return { status: 500, body: { detail: "internal error", code: "INTERNAL" }, headers: {} };
}

/** Reads the body up to `limit` bytes; beyond it, the rest is discarded and a 413 follows. */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const tooLarge = () => new HttpError(413, "PAYLOAD_TOO_LARGE", `the body is larger than ${limit} bytes`);
    const declared = Number(req.headers["content-length"]);
    if (Number.isFinite(declared) && declared > limit) return reject(tooLarge());
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.off("data", onData);
        req.off("end", onEnd);
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => resolve(Buffer.concat(chunks, size));
    req.on("data", onData);
    req.once("end", onEnd);
    // A client that went away mid-body: nothing to answer, and no fault of this process.
    req.once("error", () => reject(new HttpError(400, "BAD_REQUEST", "the request was cut short")));
  });
}

/** Parses and validates a route's JSON body. */
async function parseBody(req: IncomingMessage, route: Route<unknown>, limit: number): Promise<unknown> {
  const raw = await readBody(req, limit);
  const spec = route.body;
  if (!spec) return undefined;
  if (raw.length === 0) {
    if (spec.required)
      throw new InvalidSpecError([{ path: "", message: "a JSON body is required" }], { subject: "request" });
    return undefined;
  }
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") {
    throw new HttpError(
      415,
      "UNSUPPORTED_MEDIA_TYPE",
      "the body must be JSON, sent as Content-Type: application/json",
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(raw.toString("utf8"));
  } catch {
    // Never echo the parser's message: it quotes the body, which may hold a secret.
    throw new InvalidSpecError([{ path: "", message: "the body is not valid JSON" }], { subject: "request" });
  }
  const proto = protoKeyPath(value);
  if (proto !== undefined) {
    throw new InvalidSpecError([{ path: proto, message: "is not a key this API accepts" }], {
      subject: "request",
    });
  }
  const result = spec.schema.safeParse(value);
  if (!result.success) throw new InvalidSpecError(issuesOf(result.error), { subject: "request" });
  return result.data;
}

/**
 * Where a parsed body holds the key `__proto__`, if anywhere: JSON.parse keeps it as an own
 * key, and a schema's records and objects drop it without a word, so a field would vanish.
 */
function protoKeyPath(body: unknown): string | undefined {
  // A loop, not recursion: a body may nest as deep as its size allows.
  const pending: [unknown, string][] = [[body, ""]];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const [value, path] = next;
    if (typeof value !== "object" || value === null) continue;
    for (const [key, child] of Object.entries(value)) {
      const at = path ? `${path}.${key}` : key;
      if (key === "__proto__") return at;
      pending.push([child, at]);
    }
  }
  return undefined;
}

/** What routing a request needs of its surface. */
export interface Surface {
  router: Router;
  /** Whether an `Authorization` header carries the token (or none is needed). */
  authorized: (header: string | undefined) => boolean;
  maxBodyBytes: number;
  /** Whether new requests are refused (the server is draining). */
  refusing: () => boolean;
}

/** Routes a request and runs its route; rejects with the failure to answer. */
export async function route(req: IncomingMessage, traceId: string, surface: Surface): Promise<RouteReply> {
  if (surface.refusing())
    throw new HttpError(503, "KERNEL_SHUT_DOWN", "the server is shutting down", { "retry-after": "1" });
  if (req.headers.origin !== undefined) {
    throw new HttpError(403, "FORBIDDEN", "requests from browsers (with an Origin header) are not accepted");
  }
  const target = req.url ?? "";
  if (!target.startsWith("/")) throw new HttpError(400, "BAD_REQUEST", "the request target must be a path");
  const queryAt = target.indexOf("?");
  const pathname = queryAt < 0 ? target : target.slice(0, queryAt);
  const match = surface.router.match(req.method ?? "", pathname);
  if (match.kind === "none") throw new HttpError(404, "NOT_FOUND", "Not Found");
  if (match.kind === "malformed") {
    throw new InvalidSpecError([{ path: match.param, message: "is not valid percent-encoding" }], {
      subject: "request path",
    });
  }
  if (match.kind === "method") {
    throw new HttpError(405, "METHOD_NOT_ALLOWED", "Method Not Allowed", {
      allow: match.allowed.join(", "),
    });
  }
  const { route, params } = match;
  if (!route.public && !surface.authorized(req.headers.authorization)) {
    throw new HttpError(401, "UNAUTHENTICATED", "missing or wrong bearer token", {
      "www-authenticate": "Bearer",
    });
  }
  const body = await parseBody(req, route, surface.maxBodyBytes);
  return route.handle({
    params,
    query: new URLSearchParams(queryAt < 0 ? "" : target.slice(queryAt + 1)),
    body,
    traceId,
  });
}

function send(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const text = body === undefined ? "" : JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    ...(text ? { "content-type": "application/json" } : {}),
    "content-length": String(Buffer.byteLength(text)),
  });
  res.end(text);
}

/**
 * Answers `req` with what `run` resolves or rejects with, never throwing: every failure is a
 * status with a body; an internal one (500) also goes to `onInternalError`. Logs one line.
 */
export function answer(
  req: IncomingMessage,
  res: ServerResponse,
  log: (entry: HttpLogEntry) => void,
  run: (traceId: string) => Promise<RouteReply>,
  onInternalError: (error: unknown) => void,
): void {
  const started = performance.now();
  // A client that goes away mid-request is not an error of this process.
  req.on("error", () => {});
  res.on("error", () => {});
  const given = req.headers[TRACE_HEADER];
  const traceId =
    typeof given === "string" && TRACE_ID.test(given) ? given : randomUUID().replaceAll("-", "");
  const finish = (status: number, body: unknown, headers: Record<string, string>, code?: string) => {
    send(res, status, body, { [TRACE_HEADER]: traceId, ...headers });
    // Whatever body is left unread is drained so the connection can be reused, within a bound.
    let discarded = 0;
    req.on("data", (chunk: Buffer) => {
      discarded += chunk.length;
      if (discarded > MAX_DISCARD_BYTES) req.socket.destroy();
    });
    req.resume();
    const pathname = (req.url ?? "").split("?")[0] as string;
    try {
      log({
        event: "request",
        method: req.method ?? "",
        path: pathname.length > 200 ? `${pathname.slice(0, 200)}…` : pathname,
        status,
        ms: Math.round((performance.now() - started) * 1000) / 1000,
        traceId,
        ...(code !== undefined ? { code } : {}),
      });
    } catch {
      // A log sink that throws must not turn an answer into a crash.
    }
  };
  run(traceId).then(
    (reply) => finish(reply.status, reply.body, {}),
    (error: unknown) => {
      const out = errorBody(error);
      if (out.status === 500) onInternalError(error);
      finish(out.status, out.body, out.headers, out.body.code);
    },
  );
}
