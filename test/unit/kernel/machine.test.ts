import { describe, expect, it } from "vitest";
import { initialTransition, transition } from "xstate";
import type { WorkloadHandle } from "../../../src/backends/backend.js";
import {
  dueDeadline,
  type LifecycleEvent,
  type LifecycleInput,
  lifecycleMachine,
  stopReasonForExit,
  visibleState,
} from "../../../src/kernel/machine.js";

const handle: WorkloadHandle = { workloadId: "w1", runId: "r1", backend: "fake" };
const input: LifecycleInput = {
  workloadId: "w1",
  runId: "r1",
  graceMs: 1_000,
  idleTimeoutMs: 0,
  maxLifetimeMs: 0,
};

/** Drives the pure machine through events; returns the snapshot and every action type in order. */
function run(events: LifecycleEvent[], init: LifecycleInput = input) {
  let [snapshot, actions] = initialTransition(lifecycleMachine, init);
  const log = actions.map((a) => a.type);
  const reports = actions
    .filter((a) => a.type === "report")
    .map((a) => (a.params as { state: string }).state);
  for (const event of events) {
    [snapshot, actions] = transition(lifecycleMachine, snapshot, event);
    log.push(...actions.map((a) => a.type));
    reports.push(
      ...actions.filter((a) => a.type === "report").map((a) => (a.params as { state: string }).state),
    );
  }
  return { snapshot, state: visibleState(snapshot.value), log, reports };
}

const started: LifecycleEvent = { type: "STARTED", handle, now: 1_000 };

describe("the runtime.v1 lifecycle machine (pure transitions)", () => {
  it("a new run starts in starting, asking for a start slot", () => {
    const r = run([]);
    expect(r.state).toBe("starting");
    expect(r.snapshot.value).toEqual({ starting: "queued" });
    expect(r.log).toEqual(["report", "requestSlot"]);
  });

  it("starting -> running when the backend's start resolves with a handle", () => {
    const r = run([{ type: "LAUNCH" }, started]);
    expect(r.state).toBe("running");
    expect(r.snapshot.context.handle).toEqual(handle);
    expect(r.snapshot.context.startedAt).toBe(1_000);
    expect(r.log).toContain("launch");
    expect(r.log.slice(-3)).toEqual(["report", "watch", "arm"]);
  });

  it("starting -> stopped with start_failed and the error when start rejects", () => {
    const error = { code: "START_FAILED", message: "no such image" };
    const r = run([{ type: "LAUNCH" }, { type: "START_FAILED", error }]);
    expect(r.state).toBe("stopped");
    expect(r.snapshot.context.stopReason).toBe("start_failed");
    expect(r.snapshot.context.error).toEqual(error);
  });

  it("a stop while the backend is starting is kept and taken as soon as the handle exists", () => {
    const r = run([{ type: "LAUNCH" }, { type: "STOP", reason: "requested" }, started]);
    expect(r.reports).toEqual(["starting", "stopping"]);
    expect(r.snapshot.value).toEqual({ stopping: "terminating" });
    expect(r.snapshot.context.stopReason).toBe("requested");
  });

  it("a stop while still queued for a slot cancels the start without calling the backend", () => {
    const r = run([{ type: "STOP", reason: "shutdown" }]);
    expect(r.reports).toEqual(["starting", "stopped"]);
    expect(r.log).not.toContain("launch");
    expect(r.log).toContain("releaseSlot");
    expect(r.snapshot.context.stopReason).toBe("shutdown");
  });

  it.each([
    [{ exitCode: 0 }, "completed"],
    [{ exitCode: 3 }, "failed"],
    [{ exitCode: 137, signal: "SIGKILL" }, "failed"],
    [{ exitCode: 137, oomKilled: true }, "oom"],
    [{ exitCode: null, lost: true }, "lost"],
  ] as const)("running -> stopped when the workload exits by itself: %o is %s", (status, reason) => {
    const r = run([{ type: "LAUNCH" }, started, { type: "EXITED", status }]);
    expect(r.state).toBe("stopped");
    expect(r.snapshot.context.stopReason).toBe(reason);
    expect(r.snapshot.context.exitCode).toBe(status.exitCode ?? undefined);
  });

  it("running -> stopping on stop(), terminating first with the stop's grace", () => {
    const r = run([{ type: "LAUNCH" }, started, { type: "STOP", reason: "requested", graceMs: 5 }]);
    expect(r.snapshot.value).toEqual({ stopping: "terminating" });
    expect(r.snapshot.context.graceMs).toBe(5);
    expect(r.log.at(-1)).toBe("terminate");
  });

  it("a stop with grace 0 kills at once", () => {
    const r = run([{ type: "LAUNCH" }, started, { type: "STOP", reason: "requested", graceMs: 0 }]);
    expect(r.snapshot.value).toEqual({ stopping: "killing" });
    expect(r.log).not.toContain("terminate");
  });

  it("a run whose grace is 0 enters killing directly however its stop begins: deadline, or a stop kept during the start", () => {
    const noGrace = { ...input, graceMs: 0, maxLifetimeMs: 10 };
    const deadline = run([{ type: "LAUNCH" }, started, { type: "DEADLINE", now: 1_010 }], noGrace);
    expect(deadline.snapshot.value).toEqual({ stopping: "killing" });
    expect(deadline.snapshot.context.stopReason).toBe("max_lifetime");
    const kept = run([{ type: "LAUNCH" }, { type: "STOP", reason: "requested" }, started], noGrace);
    expect(kept.snapshot.value).toEqual({ stopping: "killing" });
    // Every stop takes exactly one path in: never both a terminate and a kill at once.
    for (const r of [deadline, kept]) expect(r.log).not.toContain("terminate");
  });

  it("an exit or a failed start with a destroy pending goes straight on to cleanup, reporting stopped first", () => {
    const exited = run([
      { type: "LAUNCH" },
      started,
      { type: "DESTROY" },
      { type: "EXITED", status: { exitCode: 143, signal: "SIGTERM" } },
    ]);
    const failed = run([
      { type: "LAUNCH" },
      { type: "DESTROY" },
      { type: "START_FAILED", error: { code: "START_FAILED", message: "x" } },
    ]);
    for (const r of [exited, failed]) {
      expect(r.snapshot.value).toEqual({ stopped: "cleaning" });
      expect(r.log.slice(-3)).toEqual(["disarm", "report", "cleanup"]);
      expect(r.reports.at(-1)).toBe("stopped");
    }
  });

  it("stopping escalates terminate -> kill when the grace expires, and reaches stopped on the exit", () => {
    const r = run([
      { type: "LAUNCH" },
      started,
      { type: "STOP", reason: "requested" },
      { type: "GRACE_EXPIRED" },
      { type: "EXITED", status: { exitCode: 137, signal: "SIGKILL" } },
    ]);
    expect(r.log).toContain("kill");
    expect(r.state).toBe("stopped");
    expect(r.snapshot.context).toMatchObject({ stopReason: "requested", exitCode: 137, signal: "SIGKILL" });
  });

  it("a failed terminate escalates to kill; a failed kill is retried", () => {
    const error = { code: "BACKEND_ERROR", message: "x" };
    const r = run([
      { type: "LAUNCH" },
      started,
      { type: "STOP", reason: "requested" },
      { type: "TERMINATE_FAILED", error },
      { type: "KILL_FAILED", error },
      { type: "RETRY_KILL" },
    ]);
    expect(r.log.filter((a) => a === "kill")).toHaveLength(2);
    expect(r.log).toContain("scheduleKillRetry");
    expect(r.state).toBe("stopping");
  });

  it("the stop reason survives an exit during stopping, except that a lost workload is lost", () => {
    const base: LifecycleEvent[] = [{ type: "LAUNCH" }, started, { type: "STOP", reason: "idle_timeout" }];
    expect(run([...base, { type: "EXITED", status: { exitCode: 0 } }]).snapshot.context.stopReason).toBe(
      "idle_timeout",
    );
    expect(
      run([...base, { type: "EXITED", status: { exitCode: null, lost: true } }]).snapshot.context.stopReason,
    ).toBe("lost");
  });

  it("stopped -> destroyed only once cleanup is confirmed", () => {
    const stopped: LifecycleEvent[] = [
      { type: "LAUNCH" },
      started,
      { type: "EXITED", status: { exitCode: 0 } },
    ];
    const cleaning = run([...stopped, { type: "DESTROY" }]);
    expect(cleaning.state).toBe("stopped");
    expect(cleaning.log.at(-1)).toBe("cleanup");
    expect(run([...stopped, { type: "DESTROY" }, { type: "CLEANED" }]).state).toBe("destroyed");
  });

  it("a failed cleanup leaves the run stopped, for the kernel to retry", () => {
    const error = { code: "CLEANUP_FAILED", message: "busy" };
    const r = run([
      { type: "LAUNCH" },
      started,
      { type: "EXITED", status: { exitCode: 0 } },
      { type: "DESTROY" },
      { type: "CLEANUP_FAILED", error },
    ]);
    expect(r.snapshot.value).toEqual({ stopped: "idle" });
    expect(r.log.at(-1)).toBe("cleanupFailed");
  });

  it("destroy of a live workload walks stopping -> stopped -> destroyed, reporting each", () => {
    const r = run([
      { type: "LAUNCH" },
      started,
      { type: "DESTROY" },
      { type: "EXITED", status: { exitCode: 143, signal: "SIGTERM" } },
      { type: "CLEANED" },
    ]);
    expect(r.reports).toEqual(["starting", "running", "stopping", "stopped", "destroyed"]);
    expect(r.snapshot.status).toBe("done");
  });

  it("destroy while the backend is starting stops and reclaims as soon as the handle exists", () => {
    const r = run([
      { type: "LAUNCH" },
      { type: "DESTROY" },
      started,
      { type: "EXITED", status: { exitCode: 143 } },
    ]);
    expect(r.reports).toEqual(["starting", "stopping", "stopped"]);
    expect(r.log.at(-1)).toBe("cleanup");
  });

  it("idle TTL and max lifetime are absolute deadlines computed when the run starts", () => {
    const r = run([{ type: "LAUNCH" }, started], { ...input, idleTimeoutMs: 100, maxLifetimeMs: 500 });
    expect(r.snapshot.context.idleDeadline).toBe(1_100);
    expect(r.snapshot.context.maxLifetimeDeadline).toBe(1_500);
  });

  it("a touch moves the idle deadline; a deadline check before it only re-arms", () => {
    const init = { ...input, idleTimeoutMs: 100 };
    const r = run(
      [{ type: "LAUNCH" }, started, { type: "TOUCH", now: 1_050 }, { type: "DEADLINE", now: 1_100 }],
      init,
    );
    expect(r.state).toBe("running");
    expect(r.snapshot.context.idleDeadline).toBe(1_150);
    expect(r.log.at(-1)).toBe("rearm");
    const due = run([{ type: "LAUNCH" }, started, { type: "DEADLINE", now: 1_100 }], init);
    expect(due.state).toBe("stopping");
    expect(due.snapshot.context.stopReason).toBe("idle_timeout");
  });

  it("max lifetime wins over idle when both are due", () => {
    const r = run([{ type: "LAUNCH" }, started, { type: "DEADLINE", now: 2_000 }], {
      ...input,
      idleTimeoutMs: 100,
      maxLifetimeMs: 500,
    });
    expect(r.snapshot.context.stopReason).toBe("max_lifetime");
  });

  it("an adopted run starts in running with its max-lifetime deadline restored and a fresh idle window", () => {
    const r = run([], {
      ...input,
      idleTimeoutMs: 100,
      maxLifetimeMs: 500,
      adopted: { handle, now: 5_000, maxLifetimeDeadline: 5_200 },
    });
    expect(r.reports).toEqual(["running"]);
    expect(r.snapshot.context.maxLifetimeDeadline).toBe(5_200);
    expect(r.snapshot.context.idleDeadline).toBe(5_100);
  });

  it("events that do not apply to the current state are ignored", () => {
    const r = run([
      { type: "LAUNCH" },
      started,
      { type: "GRACE_EXPIRED" },
      { type: "CLEANED" },
      { type: "LAUNCH" },
    ]);
    expect(r.state).toBe("running");
  });
});

describe("machine helpers", () => {
  it("stopReasonForExit maps exit statuses to reasons", () => {
    expect(stopReasonForExit({ exitCode: 0 })).toBe("completed");
    expect(stopReasonForExit({ exitCode: 1 })).toBe("failed");
    expect(stopReasonForExit({ exitCode: 137, oomKilled: true })).toBe("oom");
    expect(stopReasonForExit({ exitCode: null, lost: true })).toBe("lost");
  });

  it("dueDeadline reports nothing before any deadline", () => {
    const context = {
      ...run([{ type: "LAUNCH" }, started], { ...input, idleTimeoutMs: 10 }).snapshot.context,
    };
    expect(dueDeadline(context, 1_009)).toBeUndefined();
    expect(dueDeadline(context, 1_010)).toBe("idle_timeout");
  });
});
