import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { InvalidSpecError, RuntimeKernelError } from "../../../src/errors.js";
import * as pb from "../../../src/gen/gestalt/provider/v1/provider.js";
import {
  quoteLogTail,
  RuntimeProviderError,
  splitLogTail,
  unimplemented,
} from "../../../src/gestalt/provider.js";
import {
  bindFromWire,
  bindToWire,
  errorFromStatus,
  logEntryFromWire,
  logEntryToWire,
  sessionFromWire,
  sessionToWire,
  startPluginFromWire,
  startPluginToWire,
  startSessionFromWire,
  startSessionToWire,
  statusFromError,
  supportFromWire,
  supportToWire,
} from "../../../src/gestalt/wire.js";

/** Encodes and decodes with the generated codec: what crosses the wire. */
function wire<T>(codec: { encode(m: T): { finish(): Uint8Array }; decode(b: Uint8Array): T }, message: T): T {
  return codec.decode(codec.encode(message).finish());
}

describe("wire conversions", () => {
  it("round-trip the support profile, with the enum numbers of the protocol", () => {
    const support = {
      canHostPlugins: true,
      hostServiceAccess: "direct",
      egressMode: "hostname",
      supportsPrepareWorkspace: true,
    } as const;
    const encoded = supportToWire(support);
    expect(encoded).toEqual({
      canHostPlugins: true,
      hostServiceAccess: 2,
      egressMode: 3,
      supportsPrepareWorkspace: true,
    });
    expect(supportFromWire(wire(pb.PluginRuntimeSupport, encoded))).toEqual(support);
    expect(
      supportFromWire({
        canHostPlugins: false,
        hostServiceAccess: 99 as pb.PluginRuntimeHostServiceAccess,
        egressMode: 2,
        supportsPrepareWorkspace: false,
      }),
    ).toEqual({
      canHostPlugins: false,
      hostServiceAccess: "unspecified",
      egressMode: "cidr",
      supportsPrepareWorkspace: false,
    });
  });

  it("round-trip a session with its lifecycle and state detail", () => {
    const session = {
      id: "s1",
      state: "failed",
      metadata: { provider_kind: "local" },
      lifecycle: { startedAt: new Date(1_000), expiresAt: new Date(9_000) },
      stateReason: "failed",
      stateMessage: "exit code 3",
    };
    expect(sessionFromWire(wire(pb.PluginRuntimeSession, sessionToWire(session)))).toEqual(session);
    expect(
      sessionFromWire(
        wire(pb.PluginRuntimeSession, sessionToWire({ id: "s", state: "ready", metadata: {} })),
      ),
    ).toEqual({
      id: "s",
      state: "ready",
      metadata: {},
    });
  });

  it("round-trip the requests", () => {
    const start = {
      pluginName: "p",
      image: "img:1",
      template: "t",
      metadata: { a: "b" },
      imagePullAuth: { dockerConfigJson: '{"auths":{"r":{}}}' },
    };
    expect(
      startSessionFromWire(wire(pb.StartPluginRuntimeSessionRequest, startSessionToWire(start))),
    ).toEqual(start);
    const bind = { sessionId: "s", envVar: "X", relay: { dialTarget: "unix:///r.sock" } };
    expect(bindFromWire(wire(pb.BindPluginRuntimeHostServiceRequest, bindToWire(bind)))).toEqual(bind);
    const plugin = {
      sessionId: "s",
      pluginName: "p",
      command: "/bin/p",
      args: ["-v"],
      env: { A: "1" },
      allowedHosts: ["*.x.com"],
      defaultAction: "deny" as const,
      hostBinary: "/host/p",
    };
    expect(startPluginFromWire(wire(pb.StartHostedPluginRequest, startPluginToWire(plugin)))).toEqual(plugin);
  });

  it("round-trip log entries", () => {
    const entry = { stream: "stderr" as const, message: "boom", observedAt: new Date(5), sourceSeq: 42 };
    expect(logEntryFromWire(wire(pb.PluginRuntimeLogEntry, logEntryToWire(entry)))).toEqual(entry);
  });
});

describe("errors on the wire", () => {
  const serviceError = (code: status, details: string): ServiceError =>
    Object.assign(new Error(`${code} ${details}`), { code, details, metadata: new Metadata() });

  it("map gRPC statuses to library codes, keeping the provider's message", () => {
    const cases: [status, string][] = [
      [status.NOT_FOUND, "WORKLOAD_NOT_FOUND"],
      [status.UNAVAILABLE, "BACKEND_UNAVAILABLE"],
      [status.INVALID_ARGUMENT, "INVALID_SPEC"],
      [status.FAILED_PRECONDITION, "WORKLOAD_CONFLICT"],
      [status.INTERNAL, "BACKEND_ERROR"],
    ];
    for (const [code, expected] of cases) {
      const error = errorFromStatus("GetSession", serviceError(code, "said the provider"));
      expect(error).toBeInstanceOf(RuntimeProviderError);
      expect(error.code).toBe(expected);
      expect(error.message).toBe("said the provider");
      expect(error.method).toBe("GetSession");
      expect(error.grpcCode).toBe(code);
    }
    expect(errorFromStatus("ListSessions", serviceError(status.UNIMPLEMENTED, "x")).unimplemented).toBe(true);
    expect(errorFromStatus("X", serviceError(status.UNAVAILABLE, "x")).retryable).toBe(true);
  });

  it("map library errors to gRPC statuses", () => {
    expect(statusFromError(unimplemented("ListSessions")).code).toBe(status.UNIMPLEMENTED);
    expect(statusFromError(new InvalidSpecError([{ path: "a", message: "b" }])).code).toBe(
      status.INVALID_ARGUMENT,
    );
    expect(statusFromError(new RuntimeKernelError("WORKLOAD_NOT_FOUND", "gone")).code).toBe(status.NOT_FOUND);
    expect(statusFromError(new RuntimeKernelError("START_FAILED", "exited")).code).toBe(
      status.FAILED_PRECONDITION,
    );
    expect(statusFromError(new Error("plain"))).toMatchObject({
      code: status.INTERNAL,
      details: "internal error: plain",
    });
  });
});

describe("a start error's log tail", () => {
  it("is a field of the provider's error, quoted after its message, and read back from the wire's text", () => {
    const error = new RuntimeProviderError("START_FAILED", "StartPlugin", "plugin exited", {
      logTail: ["one", "two: --- last 9 line(s)"],
    });
    expect(error.reason).toBe("plugin exited");
    expect(error.message).toBe(`plugin exited${quoteLogTail(error.logTail)}`);
    expect(splitLogTail(error.message)).toEqual({ reason: "plugin exited", logTail: error.logTail });
    expect(splitLogTail("no tail here")).toEqual({ reason: "no tail here", logTail: [] });
    expect(new RuntimeProviderError("START_FAILED", "StartPlugin", "x").message).toBe("x");
  });
});
