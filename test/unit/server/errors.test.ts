import { describe, expect, it } from "vitest";
import {
  InvalidSpecError,
  isRuntimeKernelError,
  QuotaExceededError,
  RuntimeKernelError,
  type RuntimeKernelErrorCode,
  StartFailedError,
  WorkloadNotFoundError,
} from "../../../src/index.js";
import {
  ERROR_METADATA,
  fromWireError,
  GrpcStatus,
  grpcStatusForCode,
  RuntimeServiceError,
  toWireError,
} from "../../../src/server/errors.js";

describe("kernel errors on the wire", () => {
  it.each<[RuntimeKernelErrorCode, boolean, keyof typeof GrpcStatus]>([
    ["INVALID_SPEC", false, "INVALID_ARGUMENT"],
    ["QUOTA_EXCEEDED", true, "RESOURCE_EXHAUSTED"],
    ["RESOURCE_EXHAUSTED", true, "RESOURCE_EXHAUSTED"],
    ["WORKLOAD_NOT_FOUND", false, "NOT_FOUND"],
    ["WORKLOAD_CONFLICT", false, "FAILED_PRECONDITION"],
    ["START_FAILED", true, "UNAVAILABLE"],
    ["START_FAILED", false, "FAILED_PRECONDITION"],
    ["START_ABORTED", false, "ABORTED"],
    ["WORKLOAD_LOST", false, "NOT_FOUND"],
    ["BACKEND_UNAVAILABLE", true, "UNAVAILABLE"],
    ["BACKEND_ERROR", false, "INTERNAL"],
    ["CLEANUP_FAILED", true, "UNAVAILABLE"],
    ["CLEANUP_FAILED", false, "INTERNAL"],
    ["KERNEL_SHUT_DOWN", false, "UNAVAILABLE"],
    ["EVENTS_OVERFLOW", false, "RESOURCE_EXHAUSTED"],
    ["UNSUPPORTED", false, "UNIMPLEMENTED"],
  ])("%s (retryable: %s) travels as %s", (code, retryable, status) => {
    expect(grpcStatusForCode(code, retryable)).toBe(GrpcStatus[status]);
  });

  it("sends a code it does not know as UNKNOWN rather than guessing", () => {
    expect(grpcStatusForCode("SOMETHING_NEW")).toBe(GrpcStatus.UNKNOWN);
  });

  it("puts the kernel's code, retryability and workload in the trailers", () => {
    const wire = toWireError(new QuotaExceededError("alice", 2, { workloadId: "w1" }));
    expect(wire.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
    expect(wire.details).toBe('Owner "alice" already has 2 live workload(s), the quota');
    expect(wire.metadata).toEqual({
      [ERROR_METADATA.code]: "QUOTA_EXCEEDED",
      [ERROR_METADATA.retryable]: "true",
      [ERROR_METADATA.workloadId]: "w1",
    });
  });

  it("sends an error that is not the kernel's as INTERNAL, without trailers", () => {
    const wire = toWireError(new TypeError("boom"));
    expect(wire).toEqual({ code: GrpcStatus.INTERNAL, details: "internal error: boom", metadata: {} });
  });

  it("round-trips every kernel error into a RuntimeKernelError with the same code, message and workload", () => {
    const errors = [
      new InvalidSpecError([{ path: "workloadId", message: "must be a DNS-1123 label" }]),
      new WorkloadNotFoundError("w9"),
      new StartFailedError("w2", "exec: no such file", { retryable: false }),
      new RuntimeKernelError("BACKEND_UNAVAILABLE", "docker is down", { retryable: true }),
    ];
    for (const original of errors) {
      const wire = toWireError(original);
      const back = fromWireError({ code: wire.code, details: wire.details, metadata: wire.metadata });
      expect(back).toBeInstanceOf(RuntimeServiceError);
      expect(isRuntimeKernelError(back, original.code)).toBe(true);
      expect(back.message).toBe(original.message);
      expect(back.retryable).toBe(original.retryable);
      expect(back.workloadId).toBe(original.workloadId);
      expect(back.status).toBe(wire.code);
      expect(back.fromKernel).toBe(true);
    }
  });

  it("gives a status without a kernel code (transport, auth) a code from its gRPC status", () => {
    const down = fromWireError({
      code: GrpcStatus.UNAVAILABLE,
      details: "connect ECONNREFUSED",
      metadata: {},
    });
    expect(down.code).toBe("BACKEND_UNAVAILABLE");
    expect(down.retryable).toBe(true);
    expect(down.fromKernel).toBe(false);
    expect(down.statusName).toBe("UNAVAILABLE");
    const denied = fromWireError({ code: GrpcStatus.UNAUTHENTICATED, details: "", metadata: {} });
    expect(denied.code).toBe("BACKEND_ERROR");
    expect(denied.message).toBe("UNAUTHENTICATED");
    expect(denied.retryable).toBe(false);
  });
});
