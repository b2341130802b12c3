/**
 * The one gRPC boundary for errors. Every surface that speaks gRPC (the runtime.v1 service
 * in `runtime-kernel/server`, the runtime-provider layer in `runtime-kernel/gestalt`) turns
 * a thrown error into a status here, and a received status back into the kernel's code here,
 * so a `QUOTA_EXCEEDED` raised on one side of any of our gRPC hops arrives as
 * `QUOTA_EXCEEDED` on the other, with the same retryable flag and workload.
 *
 * Why `src/grpc/`: the two surfaces sit side by side on the kernel and neither may import
 * the other. This folder sits below both, and imports only the library's leaf modules
 * (`src/errors.ts`, the listening rules of `src/net/`) and grpc-js, which both surfaces load
 * anyway: the kernel and the main entry never import it, so `import "runtime-kernel"` stays
 * free of gRPC. It is no subpath of its own; each surface re-exports what it makes public.
 *
 * What is sent is always sendable and always small, whatever the error holds: details are
 * made well-formed and cut to {@link MAX_DETAILS_BYTES}, trailer values are ASCII by
 * construction (the workload id is percent-encoded, and left out when it is longer than any
 * workload id can be), so no error can make grpc-js throw or a peer's header limit reset the
 * connection.
 * @module
 */
import { Metadata } from "@grpc/grpc-js";
import { isRuntimeKernelError, type RuntimeKernelErrorCode } from "../errors.js";

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

/**
 * Trailer keys that carry the kernel's view of an error next to the gRPC status. Values are
 * ASCII: the code and the flag are ASCII by nature, the workload id is percent-encoded
 * (UTF-8), which leaves every valid workload id (a DNS-1123 label) unchanged.
 */
export const ERROR_METADATA = {
  /** The kernel's stable error code, for example `QUOTA_EXCEEDED`. */
  code: "runtime-kernel-error-code",
  /** `"true"` when retrying the same call later may succeed. */
  retryable: "runtime-kernel-retryable",
  /** The workload concerned, when there is one (percent-encoded UTF-8). */
  workloadId: "runtime-kernel-workload-id",
} as const;

/** The most UTF-8 bytes of an error's message sent as a status's details; the rest is cut. */
export const MAX_DETAILS_BYTES = 2048;
/** A workload id longer than this (more than any valid one) is not echoed in the trailers. */
export const MAX_ECHOED_ID_BYTES = 253;

/** What a kernel error code looks like; anything else read from a peer is not taken as one. */
const CODE_SHAPE = /^[A-Z][A-Z0-9_]{0,63}$/;

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
  // Reported to the HTTP surface's listeners, never the answer to a call.
  CALLBACK_DROPPED: GrpcStatus.INTERNAL,
  UNSUPPORTED: GrpcStatus.UNIMPLEMENTED,
  DISPATCH_FAILED: { retryable: GrpcStatus.UNAVAILABLE, permanent: GrpcStatus.FAILED_PRECONDITION },
  STORE_UNAVAILABLE: GrpcStatus.UNAVAILABLE,
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
  /** Trailer entries (keys of {@link ERROR_METADATA}), all ASCII; empty for errors that are not the kernel's. */
  metadata: Record<string, string>;
}

/** `text` without lone surrogates (which no UTF-8 encoder, `encodeURI` included, accepts). */
function wellFormed(text: string): string {
  return text.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "\uFFFD");
}

/** `text` cut to at most `maxBytes` UTF-8 bytes (on a character boundary), saying how much was cut. */
export function boundText(text: string, maxBytes: number): string {
  const clean = wellFormed(text);
  if (Buffer.byteLength(clean) <= maxBytes) return clean;
  const marker = ` … [${Buffer.byteLength(clean)} bytes, cut]`;
  let bytes = 0;
  let end = 0;
  for (const char of clean) {
    const size = Buffer.byteLength(char);
    if (bytes + size > maxBytes - Buffer.byteLength(marker)) break;
    bytes += size;
    end += char.length;
  }
  return clean.slice(0, end) + marker;
}

function encodeId(workloadId: string): string | undefined {
  const clean = wellFormed(workloadId);
  if (clean === "" || Buffer.byteLength(clean) > MAX_ECHOED_ID_BYTES) return undefined;
  return encodeURIComponent(clean);
}

function decodeId(value: string | undefined): string | undefined {
  if (!value) return undefined;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

/**
 * Turns anything a call threw into the status to send. A `RuntimeKernelError` keeps its code
 * and message (the kernel has already scrubbed secrets from it); anything else is a bug or an
 * unexpected failure, sent as INTERNAL with its message only. Never throws.
 */
export function toWireError(error: unknown): WireError {
  if (isRuntimeKernelError(error)) {
    const metadata: Record<string, string> = {
      [ERROR_METADATA.code]: CODE_SHAPE.test(error.code) ? error.code : "BACKEND_ERROR",
      [ERROR_METADATA.retryable]: String(error.retryable),
    };
    const id = typeof error.workloadId === "string" ? encodeId(error.workloadId) : undefined;
    if (id !== undefined) metadata[ERROR_METADATA.workloadId] = id;
    return {
      code: grpcStatusForCode(error.code, error.retryable),
      details: boundText(String(error.message), MAX_DETAILS_BYTES),
      metadata,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return {
    code: GrpcStatus.INTERNAL,
    details: boundText(`internal error: ${message}`, MAX_DETAILS_BYTES),
    metadata: {},
  };
}

/**
 * {@link toWireError} in grpc-js's shape, ready for a unary callback or a stream's `error`.
 * Never throws: should the trailers fail anyway, the status goes without them.
 */
export function toServiceStatus(error: unknown): {
  code: GrpcStatusCode;
  details: string;
  metadata: Metadata;
} {
  let wire: WireError;
  try {
    wire = toWireError(error);
  } catch {
    wire = { code: GrpcStatus.INTERNAL, details: "internal error", metadata: {} };
  }
  const metadata = new Metadata();
  try {
    for (const [key, value] of Object.entries(wire.metadata)) metadata.set(key, value);
  } catch {
    return { code: wire.code, details: wire.details, metadata: new Metadata() };
  }
  return { code: wire.code, details: wire.details, metadata };
}

/** What a receiver needs of a failed call: gRPC's ServiceError, reduced to plain data. */
export interface ReceivedStatus {
  code: number;
  details: string;
  /** Trailer values by key (first value of each). */
  metadata: Record<string, string | undefined>;
}

/** The first value of each trailer, as {@link ReceivedStatus} wants them. */
export function trailersOf(metadata: Metadata | undefined): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  if (!metadata) return out;
  for (const [key, values] of Object.entries(metadata.getMap())) {
    out[key] = typeof values === "string" ? values : values.toString("utf8");
  }
  return out;
}

/** The kernel error code a receiver reports for a status that carried none (a peer that is not ours, transport, auth). */
function codeForBareStatus(status: number): RuntimeKernelErrorCode {
  switch (status) {
    case GrpcStatus.UNAVAILABLE:
    case GrpcStatus.DEADLINE_EXCEEDED:
      // The peer is the caller's substrate: unreachable reads as a backend that is unavailable.
      return "BACKEND_UNAVAILABLE";
    case GrpcStatus.INVALID_ARGUMENT:
      return "INVALID_SPEC";
    case GrpcStatus.NOT_FOUND:
      return "WORKLOAD_NOT_FOUND";
    case GrpcStatus.RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case GrpcStatus.FAILED_PRECONDITION:
    case GrpcStatus.ALREADY_EXISTS:
      return "WORKLOAD_CONFLICT";
    case GrpcStatus.ABORTED:
    case GrpcStatus.CANCELLED:
      return "START_ABORTED";
    case GrpcStatus.UNIMPLEMENTED:
      return "UNSUPPORTED";
    default:
      return "BACKEND_ERROR";
  }
}

/** A received status, read back into the kernel's terms. */
export interface DecodedStatus {
  code: RuntimeKernelErrorCode;
  message: string;
  retryable: boolean;
  workloadId?: string;
  /** Whether the peer sent the kernel's code in the trailers (false: gRPC's or a foreign peer's own status). */
  fromKernel: boolean;
}

/** Reads a received status back into the kernel's code, message, retryable flag and workload. */
export function decodeStatus(received: ReceivedStatus): DecodedStatus {
  const sent = received.metadata[ERROR_METADATA.code];
  const fromKernel = sent !== undefined && CODE_SHAPE.test(sent);
  const code = (fromKernel ? sent : codeForBareStatus(received.code)) as RuntimeKernelErrorCode;
  const retryableHeader = received.metadata[ERROR_METADATA.retryable];
  const retryable =
    fromKernel && retryableHeader !== undefined
      ? retryableHeader === "true"
      : received.code === GrpcStatus.UNAVAILABLE ||
        received.code === GrpcStatus.DEADLINE_EXCEEDED ||
        received.code === GrpcStatus.RESOURCE_EXHAUSTED;
  const workloadId = fromKernel ? decodeId(received.metadata[ERROR_METADATA.workloadId]) : undefined;
  return {
    code,
    message: received.details || grpcStatusName(received.code),
    retryable,
    fromKernel,
    ...(workloadId ? { workloadId } : {}),
  };
}
