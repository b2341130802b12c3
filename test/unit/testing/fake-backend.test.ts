import { describe, expect, it } from "vitest";
import { type ExitStatus, LABELS, type LogEntry, type StartRequest } from "../../../src/backends/backend.js";
import { isRuntimeKernelError } from "../../../src/errors.js";
import {
  FakeBackend,
  type FakeBackendOptions,
  type FakeBehavior,
  type FakeHandle,
  ManualClock,
} from "../../../src/testing/index.js";

let runs = 0;

function request(workloadId: string, extra: Partial<StartRequest> = {}): StartRequest {
  const runId = `run-${++runs}`;
  return {
    kernelId: "k1",
    workloadId,
    runId,
    profile: "agent",
    runnable: { command: ["agent"] },
    env: { API_KEY: "sk-secret-value" },
    labels: { [LABELS.kernelId]: "k1", [LABELS.workloadId]: workloadId, [LABELS.runId]: runId },
    ...extra,
  };
}

function setup(options: Omit<FakeBackendOptions, "clock"> = {}) {
  const clock = new ManualClock(0);
  const fake = new FakeBackend({ clock, ...options });
  const start = (
    workloadId: string,
    extra: Partial<StartRequest> = {},
    signal = new AbortController().signal,
  ) => fake.start(request(workloadId, extra), { signal });
  /** Watches the exit of `handle`; `exits` fills when it comes. */
  const exits: ExitStatus[] = [];
  const watch = (handle: FakeHandle) => fake.watchExit(handle, (status) => exits.push(status));
  return { clock, fake, start, exits, watch };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (error: unknown) => error,
  );
}

async function collect(iterable: AsyncIterable<LogEntry>): Promise<string[]> {
  const lines: string[] = [];
  for await (const entry of iterable) lines.push(entry.line);
  return lines;
}

describe("FakeBackend", () => {
  describe("the port", () => {
    it("starts a run that runs until stopped, with a plain-JSON handle", async () => {
      const { fake, start } = setup();
      const handle = await start("w1");
      expect(handle).toMatchObject({ workloadId: "w1", backend: "fake" });
      expect(JSON.parse(JSON.stringify(handle))).toEqual(handle);
      expect(await fake.exitCode(JSON.parse(JSON.stringify(handle)))).toBeNull();
      expect(fake.running).toBe(1);
      expect(fake.started).toBe(1);
    });

    it("gives two runs of the same workload distinct handles", async () => {
      const { start } = setup();
      const a = await start("w1");
      const b = await start("w1");
      expect(a).not.toEqual(b);
    });

    it("keeps the start request, env included, for inspection", async () => {
      const { fake, start } = setup();
      await start("w1");
      expect(fake.inspect("w1")?.request.env).toEqual({ API_KEY: "sk-secret-value" });
    });

    it("terminates with SIGTERM: exit 143", async () => {
      const { fake, start, watch, exits } = setup();
      const handle = await start("w1");
      watch(handle);
      await fake.terminate(handle, { graceMs: 1_000 });
      await Promise.resolve();
      expect(exits).toEqual([{ exitCode: 143, signal: "SIGTERM" }]);
      expect(await fake.exitCode(handle)).toBe(143);
      expect(fake.inspect("w1")?.signals).toEqual(["SIGTERM"]);
    });

    it("kills with SIGKILL: exit 137", async () => {
      const { fake, start, watch, exits } = setup();
      const handle = await start("w1");
      watch(handle);
      await fake.kill(handle);
      await Promise.resolve();
      expect(exits).toEqual([{ exitCode: 137, signal: "SIGKILL" }]);
      expect(fake.inspect("w1")?.signals).toEqual(["SIGKILL"]);
    });

    it("takes terminate and kill of an exited run as no-ops", async () => {
      const { fake, start } = setup();
      const handle = await start("w1");
      fake.exit("w1", { exitCode: 0 });
      await fake.terminate(handle, { graceMs: 0 });
      await fake.kill(handle);
      expect(fake.inspect("w1")?.signals).toEqual([]);
      expect(await fake.exitCode(handle)).toBe(0);
    });

    it("cleans up idempotently, killing a run still running", async () => {
      const { fake, start, watch, exits } = setup();
      const handle = await start("w1");
      watch(handle);
      await fake.cleanup(handle);
      expect(exits).toEqual([{ exitCode: 137, signal: "SIGKILL" }]);
      expect(fake.workloads()).toEqual([]);
      await expect(fake.cleanup(handle)).resolves.toBeUndefined();
    });

    it("answers WORKLOAD_LOST for the exit code of a run it no longer holds", async () => {
      const { fake, start } = setup();
      const handle = await start("w1");
      await fake.cleanup(handle);
      expect(isRuntimeKernelError(await rejection(fake.exitCode(handle)), "WORKLOAD_LOST")).toBe(true);
    });

    it("calls a watcher once, and never after it unsubscribed", async () => {
      const { fake, start, watch, exits } = setup();
      const a = await start("a");
      const b = await start("b");
      watch(a);
      const unwatch = watch(b);
      unwatch();
      fake.exit("a", { exitCode: 1 });
      fake.exit("b", { exitCode: 2 });
      fake.exit("a", { exitCode: 9 });
      expect(exits).toEqual([{ exitCode: 1 }]);
    });

    it("tells a watcher of a run that already exited, or is gone, at once", async () => {
      const { fake, start, watch, exits } = setup();
      const exited = await start("exited");
      fake.exit("exited", { exitCode: 5 });
      const gone = await start("gone");
      await fake.cleanup(gone);
      watch(exited);
      watch(gone);
      await Promise.resolve();
      expect(exits).toEqual([{ exitCode: 5 }, { exitCode: null, lost: true }]);
    });

    it("never calls a watcher of a run that already exited, or is gone, once it unsubscribed", async () => {
      const { fake, start, watch, exits } = setup();
      const exited = await start("exited");
      fake.exit("exited", { exitCode: 5 });
      const gone = await start("gone");
      await fake.cleanup(gone);
      watch(exited)();
      watch(gone)();
      await Promise.resolve();
      expect(exits).toEqual([]);
    });

    it("offers no watchExit with `watchExit: false`, so the kernel polls", () => {
      expect(setup({ watchExit: false }).fake.watchExit).toBeUndefined();
      expect(typeof setup().fake.watchExit).toBe("function");
    });
  });

  describe("behaviours", () => {
    it("behaves per workload with behave(), for every future run", async () => {
      const { clock, fake, start } = setup();
      fake.behave("w1", { exitAfterMs: 10, exitCode: 3 });
      const first = await start("w1");
      const other = await start("w2");
      await clock.advance(10);
      expect(await fake.exitCode(first)).toBe(3);
      expect(await fake.exitCode(other)).toBeNull();
      const second = await start("w1");
      await clock.advance(10);
      expect(await fake.exitCode(second)).toBe(3);
    });

    it("behaves per runnable with `runnable.fake`", async () => {
      const { clock, fake, start } = setup();
      const handle = await start("w1", {
        runnable: { command: ["x"], fake: { exitAfterMs: 5, exitCode: 7 } },
      });
      await clock.advance(5);
      expect(await fake.exitCode(handle)).toBe(7);
    });

    it("applies `defaults` to workloads with no behaviour of their own", async () => {
      const { clock, fake, start } = setup({ defaults: { exitAfterMs: 1, exitCode: 9 } });
      const handle = await start("w1");
      await clock.advance(1);
      expect(await fake.exitCode(handle)).toBe(9);
    });

    it("lets behave() override runnable.fake, which overrides defaults, field by field", async () => {
      const { clock, fake, start } = setup({
        defaults: { exitAfterMs: 100, exitCode: 1, output: ["default"] },
      });
      fake.behave("w1", { exitCode: 3 });
      const handle = await start("w1", { runnable: { fake: { exitAfterMs: 10, exitCode: 2 } } });
      await clock.advance(10);
      expect(await fake.exitCode(handle)).toBe(3);
      expect(await collect(fake.logs(handle))).toEqual(["default"]);
    });

    it("exits by itself with a signal, or as an OOM kill", async () => {
      const { clock, start, watch, exits } = setup();
      watch(await start("sig", { runnable: { fake: { exitAfterMs: 1, signal: "SIGSEGV" } } }));
      watch(await start("oom", { runnable: { fake: { exitAfterMs: 2, oomKilled: true } } }));
      await clock.advance(2);
      expect(exits).toEqual([
        { exitCode: 139, signal: "SIGSEGV" },
        { exitCode: 137, oomKilled: true },
      ]);
    });

    it("vanishes after lostAfterMs: lost, and no longer held", async () => {
      const { clock, fake, start, watch, exits } = setup();
      const handle = await start("w1", { runnable: { fake: { lostAfterMs: 50 } } });
      watch(handle);
      await clock.advance(50);
      expect(exits).toEqual([{ exitCode: null, lost: true }]);
      expect(fake.workloads()).toEqual([]);
      expect(isRuntimeKernelError(await rejection(fake.exitCode(handle)), "WORKLOAD_LOST")).toBe(true);
    });

    it("exits terminateDelayMs after a terminate", async () => {
      const { clock, fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { terminateDelayMs: 100 } } });
      await fake.terminate(handle, { graceMs: 1_000 });
      await clock.advance(99);
      expect(await fake.exitCode(handle)).toBeNull();
      await clock.advance(1);
      expect(await fake.exitCode(handle)).toBe(143);
    });

    it("ignores SIGTERM with ignoreTerminate: only kill stops it", async () => {
      const { clock, fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { ignoreTerminate: true } } });
      await fake.terminate(handle, { graceMs: 10 });
      await clock.advance(60_000);
      expect(await fake.exitCode(handle)).toBeNull();
      await fake.kill(handle);
      await clock.advance(0);
      expect(await fake.exitCode(handle)).toBe(137);
      expect(fake.inspect("w1")?.signals).toEqual(["SIGTERM", "SIGKILL"]);
    });
  });

  describe("start faults", () => {
    it("resolves start after startDelayMs on its clock", async () => {
      const { clock, fake, start } = setup();
      fake.behave("slow", { startDelayMs: 1_000 });
      let handle: FakeHandle | undefined;
      void start("slow").then((h) => {
        handle = h;
      });
      await clock.advance(999);
      expect(handle).toBeUndefined();
      expect(fake.workloads()).toEqual([]);
      await clock.advance(1);
      expect(handle?.workloadId).toBe("slow");
    });

    it("rejects a delayed start with START_ABORTED when its signal aborts, leaving nothing behind", async () => {
      const { clock, fake, start } = setup();
      fake.behave("slow", { startDelayMs: 1_000 });
      const controller = new AbortController();
      const starting = start("slow", {}, controller.signal);
      await clock.advance(500);
      controller.abort(new Error("timed out"));
      const error = await rejection(starting);
      expect(isRuntimeKernelError(error, "START_ABORTED")).toBe(true);
      expect((error as Error).cause).toEqual(new Error("timed out"));
      expect(fake.workloads()).toEqual([]);
      expect(fake.started).toBe(0);
      expect(clock.pending).toBe(0);
    });

    it("rejects a start whose signal aborted before it was called", async () => {
      const { fake, start } = setup();
      const error = await rejection(start("w1", {}, AbortSignal.abort()));
      expect(isRuntimeKernelError(error, "START_ABORTED")).toBe(true);
      expect(fake.workloads()).toEqual([]);
    });

    it("rejects with START_FAILED for a startError string, and with the very error for an Error", async () => {
      const { fake, start } = setup();
      fake.behave("a", { startError: "image not found" });
      const custom = new Error("boom");
      fake.behave("b", { startError: custom });
      const a = await rejection(start("a"));
      expect(isRuntimeKernelError(a, "START_FAILED")).toBe(true);
      expect((a as Error).message).toBe("image not found");
      expect(await rejection(start("b"))).toBe(custom);
      expect(fake.workloads()).toEqual([]);
      expect(fake.started).toBe(0);
    });
  });

  describe("stop and cleanup faults", () => {
    it("fails kill `killFails` times with a retryable BACKEND_ERROR, then kills", async () => {
      const { fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { killFails: 2 } } });
      for (let i = 0; i < 2; i++) {
        const error = await rejection(fake.kill(handle));
        expect(isRuntimeKernelError(error, "BACKEND_ERROR")).toBe(true);
        expect((error as { retryable: boolean }).retryable).toBe(true);
      }
      await fake.kill(handle);
      await Promise.resolve();
      expect(await fake.exitCode(handle)).toBe(137);
    });

    it('fails every kill with `killFails: "always"`', async () => {
      const { fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { killFails: "always" } } });
      for (let i = 0; i < 5; i++) expect(await rejection(fake.kill(handle))).toBeInstanceOf(Error);
      expect(await fake.exitCode(handle)).toBeNull();
    });

    it("fails cleanup `cleanupFails` times with a retryable CLEANUP_FAILED (transient), then cleans up", async () => {
      const { fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { cleanupFails: 1 } } });
      const error = await rejection(fake.cleanup(handle));
      expect(isRuntimeKernelError(error, "CLEANUP_FAILED")).toBe(true);
      expect((error as { retryable: boolean }).retryable).toBe(true);
      expect(fake.workloads()).toHaveLength(1);
      await fake.cleanup(handle);
      expect(fake.workloads()).toEqual([]);
    });

    it('fails every cleanup with `cleanupFails: "always"`, as not retryable (permanent)', async () => {
      const { fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { cleanupFails: "always" } } });
      for (let i = 0; i < 3; i++) {
        const error = await rejection(fake.cleanup(handle));
        expect(isRuntimeKernelError(error, "CLEANUP_FAILED")).toBe(true);
        expect((error as { retryable: boolean }).retryable).toBe(false);
      }
      expect(fake.workloads()).toHaveLength(1);
    });

    it("never puts the env's secrets in its errors", async () => {
      const { fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { cleanupFails: 1, killFails: 1 } } });
      for (const error of [await rejection(fake.kill(handle)), await rejection(fake.cleanup(handle))]) {
        expect(JSON.stringify({ message: (error as Error).message, ...(error as object) })).not.toContain(
          "sk-secret-value",
        );
      }
    });
  });

  describe("controls", () => {
    it("exit() ends the current run with a code, a signal or an OOM kill", async () => {
      const { fake, start, watch, exits } = setup();
      watch(await start("a"));
      watch(await start("b"));
      watch(await start("c"));
      fake.exit("a", { exitCode: 4 });
      fake.exit("b", { signal: "SIGKILL" });
      fake.exit("c", { oomKilled: true });
      expect(exits).toEqual([
        { exitCode: 4 },
        { exitCode: 137, signal: "SIGKILL" },
        { exitCode: 137, oomKilled: true },
      ]);
    });

    it("exit() acts on the newest run of the workload", async () => {
      const { fake, start } = setup();
      const old = await start("w1");
      const current = await start("w1");
      fake.exit("w1", { exitCode: 1 });
      expect(await fake.exitCode(current)).toBe(1);
      expect(await fake.exitCode(old)).toBeNull();
    });

    it("lose() makes the run vanish: lost to watchers and to exitCode", async () => {
      const { fake, start, watch, exits } = setup();
      const handle = await start("w1");
      watch(handle);
      fake.lose("w1");
      expect(exits).toEqual([{ exitCode: null, lost: true }]);
      expect(fake.inspect("w1")).toBeUndefined();
      expect(isRuntimeKernelError(await rejection(fake.exitCode(handle)), "WORKLOAD_LOST")).toBe(true);
    });

    it("refuses controls on a workload it holds no run of", () => {
      const { fake } = setup();
      expect(() => fake.exit("nobody")).toThrow(/no run of "nobody"/);
      expect(() => fake.lose("nobody")).toThrow(/no run of "nobody"/);
      expect(() => fake.print("nobody", "x")).toThrow(/no run of "nobody"/);
    });

    it("counts running runs and runs ever started", async () => {
      const { fake, start } = setup();
      await start("a");
      const b = await start("b");
      fake.exit("a");
      await fake.cleanup(b);
      expect(fake.running).toBe(0);
      expect(fake.started).toBe(2);
      expect(fake.workloads().map((w) => w.handle.workloadId)).toEqual(["a"]);
    });
  });

  describe("discover", () => {
    it("finds the runs of one kernelId, with their labels and exits", async () => {
      const { fake, start } = setup();
      const running = await start("a");
      await start("b");
      fake.exit("b", { exitCode: 2 });
      await start("other", { kernelId: "k2", labels: { [LABELS.kernelId]: "k2" } });
      const found = await fake.discover({ kernelId: "k1" });
      expect(found.map((d) => [d.handle.workloadId, d.exit])).toEqual([
        ["a", null],
        ["b", { exitCode: 2 }],
      ]);
      expect(found[0]?.handle).toEqual(running);
      expect(found[0]?.labels[LABELS.workloadId]).toBe("a");
      expect(await fake.discover({ kernelId: "k3" })).toEqual([]);
    });

    it("does not find runs that were lost or cleaned up", async () => {
      const { fake, start } = setup();
      await start("lost");
      fake.lose("lost");
      await fake.cleanup(await start("cleaned"));
      expect(await fake.discover({ kernelId: "k1" })).toEqual([]);
    });

    it("returns copies: a kernel mutating them changes nothing in the fake", async () => {
      const { fake, start } = setup();
      await start("a");
      const [found] = await fake.discover({ kernelId: "k1" });
      if (found) found.labels[LABELS.workloadId] = "tampered";
      expect((await fake.discover({ kernelId: "k1" }))[0]?.labels[LABELS.workloadId]).toBe("a");
    });
  });

  describe("logs", () => {
    it("returns the lines the workload printed", async () => {
      const { fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { output: ["one", "two"] } } });
      fake.print("w1", "three");
      const entries: LogEntry[] = [];
      for await (const entry of fake.logs(handle)) entries.push(entry);
      expect(entries).toEqual([
        { stream: "stdout", line: "one" },
        { stream: "stdout", line: "two" },
        { stream: "stdout", line: "three" },
      ]);
    });

    it("returns only the last `tail` lines", async () => {
      const { fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { output: ["1", "2", "3", "4"] } } });
      expect(await collect(fake.logs(handle, { tail: 2 }))).toEqual(["3", "4"]);
      expect(await collect(fake.logs(handle, { tail: 0 }))).toEqual([]);
      expect(await collect(fake.logs(handle, { tail: 10 }))).toEqual(["1", "2", "3", "4"]);
    });

    it("follows new lines until the workload exits", async () => {
      const { fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { output: ["a"] } } });
      const following = collect(fake.logs(handle, { follow: true }));
      await Promise.resolve();
      fake.print("w1", "b", "c");
      await new Promise((resolve) => setImmediate(resolve));
      fake.print("w1", "d");
      fake.exit("w1");
      expect(await following).toEqual(["a", "b", "c", "d"]);
    });

    it("follows with a tail: the last lines, then the new ones", async () => {
      const { fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { output: ["1", "2", "3"] } } });
      const following = collect(fake.logs(handle, { follow: true, tail: 1 }));
      await new Promise((resolve) => setImmediate(resolve));
      fake.print("w1", "4");
      fake.exit("w1");
      expect(await following).toEqual(["3", "4"]);
    });

    it("stops following when its signal aborts", async () => {
      const { fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { output: ["a"] } } });
      const controller = new AbortController();
      const following = collect(fake.logs(handle, { follow: true, signal: controller.signal }));
      await new Promise((resolve) => setImmediate(resolve));
      controller.abort();
      expect(await following).toEqual(["a"]);
      expect(fake.inspect("w1")?.exit).toBeNull();
    });

    it("does not share output between runs: each run starts from its behaviour's lines", async () => {
      const { fake, start } = setup();
      const behavior: FakeBehavior = { output: ["boot"] };
      fake.behave("w1", behavior);
      const first = await start("w1");
      fake.print("w1", "first run only");
      const second = await start("w1");
      expect(await collect(fake.logs(first))).toEqual(["boot", "first run only"]);
      expect(await collect(fake.logs(second))).toEqual(["boot"]);
      expect(behavior.output).toEqual(["boot"]);
    });

    it("fails with WORKLOAD_LOST for a run it no longer holds", async () => {
      const { fake, start } = setup();
      const handle = await start("w1");
      await fake.cleanup(handle);
      expect(isRuntimeKernelError(await rejection(collect(fake.logs(handle))), "WORKLOAD_LOST")).toBe(true);
    });
  });

  describe("recordCalls", () => {
    it("records nothing by default", async () => {
      const { fake, start } = setup();
      await fake.kill(await start("w1"));
      expect(fake.calls).toEqual([]);
    });

    it("records every call with its workload and run when on", async () => {
      const { fake, start } = setup({ recordCalls: true });
      const handle = await start("w1");
      await fake.exitCode(handle);
      await fake.terminate(handle, { graceMs: 0 });
      await fake.kill(handle);
      await fake.cleanup(handle);
      await fake.discover({ kernelId: "k1" });
      const { runId } = handle;
      expect(fake.calls).toEqual([
        { method: "start", workloadId: "w1", runId },
        { method: "exitCode", workloadId: "w1", runId },
        { method: "terminate", workloadId: "w1", runId },
        { method: "kill", workloadId: "w1", runId },
        { method: "cleanup", workloadId: "w1", runId },
        { method: "discover" },
      ]);
    });

    it("never records env or secrets", async () => {
      const { fake, start } = setup({ recordCalls: true });
      await start("w1");
      expect(JSON.stringify(fake.calls)).not.toContain("sk-secret-value");
    });
  });

  describe("time", () => {
    it("cancels a run's pending timers when it is cleaned up", async () => {
      const { clock, fake, start } = setup();
      const handle = await start("w1", { runnable: { fake: { exitAfterMs: 1_000, lostAfterMs: 2_000 } } });
      expect(clock.pending).toBe(2);
      await fake.cleanup(handle);
      expect(clock.pending).toBe(0);
    });

    it("cancels a run's other timers once it exits", async () => {
      const { clock, start } = setup();
      await start("w1", { runnable: { fake: { exitAfterMs: 10, lostAfterMs: 2_000 } } });
      await clock.advance(10);
      expect(clock.pending).toBe(0);
    });
  });
});
