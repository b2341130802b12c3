import fc from "fast-check";
import { describe, expect, it } from "vitest";
import * as wire from "../../../src/gen/runtime/v1/runtime.js";
import {
  type StopReason,
  type TransitionEvent,
  WORKLOAD_STATES,
  type WorkloadSpec,
  type WorkloadStatus,
} from "../../../src/index.js";
import {
  eventFromWire,
  eventToWire,
  listFilterFromWire,
  listFilterToWire,
  logEntryFromWire,
  logEntryToWire,
  specFromWire,
  specToWire,
  statusFromWire,
  statusToWire,
  stopOptionsFromWire,
} from "../../../src/server/convert.js";

const REASONS: StopReason[] = [
  "requested",
  "idle_timeout",
  "max_lifetime",
  "shutdown",
  "completed",
  "failed",
  "oom",
  "lost",
  "start_failed",
];

const epoch = fc.integer({ min: 0, max: 4_102_444_800_000 });
const word = fc.string({ minLength: 1, maxLength: 12 });
const map = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.string({ maxLength: 8 }), {
  minKeys: 1,
  maxKeys: 3,
});
const state = fc.constantFrom(...WORKLOAD_STATES);
const serializedError = fc.record(
  { code: word, message: fc.string(), workloadId: word },
  { requiredKeys: ["code", "message"] },
);

const status: fc.Arbitrary<WorkloadStatus> = fc.record(
  {
    workloadId: word,
    runId: word,
    owner: word,
    profile: word,
    state,
    createdAt: epoch,
    startedAt: epoch,
    stoppedAt: epoch,
    exitCode: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    signal: word,
    stopReason: fc.constantFrom(...REASONS),
    error: serializedError,
    restarts: fc.nat({ max: 1000 }),
    restartAt: epoch,
    ports: map,
    idleDeadline: epoch,
    maxLifetimeDeadline: epoch,
    traceId: word,
  },
  { requiredKeys: ["workloadId", "runId", "profile", "state", "createdAt", "restarts"] },
);

const event: fc.Arbitrary<TransitionEvent> = fc.record(
  {
    workloadId: word,
    runId: word,
    owner: word,
    profile: word,
    from: fc.option(state, { nil: null }),
    state,
    at: epoch,
    seq: fc.nat(),
    exitCode: fc.integer({ min: 0, max: 255 }),
    signal: word,
    stopReason: fc.constantFrom(...REASONS),
    error: serializedError,
    ports: map,
    restart: fc.integer({ min: 1, max: 100 }),
    recovered: fc.boolean(),
    traceId: word,
  },
  { requiredKeys: ["workloadId", "runId", "profile", "from", "state", "at", "seq"] },
);

/** Through the generated encoder and decoder, as on a real connection. */
function overTheWire<T>(
  fns: { encode(m: T): { finish(): Uint8Array }; decode(b: Uint8Array): T },
  message: T,
): T {
  return fns.decode(fns.encode(message).finish());
}

describe("statuses and events on the wire", () => {
  it("carry exactly the kernel's fields: a status survives the round trip unchanged", () => {
    fc.assert(
      fc.property(status, (s) => {
        expect(statusFromWire(overTheWire(wire.WorkloadStatus, statusToWire(s)))).toEqual(s);
      }),
    );
  });

  it("carry exactly the kernel's fields: an event survives the round trip unchanged", () => {
    fc.assert(
      fc.property(event, (e) => {
        expect(eventFromWire(overTheWire(wire.TransitionEvent, eventToWire(e)))).toEqual(e);
      }),
    );
  });

  it("leave absent optional fields absent, not undefined", () => {
    const minimal: WorkloadStatus = {
      workloadId: "w",
      runId: "r",
      profile: "p",
      state: "starting",
      createdAt: 1,
      restarts: 0,
    };
    expect(Object.keys(statusFromWire(overTheWire(wire.WorkloadStatus, statusToWire(minimal))))).toEqual(
      Object.keys(minimal),
    );
  });

  it("refuse an enum value this version does not know, naming the field", () => {
    const bad = {
      ...statusToWire({
        workloadId: "w",
        runId: "r",
        profile: "p",
        state: "running",
        createdAt: 1,
        restarts: 0,
      }),
    };
    bad.state = 42 as wire.WorkloadState;
    expect(() => statusFromWire(bad)).toThrow("state: unknown workload state 42");
  });
});

describe("specs on the wire", () => {
  it("survive the round trip, backend extras of the runnable included", () => {
    const spec: WorkloadSpec = {
      workloadId: "job-1",
      profile: "agent",
      owner: "alice",
      env: { GREETING: "hi" },
      runnable: {
        command: ["sh", "-c", "echo $GREETING"],
        cwd: "/work",
        fake: { exitAfterMs: 5, output: ["x"] },
      },
      resources: { cpu: 0.5, memoryMb: 256, pids: 64 },
      workspace: "/tmp/ws",
      idleTimeoutMs: 30_000,
      maxLifetimeMs: 3_600_000,
      graceMs: 0,
      labels: { team: "a" },
      traceId: "trace-4bf92f35",
      mounts: [
        { source: "/srv/ws/a", target: "/work" },
        { source: "/srv/ws/data", target: "/data", readOnly: true },
      ],
    };
    expect(specFromWire(overTheWire(wire.WorkloadSpec, specToWire(spec)))).toEqual(spec);
  });

  it("keep a minimal spec minimal", () => {
    const spec: WorkloadSpec = { workloadId: "w", profile: "default" };
    expect(specFromWire(overTheWire(wire.WorkloadSpec, specToWire(spec)))).toEqual(spec);
  });

  it("refuse a Create without a spec, naming the field", () => {
    expect(() => specFromWire(undefined)).toThrow("spec: is required");
  });

  it("let the typed runnable fields win over extras of the same name", () => {
    const runnable = {
      command: ["true"],
      image: undefined,
      cwd: undefined,
      extra: { command: ["evil"], other: 1 },
    };
    expect(specFromWire({ ...specToWire({ workloadId: "w", profile: "p" }), runnable }).runnable).toEqual({
      command: ["true"],
      other: 1,
    });
  });
});

describe("requests on the wire", () => {
  it("carry list filters, one state or several", () => {
    expect(listFilterFromWire(listFilterToWire({ owner: "a", state: "running" }))).toEqual({
      owner: "a",
      state: "running",
    });
    expect(listFilterFromWire(listFilterToWire({ state: ["stopped", "destroyed"], profile: "p" }))).toEqual({
      state: ["stopped", "destroyed"],
      profile: "p",
    });
    expect(listFilterFromWire(listFilterToWire())).toEqual({});
  });

  it("accept the stop reasons a caller may give and refuse the kernel's own", () => {
    expect(
      stopOptionsFromWire({ workloadId: "w", reason: wire.StopReason.STOP_REASON_IDLE_TIMEOUT, graceMs: 0 }),
    ).toEqual({ reason: "idle_timeout", graceMs: 0 });
    expect(stopOptionsFromWire({ workloadId: "w" })).toEqual({});
    expect(() =>
      stopOptionsFromWire({ workloadId: "w", reason: wire.StopReason.STOP_REASON_COMPLETED }),
    ).toThrow("reason: must be one of REQUESTED, IDLE_TIMEOUT, MAX_LIFETIME, SHUTDOWN (got completed)");
  });

  it("carry log lines with their stream and time", () => {
    for (const entry of [
      { stream: "stdout" as const, line: "hello" },
      { stream: "stderr" as const, line: "", at: 1_700_000_000_123 },
    ]) {
      expect(logEntryFromWire(overTheWire(wire.LogEntry, logEntryToWire(entry)))).toEqual(entry);
    }
  });
});
