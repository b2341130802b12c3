/**
 * The conformance suite's cases, one function per part of the port's contract, in the order
 * they run. They only register tests on a {@link ConformanceHarness}; the
 * hooks and the running are conformance.ts's.
 * @module
 */
import { expect } from "vitest";
import { type Backend, LABELS, type WorkloadHandle } from "../backends/backend.js";
import { type ConformanceHarness, delay, isCode, notApplicable } from "./conformance-harness.js";

/** Registers every case of the suite on `h`, in order. */
export function registerCases(h: ConformanceHarness): void {
  runCases(h);
  cleanupCases(h);
  startFailureCases(h);
  goneCases(h);
  watchExitCases(h);
  recoveryCases(h);
  logsCases(h);
}

/** The run's life: start, its exit codes, terminate and kill. */
function runCases(h: ConformanceHarness): void {
  const { test, request, start, exitOf, pushed, fixtures } = h;
  test("start resolves a plain-JSON handle naming the run and the backend", async () => {
    const req = request(fixtures.longRunning);
    const handle = await h.backend.start(req, { signal: new AbortController().signal });
    h.started.push(handle);
    expect(handle.workloadId).toBe(req.workloadId);
    expect(handle.runId).toBe(req.runId);
    expect(handle.backend).toBe(h.backend.name);
    expect(JSON.parse(JSON.stringify(handle))).toEqual(handle);
  });

  test("exitCode is null while the workload runs", async () => {
    const handle = await start(fixtures.longRunning);
    expect(await h.backend.exitCode(handle)).toBeNull();
  });

  test("reports exit code 0 for a workload that succeeds", async () => {
    const handle = await start(fixtures.exitWith(0));
    expect(await exitOf(handle)).toBe(0);
  });

  test("reports the real non-zero exit code", async () => {
    const handle = await start(fixtures.exitWith(3));
    expect(await exitOf(handle)).toBe(3);
  });

  test("kill ends the workload with 128 + 9 = 137", async () => {
    const handle = await start(fixtures.longRunning);
    await h.backend.kill(handle);
    expect(await exitOf(handle)).toBe(137);
  });

  test("terminate ends a workload that honours the graceful signal with 128 + 15 = 143 (SIGTERM)", async () => {
    const handle = await start(fixtures.longRunning);
    const status = h.backend.watchExit ? pushed(handle) : undefined;
    await h.backend.terminate(handle, { graceMs: 10_000 });
    expect(await exitOf(handle)).toBe(143);
    if (status) expect(await status).toMatchObject({ exitCode: 143, signal: "SIGTERM" });
  });

  test("kill stops a workload that ignored terminate", async () => {
    const handle = await start(fixtures.ignoresTerminate);
    await h.backend.terminate(handle, { graceMs: 10_000 });
    expect(await h.backend.exitCode(handle)).toBeNull();
    await h.backend.kill(handle);
    expect(await exitOf(handle)).toBe(137);
  });

  test("terminate and kill are idempotent, also after the exit", async () => {
    const handle = await start(fixtures.longRunning);
    await h.backend.kill(handle);
    await h.backend.kill(handle);
    await exitOf(handle);
    await h.backend.terminate(handle, { graceMs: 1_000 });
    await h.backend.kill(handle);
    expect(await h.backend.exitCode(handle)).toBe(137);
  });
}

/** Cleanup, and handles that outlive the process that made them. */
function cleanupCases(h: ConformanceHarness): void {
  const { test, start, exitOf, nothingLeft, fixtures } = h;
  test("cleanup after the exit leaves nothing of the run, and is idempotent", async () => {
    const handle = await start(fixtures.exitWith(0));
    await exitOf(handle);
    await h.backend.cleanup(handle);
    await nothingLeft(handle, "after cleanup");
    await h.backend.cleanup(handle);
  });

  test("cleanup of a running workload, and of one still dying from kill, leaves nothing", async () => {
    const running = await start(fixtures.spawnsChild ?? fixtures.longRunning);
    await h.backend.cleanup(running);
    await nothingLeft(running, "after cleanup of a running workload");
    const dying = await start(fixtures.spawnsChild ?? fixtures.longRunning);
    await h.backend.kill(dying);
    await h.backend.cleanup(dying);
    await nothingLeft(dying, "after kill and cleanup at once");
  });

  test("a handle survives a JSON round-trip and still drives the workload", async () => {
    const handle = await start(fixtures.longRunning);
    const copy = JSON.parse(JSON.stringify(handle)) as WorkloadHandle;
    expect(await h.backend.exitCode(copy)).toBeNull();
    await h.backend.kill(copy);
    expect(await exitOf(copy)).toBe(137);
    await h.backend.cleanup(copy);
  });
}

/** Starts that fail or are aborted: each rejects with its code and leaves nothing. */
function startFailureCases(h: ConformanceHarness): void {
  const { test, request, idsOf, within, nothingLeft, fixtures, timeoutMs } = h;
  test("a runnable that cannot start rejects with START_FAILED and leaves nothing", async () => {
    const req = request(fixtures.cannotStart);
    const attempt = h.backend.start(req, { signal: new AbortController().signal });
    const handle = await within(attempt, "start of cannotStart").catch((error: unknown) => {
      expect(error).toSatisfy(isCode("START_FAILED"));
    });
    if (handle) h.started.push(handle);
    expect(handle, "start of cannotStart resolved").toBeUndefined();
    await nothingLeft(idsOf(req), "after a failed start");
  });

  test("a start whose signal is already aborted rejects with START_ABORTED and leaves nothing", async () => {
    const controller = new AbortController();
    controller.abort(new Error("caller gave up"));
    const req = request(fixtures.longRunning);
    await expect(h.backend.start(req, { signal: controller.signal })).rejects.toSatisfy(
      isCode("START_ABORTED"),
    );
    await nothingLeft(idsOf(req), "after an aborted start");
  });

  test("a start aborted while under way rejects with START_ABORTED and leaves nothing", async () => {
    const controller = new AbortController();
    const req = request(fixtures.longRunning);
    const attempt = h.backend.start(req, { signal: controller.signal });
    attempt.then(
      (handle) => h.started.push(handle),
      () => {},
    );
    controller.abort(new Error("caller gave up"));
    // A promise already settled wins the race: then the start was over before the abort came.
    const PENDING = Symbol("pending");
    const first = await Promise.race([attempt, Promise.resolve(PENDING)]).catch(() => PENDING);
    if (first !== PENDING) notApplicable("start settled before the abort could arrive");
    await expect(within(attempt, "aborted start")).rejects.toSatisfy(isCode("START_ABORTED"));
    await nothingLeft(idsOf(req), "after a start aborted while under way");
  });

  test("a slow start aborted once it created something rejects with START_ABORTED and leaves nothing", async () => {
    const slow = fixtures.slowStart ?? notApplicable("no slowStart fixture");
    const controller = new AbortController();
    const req = { ...request(slow.runnable), ...slow, runnable: slow.runnable };
    let settled = false;
    const attempt = h.backend.start(req, { signal: controller.signal });
    attempt
      .then(
        (handle) => h.started.push(handle),
        () => {},
      )
      .finally(() => {
        settled = true;
      });
    const deadline = Date.now() + timeoutMs;
    while (!settled) {
      const left = await fixtures.leftovers(idsOf(req));
      if (left.running.length + left.stored.length > 0) break;
      if (Date.now() > deadline) throw new Error(`slowStart created nothing within ${timeoutMs} ms`);
      await delay(50);
    }
    expect(settled, "slowStart's start settled before the abort: give a slower one").toBe(false);
    controller.abort(new Error("caller gave up"));
    await expect(within(attempt, "aborted start")).rejects.toSatisfy(isCode("START_ABORTED"));
    await nothingLeft(idsOf(req), "after a slow start was aborted");
  });
}

/** What goes with a run: its own children, and every method on a run that is gone. */
function goneCases(h: ConformanceHarness): void {
  const { test, start, exitOf, nothingRuns, nothingLeft, answersAsGone, fixtures } = h;
  test("the workload's own child is gone once terminate has ended it", async () => {
    const handle = await start(fixtures.spawnsChild ?? notApplicable("no spawnsChild fixture"));
    await h.backend.terminate(handle, { graceMs: 10_000 });
    expect(await exitOf(handle)).toBe(143);
    await nothingRuns(handle, "after terminate");
  });

  test("the workload's own child is gone once kill has ended it", async () => {
    const handle = await start(fixtures.spawnsChild ?? notApplicable("no spawnsChild fixture"));
    await h.backend.kill(handle);
    expect(await exitOf(handle)).toBe(137);
    await nothingRuns(handle, "after kill");
  });

  test("every method on a cleaned-up run answers as the contract table says", async () => {
    const handle = await start(fixtures.exitWith(0));
    await exitOf(handle);
    await h.backend.cleanup(handle);
    await answersAsGone(handle);
    await h.backend.cleanup(handle);
    await nothingLeft(handle, "after cleanup");
  });

  test("every method on a run lost behind the backend's back answers as the contract table says", async () => {
    const vanish = fixtures.vanish ?? notApplicable("no vanish fixture");
    const handle = await start(fixtures.longRunning);
    await vanish(handle);
    await answersAsGone(handle);
    await h.backend.cleanup(handle);
    await h.backend.cleanup(handle);
    await nothingLeft(handle, "after cleanup of a lost run");
  });
}

/** `watchExit`: the exits it pushes. */
function watchExitCases(h: ConformanceHarness): void {
  const { test, start, exitOf, pushed, needsWatchExit, fixtures } = h;
  test("watchExit pushes a kill's exit with the signal's name", async () => {
    needsWatchExit();
    const handle = await start(fixtures.longRunning);
    const status = pushed(handle);
    await h.backend.kill(handle);
    expect(await status).toMatchObject({ exitCode: 137, signal: "SIGKILL" });
  });

  test("watchExit reports a non-zero exit", async () => {
    needsWatchExit();
    const handle = await start(fixtures.exitWith(3));
    expect(await pushed(handle)).toMatchObject({ exitCode: 3 });
  });

  test("watchExit on a run that already exited calls back with its exit", async () => {
    needsWatchExit();
    const handle = await start(fixtures.exitWith(3));
    await exitOf(handle);
    expect(await pushed(handle)).toMatchObject({ exitCode: 3 });
  });
}

/** Recovery: `discover`, and a second backend instance over the same substrate. */
function recoveryCases(h: ConformanceHarness): void {
  const { test, start, exitOf, pushed, nothingLeft, fixtures, kernelId, factory } = h;
  test("discover finds this kernel's workloads by label with their state", async () => {
    if (!h.backend.discover) notApplicable("the backend does not offer discover");
    const running = await start(fixtures.longRunning);
    const exited = await start(fixtures.exitWith(4));
    await exitOf(exited);
    const found = (await h.backend.discover?.({ kernelId })) ?? [];
    const byRun = new Map(found.map((f) => [f.handle.runId, f]));
    expect(byRun.get(running.runId)?.exit).toBeNull();
    expect(byRun.get(running.runId)?.labels[LABELS.workloadId]).toBe(running.workloadId);
    expect(byRun.get(exited.runId)?.exit?.exitCode).toBe(4);
    expect(await h.backend.discover?.({ kernelId: `${kernelId}-other` })).toEqual([]);
  });

  test("a second backend instance drives the first one's runs, and its close leaves them running", async () => {
    const running = await start(fixtures.longRunning);
    const exited = await start(fixtures.exitWith(5));
    const alive = await start(fixtures.longRunning);
    await exitOf(exited);
    const second = await factory();
    let open = second !== h.backend;
    try {
      // Copies, as a restarted kernel would have read them back.
      const copy = (handle: WorkloadHandle): WorkloadHandle => JSON.parse(JSON.stringify(handle));
      const [r, e, a] = [copy(running), copy(exited), copy(alive)];
      expect(await second.exitCode(r)).toBeNull();
      expect(await second.exitCode(e)).toBe(5);
      if (second.discover) {
        const found = new Map((await second.discover({ kernelId })).map((f) => [f.handle.runId, f]));
        expect(found.get(running.runId)?.exit).toBeNull();
        expect(found.get(exited.runId)?.exit?.exitCode).toBe(5);
      }
      if (second.watchExit) {
        expect(await pushed(e, second)).toMatchObject({ exitCode: 5 });
        const status = pushed(r, second);
        await second.kill(r);
        expect(await status).toMatchObject({ exitCode: 137, signal: "SIGKILL" });
        second.watchExit(a, () => {});
      } else {
        await second.kill(r);
        expect(await exitOf(r, second)).toBe(137);
      }
      expect(await second.exitCode(a)).toBeNull();
      for (const run of [r, e]) {
        await second.cleanup(run);
        await nothingLeft(run, "after cleanup by the second instance");
      }
      if (open) {
        open = false;
        await second.close?.();
        // Still running: it dies of terminate, not of a kill that close sent.
        await h.backend.terminate(alive, { graceMs: 10_000 });
        expect(await exitOf(alive), "the exit of a run terminated after the second instance closed").toBe(
          143,
        );
      }
    } finally {
      if (open) await second.close?.();
    }
  });
}

/** `logs`: what was written, `tail`, and `follow`. */
function logsCases(h: ConformanceHarness): void {
  const { test, start, within, read, fixtures } = h;
  test("logs yields what was written, the last `tail` lines, and follows a running workload until it ends", async () => {
    if (!h.backend.logs) notApplicable("the backend does not offer logs");
    const prints = fixtures.prints ?? notApplicable("the backend offers logs: give the prints fixture");
    const logs = h.backend.logs?.bind(h.backend) as NonNullable<Backend["logs"]>;
    const lines = ["one", "two", "three"];
    const handle = await start(prints(lines));
    const controller = new AbortController();
    const following = logs(handle, { follow: true, signal: controller.signal })[Symbol.asyncIterator]();
    const first: string[] = [];
    while (first.length < lines.length) {
      const next = await within(following.next(), "logs({ follow }) of a running workload");
      if (next.done) break;
      first.push(next.value.line);
    }
    expect(first).toEqual(lines);
    expect(await read(logs(handle, {}), "logs()")).toEqual(lines);
    expect(await read(logs(handle, { tail: 2 }), "logs({ tail: 2 })")).toEqual(lines.slice(1));
    controller.abort();
    expect((await within(following.next(), "logs({ follow }) after its signal aborted")).done).toBe(true);
    const untilEnd = read(logs(handle, { follow: true }), "logs({ follow }) after terminate");
    await h.backend.terminate(handle, { graceMs: 10_000 });
    expect(await untilEnd).toEqual(lines);
  });
}
