import type { IncomingHttpHeaders } from "node:http2";
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { isRuntimeKernelError, RuntimeKernelError, WorkloadNotFoundError } from "../../../src/errors.js";
import { RuntimeProviderError, unimplemented } from "../../../src/gestalt/provider.js";
import { errorFromStatus, statusFromError } from "../../../src/gestalt/wire.js";
import {
  boundText,
  decodeStatus,
  ERROR_METADATA,
  GrpcStatus,
  MAX_DETAILS_BYTES,
  toServiceStatus,
  toWireError,
  trailersOf,
} from "../../../src/grpc/status.js";
import { fromWireError } from "../../../src/server/errors.js";
import { KERNEL_ERROR_CODES } from "../../fixtures/error-codes.js";

/** What a grpc-js client receives for a status the server sent: the status, through real Metadata. */
function received(status: ReturnType<typeof toServiceStatus>): ServiceError {
  return Object.assign(new Error(status.details), {
    code: status.code,
    details: status.details,
    metadata: Metadata.fromHttp2Headers(status.metadata.toHttp2Headers() as IncomingHttpHeaders),
  });
}

/** Hostile ids: non-ASCII, a newline, a lone surrogate, and a megabyte. */
const HOSTILE_IDS = ["wörk", "é", "line\nbreak", "half\uD800pair", "x".repeat(1 << 20)];

describe("one gRPC boundary for errors", () => {
  it.each(KERNEL_ERROR_CODES.flatMap((code) => [true, false].map((retryable) => [code, retryable] as const)))(
    "%s (retryable %s) raised on one side arrives as itself through either surface",
    (code, retryable) => {
      const original = new RuntimeKernelError(code, `it said ${code}`, { retryable, workloadId: "w-1" });
      // The runtime.v1 service and a Gestalt provider send the same status...
      const sent = toServiceStatus(original);
      expect(statusFromError(original)).toEqual(sent);
      // ...and the runtime.v1 client and the Gestalt host read the same error back.
      const viaService = fromWireError({
        code: sent.code,
        details: sent.details,
        metadata: trailersOf(received(sent).metadata),
      });
      const viaGestalt = errorFromStatus("StartPlugin", received(sent));
      for (const back of [viaService, viaGestalt]) {
        expect(isRuntimeKernelError(back, code)).toBe(true);
        expect([back.message, back.retryable, back.workloadId]).toEqual([
          `it said ${code}`,
          retryable,
          "w-1",
        ]);
      }
    },
  );

  it("keeps a provider's UNIMPLEMENTED, which hosts use to fall back", () => {
    const sent = statusFromError(unimplemented("ListSessions"));
    expect(sent.code).toBe(GrpcStatus.UNIMPLEMENTED);
    const back = errorFromStatus("ListSessions", received(sent as ReturnType<typeof toServiceStatus>));
    expect(back).toBeInstanceOf(RuntimeProviderError);
    expect(back.unimplemented).toBe(true);
  });

  it("reads a status from a peer that sent no kernel code by its gRPC status alone", () => {
    const bare = (code: number) => decodeStatus({ code, details: "", metadata: {} });
    expect(bare(GrpcStatus.UNAVAILABLE)).toMatchObject({ code: "BACKEND_UNAVAILABLE", retryable: true });
    expect(bare(GrpcStatus.FAILED_PRECONDITION)).toMatchObject({
      code: "WORKLOAD_CONFLICT",
      fromKernel: false,
    });
    expect(bare(GrpcStatus.CANCELLED).code).toBe("START_ABORTED");
    expect(bare(GrpcStatus.UNIMPLEMENTED).code).toBe("UNSUPPORTED");
    expect(bare(GrpcStatus.DATA_LOSS)).toMatchObject({ code: "BACKEND_ERROR", message: "DATA_LOSS" });
  });

  it("does not take a malformed code from a peer's trailers as the kernel's", () => {
    const decoded = decodeStatus({
      code: GrpcStatus.NOT_FOUND,
      details: "x",
      metadata: { [ERROR_METADATA.code]: "not a code; rm -rf", [ERROR_METADATA.retryable]: "true" },
    });
    expect(decoded).toMatchObject({ code: "WORKLOAD_NOT_FOUND", fromKernel: false, retryable: false });
  });

  it.each(HOSTILE_IDS.map((id) => [id.length > 64 ? `${id.length} characters` : JSON.stringify(id), id]))(
    "sends an error about the id %s with trailers grpc-js accepts, and small",
    (_, id) => {
      const status = toServiceStatus(new WorkloadNotFoundError(id));
      const headers = status.metadata.toHttp2Headers();
      for (const value of Object.values(headers)) expect(String(value)).toMatch(/^[\x20-\x7e]*$/);
      // What travels stays far below grpc-js's 8 KB default limit on a peer's metadata.
      expect(encodeURI(status.details).length + JSON.stringify(headers).length).toBeLessThan(8 * 1024);
      expect(Buffer.byteLength(status.details)).toBeLessThanOrEqual(MAX_DETAILS_BYTES);
      const back = fromWireError({
        code: status.code,
        details: status.details,
        metadata: trailersOf(received(status).metadata),
      });
      expect(back.code).toBe("WORKLOAD_NOT_FOUND");
      // An id no workload can have is not echoed back; one that could be comes back whole.
      expect(back.workloadId).toBe(id.length > 253 ? undefined : id.replace("\uD800", "\uFFFD"));
    },
  );

  it("cuts long messages on a character boundary and says so", () => {
    const cut = boundText("é".repeat(5_000), 100);
    expect(Buffer.byteLength(cut)).toBeLessThanOrEqual(100);
    expect(cut).toMatch(/^é+ … \[10000 bytes, cut\]$/);
    expect(boundText("short", 100)).toBe("short");
  });

  it("sends anything that is not the kernel's error as INTERNAL, bounded, without trailers", () => {
    expect(toWireError(new TypeError("boom"))).toEqual({
      code: GrpcStatus.INTERNAL,
      details: "internal error: boom",
      metadata: {},
    });
    expect(toWireError("z".repeat(1 << 20)).details.length).toBeLessThanOrEqual(MAX_DETAILS_BYTES);
    expect(toWireError(Symbol("odd")).code).toBe(GrpcStatus.INTERNAL);
  });
});
