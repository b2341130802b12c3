import { afterEach, describe, expect, it } from "vitest";
import {
  CleanupFailedError,
  type CredentialBroker,
  createRuntimeKernel,
  isRuntimeKernelError,
  LABELS,
  type Profile,
  type RuntimeKernel,
  type RuntimeKernelOptions,
  type TransitionEvent,
} from "../../../src/index.js";
import { FakeBackend, type FakeBehavior, ManualClock, settle } from "../../../src/testing/index.js";

const profiles: Record<string, Profile> = {
  agent: { runnable: { command: ["agent"] }, graceMs: 1_000 },
  idle: { runnable: { command: ["agent"] }, idleTimeoutMs: 10_000, graceMs: 1_000 },
  bounded: { runnable: { command: ["agent"] }, maxLifetimeMs: 60_000, graceMs: 1_000 },
  flaky: {
    runnable: { command: ["agent"] },
    restart: { policy: "on-failure", maxRestarts: 2, backoffMs: 1_000 },
  },
};

let kernels: RuntimeKernel[] = [];
afterEach(async () => {
  await Promise.all(kernels.map((k) => k.shutdown({ graceMs: 0 })));
  kernels = [];
});

function setup({ behavior, ...options }: Partial<RuntimeKernelOptions> & { behavior?: FakeBehavior } = {}) {
  const clock = new ManualClock();
  const fake = new FakeBackend({ clock, ...(behavior ? { defaults: behavior } : {}) });
  const kernel = createRuntimeKernel({ backend: fake, clock, profiles, reapAfterMs: 60_000, ...options });
  kernels.push(kernel);
  const events: TransitionEvent[] = [];
  kernel.on("transition", (e) => events.push(e));
  const path = (workloadId: string) =>
    events.filter((e) => e.workloadId === workloadId).map((e) => `${e.from ?? "∅"}>${e.state}`);
  return { clock, fake, kernel, events, path };
}

const code = (error: unknown) => (isRuntimeKernelError(error) ? error.code : String(error));

describe("createRuntimeKernel: the lifecycle", () => {
  it("create resolves once running; stop once stopped; destroy once cleanup is confirmed", async () => {
    const { kernel, fake, path } = setup();
    const status = await kernel.create({ workloadId: "w1", profile: "agent", owner: "alice" });
    expect(status).toMatchObject({
      workloadId: "w1",
      state: "running",
      owner: "alice",
      profile: "agent",
      restarts: 0,
    });
    expect(fake.running).toBe(1);

    const stopped = await kernel.stop("w1");
    expect(stopped).toMatchObject({
      state: "stopped",
      stopReason: "requested",
      exitCode: 143,
      signal: "SIGTERM",
    });
    expect(stopped.stoppedAt).toBeGreaterThanOrEqual(stopped.startedAt as number);

    await kernel.destroy("w1");
    expect(fake.workloads()).toHaveLength(0);
    expect(kernel.get("w1")).toBeUndefined();
    expect(path("w1")).toEqual([
      "∅>starting",
      "starting>running",
      "running>stopping",
      "stopping>stopped",
      "stopped>destroyed",
    ]);
  });

  it("every event carries the run's identity and a global increasing seq", async () => {
    const { kernel, events } = setup();
    await kernel.create({ workloadId: "a", profile: "agent", owner: "o" });
    await kernel.create({ workloadId: "b", profile: "agent" });
    await kernel.destroy("a");
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    const a = events.filter((e) => e.workloadId === "a");
    expect(new Set(a.map((e) => e.runId)).size).toBe(1);
    expect(a.every((e) => e.owner === "o" && e.profile === "agent" && typeof e.at === "number")).toBe(true);
  });

  it("emits one event name per state besides `transition`", async () => {
    const { kernel } = setup();
    const seen: string[] = [];
    for (const state of ["starting", "running", "stopping", "stopped", "destroyed"] as const) {
      kernel.on(state, (e) => seen.push(`${state}:${e.state}`));
    }
    await kernel.create({ workloadId: "w1", profile: "agent" });
    await kernel.destroy("w1");
    expect(seen).toEqual([
      "starting:starting",
      "running:running",
      "stopping:stopping",
      "stopped:stopped",
      "destroyed:destroyed",
    ]);
  });

  it("destroy of a live workload walks stopping -> stopped -> destroyed", async () => {
    const { kernel, path } = setup();
    await kernel.create({ workloadId: "w1", profile: "agent" });
    await kernel.destroy("w1");
    expect(path("w1").slice(2)).toEqual(["running>stopping", "stopping>stopped", "stopped>destroyed"]);
  });

  it("reports a workload that exits by itself: completed, failed, signal (128+n), oom, lost", async () => {
    const { kernel, fake } = setup();
    const cases = [
      ["ok", { exitCode: 0 }, { stopReason: "completed", exitCode: 0 }],
      ["bad", { exitCode: 3 }, { stopReason: "failed", exitCode: 3 }],
      ["sig", { signal: "SIGSEGV" }, { stopReason: "failed", exitCode: 139, signal: "SIGSEGV" }],
      ["oom", { oomKilled: true }, { stopReason: "oom", exitCode: 137 }],
    ] as const;
    for (const [id, exit, expected] of cases) {
      await kernel.create({ workloadId: id, profile: "agent" });
      fake.exit(id, exit);
      expect(await kernel.waitFor(id, "stopped")).toMatchObject({ state: "stopped", ...expected });
    }
    await kernel.create({ workloadId: "gone", profile: "agent" });
    fake.lose("gone");
    const lost = await kernel.waitFor("gone", "stopped");
    expect(lost.stopReason).toBe("lost");
    expect(lost.exitCode).toBeUndefined();
  });

  it("a failed start rejects create with START_FAILED, and the run is stopped with start_failed", async () => {
    const { kernel, fake, path } = setup();
    fake.behave("w1", { startError: "image not found" });
    const error = await kernel.create({ workloadId: "w1", profile: "agent" }).catch((e) => e);
    expect(code(error)).toBe("START_FAILED");
    expect(error.message).toContain("image not found");
    expect(kernel.get("w1")).toMatchObject({ state: "stopped", stopReason: "start_failed" });
    expect(kernel.get("w1")?.error?.message).toContain("image not found");
    expect(path("w1")).toEqual(["∅>starting", "starting>stopped"]);
  });

  it("a start slower than the profile's startTimeoutMs is aborted and reported as a failed start", async () => {
    const { kernel, fake, clock } = setup({
      profiles: { slow: { runnable: { command: ["x"] }, startTimeoutMs: 5_000 } },
    });
    fake.behave("w1", { startDelayMs: 60_000 });
    const created = kernel.create({ workloadId: "w1", profile: "slow" }).catch((e) => e);
    await clock.advance(5_000);
    expect(code(await created)).toBe("START_FAILED");
    expect(fake.workloads()).toHaveLength(0);
  });
});

describe("createRuntimeKernel: idempotent create", () => {
  it("while starting or running, create returns the live run, starts nothing and counts as activity", async () => {
    const { kernel, fake, clock } = setup();
    const first = await kernel.create({ workloadId: "w1", profile: "idle", owner: "alice" });
    await clock.advance(5_000);
    const again = await kernel.create({ workloadId: "w1", profile: "idle", owner: "alice" });
    expect(again.runId).toBe(first.runId);
    expect(fake.started).toBe(1);
    expect(again.idleDeadline).toBe((first.idleDeadline as number) + 5_000);
  });

  it("concurrent creates of the same id share one start", async () => {
    const { kernel, fake, clock } = setup({ behavior: { startDelayMs: 10 } });
    const a = kernel.create({ workloadId: "w1", profile: "agent" });
    const b = kernel.create({ workloadId: "w1", profile: "agent" });
    await clock.advance(10);
    const [sa, sb] = await Promise.all([a, b]);
    expect(sa.runId).toBe(sb.runId);
    expect(fake.started).toBe(1);
  });

  it("on a stopped workload, create reclaims the old run and starts a new runId", async () => {
    const { kernel, fake, path } = setup();
    const first = await kernel.create({ workloadId: "w1", profile: "agent" });
    await kernel.stop("w1");
    const second = await kernel.create({ workloadId: "w1", profile: "agent" });
    expect(second.runId).not.toBe(first.runId);
    expect(second.state).toBe("running");
    expect(fake.workloads().map((w) => w.handle.runId)).toEqual([second.runId]);
    expect(path("w1")).toEqual([
      "∅>starting",
      "starting>running",
      "running>stopping",
      "stopping>stopped",
      "stopped>destroyed",
      "∅>starting",
      "starting>running",
    ]);
  });

  it("an id owned by someone else is a conflict", async () => {
    const { kernel } = setup();
    await kernel.create({ workloadId: "w1", profile: "agent", owner: "alice" });
    const error = await kernel
      .create({ workloadId: "w1", profile: "agent", owner: "mallory" })
      .catch((e) => e);
    expect(code(error)).toBe("WORKLOAD_CONFLICT");
  });
});

describe("createRuntimeKernel: stopping", () => {
  it("a stop requested while starting is never lost: taken as soon as the handle exists", async () => {
    const { kernel, clock, path } = setup({ behavior: { startDelayMs: 1_000 } });
    const created = kernel.create({ workloadId: "w1", profile: "agent" }).catch((e) => e);
    await settle();
    const stopped = kernel.stop("w1");
    await clock.advance(1_000);
    expect((await stopped).stopReason).toBe("requested");
    expect(code(await created)).toBe("START_FAILED");
    expect(path("w1")).toEqual(["∅>starting", "starting>stopping", "stopping>stopped"]);
  });

  it("escalates to kill after the grace when terminate is ignored", async () => {
    const { kernel, fake, clock, path } = setup();
    fake.behave("w1", { ignoreTerminate: true });
    await kernel.create({ workloadId: "w1", profile: "agent" });
    const stopped = kernel.stop("w1", { graceMs: 2_000 });
    await clock.advance(1_999);
    expect(kernel.get("w1")?.state).toBe("stopping");
    expect(fake.inspect("w1")?.signals).toEqual(["SIGTERM"]);
    await clock.advance(1);
    expect(await stopped).toMatchObject({ exitCode: 137, signal: "SIGKILL", stopReason: "requested" });
    expect(fake.inspect("w1")?.signals).toEqual(["SIGTERM", "SIGKILL"]);
    expect(path("w1").at(-1)).toBe("stopping>stopped");
  });

  it("graceMs 0 kills at once without terminate", async () => {
    const { kernel, fake } = setup();
    await kernel.create({ workloadId: "w1", profile: "agent" });
    await kernel.stop("w1", { graceMs: 0 });
    expect(fake.inspect("w1")?.signals).toEqual(["SIGKILL"]);
  });

  it("a failing kill is reported on `error` and retried until it succeeds", async () => {
    const { kernel, fake, clock } = setup();
    const errors: Error[] = [];
    kernel.on("error", (e) => errors.push(e));
    fake.behave("w1", { ignoreTerminate: true, killFails: 2 });
    await kernel.create({ workloadId: "w1", profile: "agent" });
    const stopped = kernel.stop("w1", { graceMs: 0 });
    await clock.advance(10_000);
    expect((await stopped).exitCode).toBe(137);
    expect(errors.map(code)).toEqual(["BACKEND_ERROR", "BACKEND_ERROR"]);
  });

  it("a kill that keeps failing rejects stop(), destroy() and a create() with its error after 3 attempts, and is retried on", async () => {
    const { kernel, fake, clock, path } = setup();
    const errors: Error[] = [];
    kernel.on("error", (e) => errors.push(e));
    fake.behave("w1", { ignoreTerminate: true, killFails: 5 });
    await kernel.create({ workloadId: "w1", profile: "agent" });
    const stopped = kernel.stop("w1", { graceMs: 0 }).catch((e: unknown) => e);
    const destroyed = kernel.destroy("w1").catch((e: unknown) => e);
    const recreated = kernel.create({ workloadId: "w1", profile: "agent" }).catch((e: unknown) => e);
    await clock.advance(2_000); // kills at 0, 1 s and 2 s
    expect(errors).toHaveLength(3);
    for (const settled of [stopped, destroyed, recreated]) {
      expect(await settled).toMatchObject({ code: "BACKEND_ERROR", message: "fake: kill of w1 failed" });
    }
    // Still stopping, and a later stop() does not wait beyond the next failed attempt.
    expect(kernel.get("w1")?.state).toBe("stopping");
    const again = kernel.stop("w1").catch((e: unknown) => e);
    await clock.advance(1_000);
    expect(code(await again)).toBe("BACKEND_ERROR");
    // The sixth kill works: the workload stops and, as destroy() asked, is reclaimed.
    await clock.advance(2_000);
    expect(errors).toHaveLength(5);
    expect(path("w1").slice(-2)).toEqual(["stopping>stopped", "stopped>destroyed"]);
  });

  it("stop of a stopped workload resolves at once; stop of an unknown one is WORKLOAD_NOT_FOUND", async () => {
    const { kernel, fake } = setup();
    await kernel.create({ workloadId: "w1", profile: "agent" });
    fake.exit("w1", { exitCode: 0 });
    await kernel.waitFor("w1", "stopped");
    expect((await kernel.stop("w1")).stopReason).toBe("completed");
    expect(code(await kernel.stop("nope").catch((e) => e))).toBe("WORKLOAD_NOT_FOUND");
    expect(() => kernel.touch("nope")).toThrow(/No workload "nope"/);
  });
});

describe("createRuntimeKernel: policies", () => {
  it("idle TTL: no activity for idleTimeoutMs stops the workload with idle_timeout", async () => {
    const { kernel, clock } = setup();
    await kernel.create({ workloadId: "w1", profile: "idle" });
    await clock.advance(9_999);
    expect(kernel.get("w1")?.state).toBe("running");
    await clock.advance(1);
    expect(await kernel.waitFor("w1", "stopped")).toMatchObject({ stopReason: "idle_timeout" });
  });

  it("touch() is activity: it pushes the idle deadline back", async () => {
    const { kernel, clock } = setup();
    await kernel.create({ workloadId: "w1", profile: "idle" });
    await clock.advance(8_000);
    kernel.touch("w1");
    await clock.advance(8_000);
    expect(kernel.get("w1")?.state).toBe("running");
    await clock.advance(2_000);
    expect(kernel.get("w1")?.stopReason).toBe("idle_timeout");
  });

  it("idleTimeoutMs 0 disables the idle TTL", async () => {
    const { kernel, clock } = setup();
    await kernel.create({ workloadId: "w1", profile: "idle", idleTimeoutMs: 0 });
    await clock.advance(1_000_000);
    expect(kernel.get("w1")?.state).toBe("running");
    expect(kernel.get("w1")?.idleDeadline).toBeUndefined();
  });

  it("max lifetime stops the workload however active it is", async () => {
    const { kernel, clock } = setup();
    await kernel.create({ workloadId: "w1", profile: "bounded" });
    for (let i = 0; i < 5; i++) {
      await clock.advance(10_000);
      kernel.touch("w1");
    }
    await clock.advance(10_000);
    expect((await kernel.waitFor("w1", "stopped")).stopReason).toBe("max_lifetime");
  });

  it("per-owner quota: the N+1th create is refused with QUOTA_EXCEEDED and starts nothing", async () => {
    const { kernel, fake } = setup({ ownerQuota: 2 });
    await kernel.create({ workloadId: "a1", profile: "agent", owner: "alice" });
    await kernel.create({ workloadId: "a2", profile: "agent", owner: "alice" });
    const error = await kernel.create({ workloadId: "a3", profile: "agent", owner: "alice" }).catch((e) => e);
    expect(code(error)).toBe("QUOTA_EXCEEDED");
    expect(error).toMatchObject({ owner: "alice", limit: 2, retryable: true });
    expect(fake.started).toBe(2);
    expect(kernel.get("a3")).toBeUndefined();
    await kernel.create({ workloadId: "b1", profile: "agent", owner: "bob" });
    // a stopped workload frees its place
    await kernel.stop("a1");
    await kernel.create({ workloadId: "a3", profile: "agent", owner: "alice" });
  });

  it("an idempotent create charges no quota", async () => {
    const { kernel } = setup({ ownerQuota: 1 });
    await kernel.create({ workloadId: "a1", profile: "agent", owner: "alice" });
    await kernel.create({ workloadId: "a1", profile: "agent", owner: "alice" });
    expect(kernel.list({ owner: "alice" })).toHaveLength(1);
  });

  it("the quota can be a function of the owner", async () => {
    const { kernel } = setup({ ownerQuota: (owner) => (owner === "vip" ? 2 : 0) });
    await kernel.create({ workloadId: "v1", profile: "agent", owner: "vip" });
    expect(
      code(await kernel.create({ workloadId: "n1", profile: "agent", owner: "nobody" }).catch((e) => e)),
    ).toBe("QUOTA_EXCEEDED");
  });

  it("backpressure: at most maxConcurrentStarts starts run at once, served fairly across owners", async () => {
    const { kernel, fake, clock, events } = setup({
      maxConcurrentStarts: 2,
      behavior: { startDelayMs: 100 },
    });
    const all = [
      ...["a1", "a2", "a3", "a4"].map((id) =>
        kernel.create({ workloadId: id, profile: "agent", owner: "alice" }),
      ),
      ...["b1", "b2"].map((id) => kernel.create({ workloadId: id, profile: "agent", owner: "bob" })),
    ];
    await settle();
    expect(fake.started).toBe(0);
    await clock.advance(100);
    await clock.advance(100);
    await clock.advance(100);
    await Promise.all(all);
    const order = events.filter((e) => e.state === "running").map((e) => e.workloadId);
    // alice's first two took the free slots; then waiting owners take turns, in the
    // order they started waiting, so bob is not starved behind alice's backlog
    expect(order).toEqual(["a1", "a2", "a3", "b1", "a4", "b2"]);
  });

  it("reaping: a stopped workload is cleaned up after reapAfterMs", async () => {
    const { kernel, fake, clock, path } = setup({ reapAfterMs: 30_000 });
    await kernel.create({ workloadId: "w1", profile: "agent" });
    fake.exit("w1", { exitCode: 0 });
    await kernel.waitFor("w1", "stopped");
    await clock.advance(29_999);
    expect(kernel.get("w1")?.state).toBe("stopped");
    await clock.advance(1);
    expect(kernel.get("w1")).toBeUndefined();
    expect(fake.workloads()).toHaveLength(0);
    expect(path("w1").at(-1)).toBe("stopped>destroyed");
  });

  it("a failed cleanup keeps the workload stopped, rejects destroy with CLEANUP_FAILED, and the reaper retries", async () => {
    const { kernel, fake, clock } = setup();
    fake.behave("w1", { cleanupFails: 2 });
    await kernel.create({ workloadId: "w1", profile: "agent" });
    const error = await kernel.destroy("w1").catch((e) => e);
    expect(code(error)).toBe("CLEANUP_FAILED");
    expect(kernel.get("w1")).toMatchObject({ state: "stopped", error: { code: "CLEANUP_FAILED" } });
    await clock.advance(1_000); // first retry fails
    expect(kernel.get("w1")?.state).toBe("stopped");
    await clock.advance(2_000); // second retry succeeds
    expect(kernel.get("w1")).toBeUndefined();
    expect(fake.workloads()).toHaveLength(0);
  });

  it("a cleanup failure the backend calls permanent is not retried by the reaper, only by destroy()", async () => {
    const { kernel, fake, clock } = setup();
    const cleanup = fake.cleanup.bind(fake);
    let attempts = 0;
    let broken = true;
    fake.cleanup = async (handle) => {
      attempts++;
      if (broken) throw new CleanupFailedError(handle.workloadId, "permission denied", { retryable: false });
      return cleanup(handle);
    };
    await kernel.create({ workloadId: "w1", profile: "agent" });
    const error = await kernel.destroy("w1").catch((e) => e);
    expect(code(error)).toBe("CLEANUP_FAILED");
    expect(error.retryable).toBe(false);
    await clock.advance(3_600_000);
    expect(attempts).toBe(1);
    const status = kernel.get("w1");
    expect(status).toMatchObject({ state: "stopped", error: { code: "CLEANUP_FAILED" } });
    expect(status?.error?.message).toMatch(/call destroy\(\)/);
    // Someone fixed it: an explicit destroy tries again, and succeeds.
    broken = false;
    await kernel.destroy("w1");
    expect(attempts).toBe(2);
    expect(kernel.get("w1")).toBeUndefined();
    expect(fake.workloads()).toHaveLength(0);
  });

  it("restart on failure: each restart is a new run with exponential backoff, its events say so", async () => {
    const { kernel, fake, clock, events } = setup();
    const first = await kernel.create({ workloadId: "w1", profile: "flaky", owner: "o" });
    fake.exit("w1", { exitCode: 1 });
    await kernel.waitFor("w1", "stopped");
    expect(kernel.get("w1")?.restartAt).toBe(clock.now() + 1_000);
    await clock.advance(1_000);
    const second = await kernel.waitFor("w1", "running");
    expect(second.runId).not.toBe(first.runId);
    expect(second.restarts).toBe(1);
    fake.exit("w1", { exitCode: 1 });
    await clock.advance(1_999);
    expect(kernel.get("w1")?.state).toBe("stopped");
    await clock.advance(1);
    expect((await kernel.waitFor("w1", "running")).restarts).toBe(2);
    fake.exit("w1", { exitCode: 1 });
    await clock.advance(100_000);
    // maxRestarts 2: the third failure is final and the workload gets reaped
    expect(fake.started).toBe(3);
    const starts = events.filter((e) => e.workloadId === "w1" && e.state === "starting");
    expect(starts.map((e) => e.restart)).toEqual([undefined, 1, 2]);
  });

  it("restart never follows success, a requested stop, or a failed start", async () => {
    const { kernel, fake, clock } = setup();
    await kernel.create({ workloadId: "ok", profile: "flaky" });
    fake.exit("ok", { exitCode: 0 });
    await kernel.create({ workloadId: "st", profile: "flaky" });
    await kernel.stop("st");
    fake.behave("sf", { startError: "nope" });
    await kernel.create({ workloadId: "sf", profile: "flaky" }).catch(() => {});
    await clock.advance(5_000);
    expect(fake.started).toBe(2);
  });

  it("stop() during the restart backoff cancels the restart", async () => {
    const { kernel, fake, clock } = setup();
    await kernel.create({ workloadId: "w1", profile: "flaky" });
    fake.exit("w1", { exitCode: 1 });
    await kernel.waitFor("w1", "stopped");
    await kernel.stop("w1");
    await clock.advance(10_000);
    expect(fake.started).toBe(1);
  });
});

describe("createRuntimeKernel: credentials", () => {
  const secret = "sk-live-0123456789abcdef";
  const broker: CredentialBroker = { credentials: () => ({ API_KEY: secret }) };

  it("brokered credentials reach backend.start and nothing else", async () => {
    const { kernel, fake, events } = setup({ credentials: broker });
    const status = await kernel.create({ workloadId: "w1", profile: "agent", env: { PLAIN: "1" } });
    expect(fake.inspect("w1")?.request.env).toEqual({ PLAIN: "1", API_KEY: secret });
    await kernel.destroy("w1");
    const everything = JSON.stringify({ status, events, list: kernel.list() });
    expect(everything).not.toContain(secret);
  });

  it("a backend error that quotes a secret is scrubbed before it reaches the caller, events and statuses", async () => {
    const { kernel, fake, events } = setup({ credentials: broker });
    const errors: Error[] = [];
    kernel.on("error", (e) => errors.push(e));
    fake.behave("w1", { startError: new Error(`bad env API_KEY=${secret}`) });
    const error = await kernel.create({ workloadId: "w1", profile: "agent" }).catch((e) => e);
    const seen = [
      error.message,
      error.stack,
      String(error.cause?.message),
      JSON.stringify(events),
      JSON.stringify(kernel.get("w1")),
      ...errors.map((e) => e.message),
    ].join("\n");
    expect(seen).toContain("[REDACTED]");
    expect(seen).not.toContain(secret);
  });
});

describe("createRuntimeKernel: a credential broker that fails", () => {
  const secret = "vault-token-s3cr3t-0123456789";

  /** Everything a caller, an event listener or a log could see of a failed start. */
  async function everythingSeen(broker: CredentialBroker) {
    const { kernel, fake, events } = setup({ credentials: broker });
    const logged: string[] = [];
    kernel.on("error", (e) => logged.push(`${e.message}\n${e.stack}`));
    const error = await kernel.create({ workloadId: "w1", profile: "agent" }).catch((e) => e);
    const causes: string[] = [];
    for (let c = error; c; c = c.cause) causes.push(`${c.message}\n${c.stack}`);
    return {
      error,
      fake,
      seen: [
        ...causes,
        JSON.stringify(error),
        JSON.stringify(events),
        JSON.stringify(kernel.list()),
        ...logged,
      ].join("\n"),
    };
  }

  it("keeps a secret the broker's error quotes out of every error, event, status and log", async () => {
    const { error, seen, fake } = await everythingSeen({
      credentials: () => {
        throw new TypeError(`vault refused https://vault.internal/?token=${secret}`);
      },
    });
    expect(code(error)).toBe("START_FAILED");
    expect(error.message).toContain("The credential broker threw TypeError");
    expect(seen).not.toContain(secret);
    expect(fake.started).toBe(0);
  });

  it("keeps the broker's code and retryable flag, but not its message", async () => {
    const { error, seen } = await everythingSeen({
      credentials: async () => {
        throw Object.assign(new Error(`token ${secret} expired`), { code: "ETOKEN", retryable: true });
      },
    });
    expect([error.code, error.retryable]).toEqual(["START_FAILED", true]);
    expect(error.message).toContain("threw Error ETOKEN");
    expect(seen).not.toContain(secret);
  });

  it("refuses credentials that are not strings without quoting them", async () => {
    const { error, seen } = await everythingSeen({
      credentials: () => ({ API_KEY: { nested: secret } }) as never,
    });
    expect(error.message).toContain(
      "returned something other than environment variable names mapped to strings",
    );
    expect(seen).not.toContain(secret);
  });
});

describe("createRuntimeKernel: observing", () => {
  it("carries the spec's trace id on every event and status of the workload, restarts included", async () => {
    const { kernel, fake, events, clock } = setup();
    await kernel.create({ workloadId: "w1", profile: "flaky", traceId: "trace-1" });
    expect(kernel.get("w1")?.traceId).toBe("trace-1");
    fake.exit("w1", { exitCode: 1 });
    await kernel.waitFor("w1", "stopped");
    await clock.advance(1_000);
    expect((await kernel.waitFor("w1", "running")).restarts).toBe(1);
    await kernel.destroy("w1");
    const own = events.filter((e) => e.workloadId === "w1");
    expect(own.map((e) => e.state)).toEqual([
      "starting",
      "running",
      "stopped",
      "destroyed",
      "starting",
      "running",
      "stopping",
      "stopped",
      "destroyed",
    ]);
    expect(own.every((e) => e.traceId === "trace-1")).toBe(true);
    await kernel.create({ workloadId: "w2", profile: "agent" });
    expect(kernel.get("w2")).not.toHaveProperty("traceId");
    expect(events.at(-1)).not.toHaveProperty("traceId");
  });

  it("list() filters by owner, state and profile", async () => {
    const { kernel } = setup();
    await kernel.create({ workloadId: "a", profile: "agent", owner: "alice" });
    await kernel.create({ workloadId: "b", profile: "idle", owner: "bob" });
    await kernel.stop("b");
    expect(kernel.list({ owner: "alice" }).map((s) => s.workloadId)).toEqual(["a"]);
    expect(kernel.list({ state: "stopped" }).map((s) => s.workloadId)).toEqual(["b"]);
    expect(kernel.list({ state: ["running", "stopped"] })).toHaveLength(2);
    expect(kernel.list({ profile: "idle" }).map((s) => s.workloadId)).toEqual(["b"]);
  });

  it("emits on `error` what the backend reports by itself (watchFaults), until it shuts down", async () => {
    const fake = new FakeBackend({ clock: new ManualClock() });
    let report: ((error: Error) => void) | undefined;
    const backend = Object.assign(fake, {
      watchFaults: (onFault: (error: Error) => void) => {
        report = onFault;
        return () => {
          report = undefined;
        };
      },
    });
    const kernel = createRuntimeKernel({ backend });
    const errors: Error[] = [];
    kernel.on("error", (e) => errors.push(e));
    report?.(new Error("a journal line was skipped"));
    expect(errors.map((e) => e.message)).toEqual(["a journal line was skipped"]);
    await kernel.shutdown();
    expect(report).toBeUndefined();
  });

  it("events() is an async iterator, filterable by workload, that can replay from a seq", async () => {
    const { kernel } = setup();
    const controller = new AbortController();
    const seen: string[] = [];
    const consumer = (async () => {
      for await (const e of kernel.events({ workloadId: "w2", signal: controller.signal }))
        seen.push(e.state);
    })();
    await kernel.create({ workloadId: "w1", profile: "agent" });
    await kernel.create({ workloadId: "w2", profile: "agent" });
    await kernel.destroy("w2");
    controller.abort();
    await consumer;
    expect(seen).toEqual(["starting", "running", "stopping", "stopped", "destroyed"]);

    const replayed: number[] = [];
    const it = kernel.events({ sinceSeq: 2 });
    for (let i = 0; i < 3; i++) replayed.push(((await it.next()).value as TransitionEvent).seq);
    await it.return?.();
    expect(replayed).toEqual([3, 4, 5]);
  });

  it("lastEventSeq is the seq to replay from: what follows it, nothing before", async () => {
    const { kernel } = setup();
    expect(kernel.lastEventSeq).toBe(0);
    await kernel.create({ workloadId: "w1", profile: "agent" });
    const mark = kernel.lastEventSeq;
    expect(mark).toBe(2);
    await kernel.stop("w1");
    const it = kernel.events({ sinceSeq: mark });
    const after = [(await it.next()).value, (await it.next()).value] as TransitionEvent[];
    await it.return?.();
    expect(after.map((e) => [e.seq, e.state])).toEqual([
      [3, "stopping"],
      [4, "stopped"],
    ]);
  });

  it("a listener that throws is reported on `error` and breaks nothing", async () => {
    const { kernel } = setup();
    const errors: Error[] = [];
    kernel.on("error", (e) => errors.push(e));
    kernel.on("running", () => {
      throw new Error("listener bug");
    });
    await kernel.create({ workloadId: "w1", profile: "agent" });
    await kernel.destroy("w1");
    expect(errors.map((e) => e.message)).toEqual(["listener bug"]);
  });

  it("waitFor resolves at or after the state, rejects unknown ids, and honours an abort signal", async () => {
    const { kernel } = setup();
    await kernel.create({ workloadId: "w1", profile: "agent" });
    expect((await kernel.waitFor("w1", "starting")).state).toBe("running");
    expect(code(await kernel.waitFor("nope", "running").catch((e) => e))).toBe("WORKLOAD_NOT_FOUND");
    const controller = new AbortController();
    const waiting = kernel.waitFor("w1", "stopped", { signal: controller.signal }).catch((e) => e);
    controller.abort(new Error("gave up"));
    expect((await waiting).message).toBe("gave up");
  });

  it("logs() streams the backend's output for the current run", async () => {
    const { kernel, fake } = setup();
    fake.behave("w1", { output: ["hello", "world"] });
    await kernel.create({ workloadId: "w1", profile: "agent" });
    const lines: string[] = [];
    for await (const entry of kernel.logs("w1")) lines.push(entry.line);
    expect(lines).toEqual(["hello", "world"]);
  });

  it("without watchExit, one shared poll of exitCode observes exits", async () => {
    const clock = new ManualClock();
    const fake = new FakeBackend({ clock, watchExit: false });
    const kernel = createRuntimeKernel({ backend: fake, clock, profiles, pollIntervalMs: 500 });
    kernels.push(kernel);
    await kernel.create({ workloadId: "a", profile: "agent" });
    await kernel.create({ workloadId: "b", profile: "agent" });
    fake.exit("a", { exitCode: 2 });
    fake.exit("b", { signal: "SIGKILL" });
    expect(clock.pending).toBe(1);
    await clock.advance(500);
    expect(kernel.get("a")).toMatchObject({ state: "stopped", exitCode: 2, stopReason: "failed" });
    expect(kernel.get("b")).toMatchObject({ state: "stopped", exitCode: 137, signal: "SIGKILL" });
  });
});

describe("createRuntimeKernel: recovery and shutdown", () => {
  it("recover() re-adopts running workloads, reports missed exits, restores deadlines", async () => {
    const clock = new ManualClock();
    const fake = new FakeBackend({ clock });
    const before = createRuntimeKernel({ backend: fake, clock, profiles, kernelId: "k1" });
    await before.create({ workloadId: "alive", profile: "bounded", owner: "o" });
    await before.create({ workloadId: "ends", profile: "agent" });
    const maxDeadline = before.get("alive")?.maxLifetimeDeadline as number;
    await before.shutdown({ leaveRunning: true });
    fake.exit("ends", { exitCode: 7 });

    const after = createRuntimeKernel({ backend: fake, clock, profiles, kernelId: "k1", ownerQuota: 1 });
    kernels.push(after);
    const events: TransitionEvent[] = [];
    after.on("transition", (e) => events.push(e));
    const report = await after.recover();
    expect(report.adopted.map((s) => s.workloadId)).toEqual(["alive"]);
    expect(report.exited).toMatchObject([{ workloadId: "ends", exitCode: 7, stopReason: "failed" }]);
    expect(events.every((e) => e.recovered)).toBe(true);
    expect(events.map((e) => `${e.workloadId}:${e.from}>${e.state}`)).toEqual([
      "alive:null>running",
      "ends:null>running",
      "ends:running>stopped",
    ]);
    // the max-lifetime deadline survived (label set at creation, at most a start's duration earlier)
    expect(after.get("alive")?.maxLifetimeDeadline).toBeLessThanOrEqual(maxDeadline);
    // the adopted workload is charged to its owner
    expect(code(await after.create({ workloadId: "x", profile: "agent", owner: "o" }).catch((e) => e))).toBe(
      "QUOTA_EXCEEDED",
    );
    await clock.advance(60_000);
    expect((await after.waitFor("alive", "stopped")).stopReason).toBe("max_lifetime");
  });

  it("recover() keeps each workload's traceId, and drops one a substrate holds that no spec could carry", async () => {
    const clock = new ManualClock();
    const fake = new FakeBackend({ clock });
    const before = createRuntimeKernel({ backend: fake, clock, profiles, kernelId: "k1" });
    await before.create({ workloadId: "traced", profile: "agent", traceId: "4bf92f35:span/1" });
    await before.create({ workloadId: "forged", profile: "agent", traceId: "t" });
    await before.shutdown({ leaveRunning: true });
    // Labels come back from the substrate: one edited there is not trusted.
    const forged = fake.workloads().find((w) => w.request.labels[LABELS.workloadId] === "forged");
    (forged?.request.labels as Record<string, string>)[LABELS.traceId] = "a b\nc";

    const after = createRuntimeKernel({ backend: fake, clock, profiles, kernelId: "k1" });
    kernels.push(after);
    const events: TransitionEvent[] = [];
    after.on("transition", (e) => events.push(e));
    await after.recover();
    expect(after.get("traced")?.traceId).toBe("4bf92f35:span/1");
    expect(after.get("forged")).not.toHaveProperty("traceId");
    await after.stop("traced");
    expect(events.filter((e) => e.workloadId === "traced").map((e) => e.traceId)).toEqual([
      "4bf92f35:span/1",
      "4bf92f35:span/1",
      "4bf92f35:span/1",
    ]);
  });

  it("recover() ignores other kernels' workloads and reaps superseded runs", async () => {
    const clock = new ManualClock();
    const fake = new FakeBackend({ clock });
    const other = createRuntimeKernel({ backend: fake, clock, profiles, kernelId: "other" });
    await other.create({ workloadId: "theirs", profile: "agent" });
    const mine = createRuntimeKernel({ backend: fake, clock, profiles, kernelId: "mine" });
    kernels.push(mine, other);
    expect((await mine.recover()).adopted).toEqual([]);
  });

  it("shutdown() stops and reclaims everything with reason shutdown, then refuses new work", async () => {
    const { kernel, fake, events } = setup();
    await kernel.create({ workloadId: "a", profile: "agent" });
    await kernel.create({ workloadId: "b", profile: "agent" });
    await kernel.shutdown();
    expect(fake.workloads()).toHaveLength(0);
    expect(events.filter((e) => e.state === "stopping").map((e) => e.stopReason)).toEqual([
      "shutdown",
      "shutdown",
    ]);
    expect(code(await kernel.create({ workloadId: "c", profile: "agent" }).catch((e) => e))).toBe(
      "KERNEL_SHUT_DOWN",
    );
  });

  it("works with `await using`", async () => {
    const clock = new ManualClock();
    const fake = new FakeBackend({ clock });
    {
      await using kernel = createRuntimeKernel({ backend: fake, clock, profiles });
      await kernel.create({ workloadId: "w1", profile: "agent" });
    }
    expect(fake.workloads()).toHaveLength(0);
  });
});

describe("createRuntimeKernel: bad input", () => {
  it("refuses a malformed spec with INVALID_SPEC naming the field, and starts nothing", async () => {
    const { kernel, fake } = setup();
    const error = await kernel
      .create({ workloadId: "Not Valid!", profile: "agent", env: { "1BAD": "x" } })
      .catch((e) => e);
    expect(code(error)).toBe("INVALID_SPEC");
    expect(error.message).toMatch(/workloadId: must be a DNS-1123 label/);
    expect(error.issues.map((i: { path: string }) => i.path)).toEqual(["workloadId", "env.1BAD"]);
    expect(fake.started).toBe(0);
    expect(kernel.list()).toEqual([]);
  });

  it("refuses an unknown profile, listing the configured ones", async () => {
    const { kernel } = setup();
    const error = await kernel.create({ workloadId: "w1", profile: "nope" }).catch((e) => e);
    expect(error.message).toContain(
      'profile: unknown profile "nope" (configured: agent, idle, bounded, flaky)',
    );
  });

  it("refuses malformed kernel options naming the field", () => {
    expect(() =>
      createRuntimeKernel({
        backend: new FakeBackend(),
        profiles: { p: { runnable: { command: [] }, idleTimeoutMs: -1 } },
      }),
    ).toThrow(
      /profiles\.p\.runnable\.command: must hold at least the program; profiles\.p\.idleTimeoutMs: must be >= 0/,
    );
    expect(() => createRuntimeKernel({ backend: {} as never })).toThrow(
      /backend: must implement the Backend port/,
    );
  });
});

describe("createRuntimeKernel: every method's arguments are checked like specs", () => {
  const BAD_DURATIONS: unknown[] = [Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53 - 1, "5000", -1, 1.5];

  /** Each call that must be refused, and the field its error must name. */
  const refusals = (kernel: RuntimeKernel): [string, () => unknown, string][] => [
    ...BAD_DURATIONS.flatMap((bad): [string, () => unknown, string][] => [
      [`stop graceMs ${String(bad)}`, () => kernel.stop("w1", { graceMs: bad as number }), "graceMs"],
      [`destroy graceMs ${String(bad)}`, () => kernel.destroy("w1", { graceMs: bad as number }), "graceMs"],
      [`shutdown graceMs ${String(bad)}`, () => kernel.shutdown({ graceMs: bad as number }), "graceMs"],
    ]),
    ["stop reason", () => kernel.stop("w1", { reason: "bogus" as never }), "reason"],
    ["stop reason the kernel's own", () => kernel.stop("w1", { reason: "failed" as never }), "reason"],
    ["stop unknown option", () => kernel.stop("w1", { force: true } as never), "force"],
    ["stop options not an object", () => kernel.stop("w1", "5000" as never), "options"],
    ["stop id not a string", () => kernel.stop(7 as never), "workloadId"],
    ["destroy id not a string", () => kernel.destroy(null as never), "workloadId"],
    ["destroy options an array", () => kernel.destroy("w1", [] as never), "options"],
    ["get id not a string", () => kernel.get(42 as never), "workloadId"],
    ["touch id not a string", () => kernel.touch({} as never), "workloadId"],
    ["list state", () => kernel.list({ state: "bogus" as never }), "state"],
    ["list owner", () => kernel.list({ owner: 7 as never }), "owner"],
    ["waitFor state", () => kernel.waitFor("w1", "bogus" as never), "state"],
    ["waitFor signal", () => kernel.waitFor("w1", "stopped", { signal: "x" as never }), "signal"],
    ["events sinceSeq", () => kernel.events({ sinceSeq: -1 }), "sinceSeq"],
    ["events highWaterMark", () => kernel.events({ highWaterMark: Number.NaN }), "highWaterMark"],
    ["logs tail", () => kernel.logs("w1", { tail: 1.5 }), "tail"],
    ["logs follow", () => kernel.logs("w1", { follow: "yes" as never }), "follow"],
    ["shutdown leaveRunning", () => kernel.shutdown({ leaveRunning: 1 as never }), "leaveRunning"],
  ];

  it("refuses each bad argument with INVALID_SPEC naming the field, and changes nothing", async () => {
    const { kernel, fake, events } = setup();
    await kernel.create({ workloadId: "w1", profile: "agent" });
    const before = events.length;
    for (const [label, call, field] of refusals(kernel)) {
      let error: unknown;
      try {
        await call();
      } catch (e) {
        error = e;
      }
      expect(code(error), label).toBe("INVALID_SPEC");
      expect(
        (error as { issues: { path: string }[] }).issues.map((i) => i.path),
        label,
      ).toContain(field);
    }
    expect(events.length).toBe(before);
    expect(kernel.get("w1")?.state).toBe("running");
    expect(fake.running).toBe(1);
    // The kernel still works, and shuts down with valid options.
    expect((await kernel.stop("w1", { graceMs: 0 })).state).toBe("stopped");
  });

  it("keeps every other workload's idle TTL and max lifetime firing after bad options were offered", async () => {
    const { kernel, clock, fake } = setup();
    // The victim ignores SIGTERM, so a grace period of the bad value would be scheduled.
    fake.behave("victim", { ignoreTerminate: true });
    await kernel.create({ workloadId: "victim", profile: "agent" });
    await kernel.create({ workloadId: "idler", profile: "idle" });
    await kernel.create({ workloadId: "bounded", profile: "bounded" });
    for (const bad of BAD_DURATIONS) {
      // Not awaited: before the fix, a stop with NaN never settled.
      void kernel.stop("victim", { graceMs: bad as number }).catch(() => {});
      void kernel.destroy("victim", { graceMs: bad as number }).catch(() => {});
    }
    await clock.advance(10_000);
    expect(kernel.get("idler")).toMatchObject({ state: "stopped", stopReason: "idle_timeout" });
    await clock.advance(50_000);
    expect(kernel.get("bounded")).toMatchObject({ state: "stopped", stopReason: "max_lifetime" });
    expect(kernel.get("victim")?.state).toBe("running");
  });

  it("accepts the options it documents, absent or undefined", async () => {
    const { kernel } = setup();
    await kernel.create({ workloadId: "w1", profile: "agent" });
    expect(kernel.list({ state: ["running"], owner: undefined })).toHaveLength(1);
    expect(kernel.get("no-such")).toBeUndefined();
    const stopped = await kernel.stop("w1", { reason: "max_lifetime", graceMs: undefined });
    expect(stopped.stopReason).toBe("max_lifetime");
    await kernel.destroy("w1", undefined);
  });
});

describe("createRuntimeKernel: spec fields the review found loose", () => {
  it('refuses command: [""] as INVALID_SPEC naming runnable.command, starting nothing', async () => {
    const { kernel, fake } = setup();
    const error = await kernel
      .create({ workloadId: "w1", profile: "agent", runnable: { command: [""] } })
      .catch((e) => e);
    expect(code(error)).toBe("INVALID_SPEC");
    expect(error.issues).toEqual([
      { path: "runnable.command", message: "must start with a program, not an empty string" },
    ]);
    expect(fake.started).toBe(0);
  });

  it.each(["idleTimeoutMs", "maxLifetimeMs", "graceMs"])("refuses a %s no timer can hold", async (field) => {
    const { kernel } = setup();
    const error = await kernel
      .create({ workloadId: "w1", profile: "agent", [field]: 2 ** 53 - 1 })
      .catch((e) => e);
    expect(error.issues).toEqual([{ path: field, message: "must be at most 31536000000 (365 days)" }]);
  });
});
