/**
 * The Backend conformance suite: the port's contract (docs/backend-port.md, and the TSDoc of
 * `src/backends/backend.ts` it is copied from) as tests that every backend, ours and yours,
 * runs against its real substrate. {@link conformanceSuite} builds the tests once;
 * `describeBackendConformance` (./vitest.ts) registers them with vitest, and
 * {@link runConformance} runs them without registering anything, so that this project can
 * check that the suite fails for backends broken on purpose (test/conformance/mutants).
 * @module
 */
import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { expect } from "vitest";
import {
  type Backend,
  type ExitStatus,
  LABELS,
  type LogEntry,
  type LogOptions,
  type Runnable,
  type StartRequest,
  type WorkloadHandle,
} from "../backends/backend.js";
import { isRuntimeKernelError, type RuntimeKernelErrorCode } from "../errors.js";

/** What the substrate still holds for one run; each entry says what it is, for the failure message. */
export interface Leftovers {
  /** What still runs: processes (the workload's own children included), running containers or Pods. */
  running: string[];
  /** What is still kept: records, files, stopped containers, Pods, Secrets, volumes. */
  stored: string[];
}

/**
 * What the suite needs to know about a backend's substrate. docs/testing.md shows each
 * fixture with an example that does not race.
 */
export interface ConformanceFixtures {
  /** Runs until stopped, and dies of the graceful signal: its exit after `terminate` is 143 (SIGTERM). */
  longRunning: Runnable;
  /** Exits by itself with `code` shortly after start. */
  exitWith(code: number): Runnable;
  /** Ignores the graceful signal; only `kill` stops it. Give `ready` if installing that takes a moment. */
  ignoresTerminate: Runnable;
  /** Cannot start at all (a program or image that does not exist): `start` must reject `START_FAILED`. */
  cannotStart: Runnable;
  /**
   * Starts a child of its own (a background process, a second process in the container) and
   * runs until stopped: the child must be gone after `terminate` and after `kill`. Give
   * `ready` so the suite waits for the child to exist. Omit it only where a workload cannot
   * start processes (an in-memory fake).
   */
  spawnsChild?: Runnable;
  /**
   * What to start (the runnable, and any other fields of the StartRequest) so that the start
   * takes longer than `timeoutMs` and creates something on the way, for example a Pod that no
   * node can schedule: the suite waits until `leftovers` shows it, aborts the start, and
   * expects nothing left. Omit it when the substrate has no slow start.
   */
  slowStart?: Partial<StartRequest> & { runnable: Runnable };
  /** Prints each of `lines` on stdout, then runs until stopped (dying of the graceful signal). Needed when the backend offers `logs`. */
  prints?(lines: string[]): Runnable;
  /**
   * What the substrate still holds for a run, looked up on the substrate itself (not in the
   * backend's memory). For a start that never resolved, `handle` is only
   * `{ workloadId, runId, backend }`: find the run by its ids (labels, names, or the
   * `CONFORMANCE_RUN_ID` variable the suite puts in every run's environment).
   */
  leftovers(handle: WorkloadHandle): Promise<Leftovers>;
  /**
   * Resolves once a just-started workload is ready for the suite's signals: `ignoresTerminate`
   * has installed its trap (a SIGTERM that arrives before that kills it), `spawnsChild` has
   * started its child. Called after every start of those two runnables.
   */
  ready?(handle: WorkloadHandle, runnable: Runnable): Promise<void>;
  /**
   * Removes a running workload behind the backend's back, and resolves once the backend can
   * see it gone: the suite asks `exitCode` once, at once, and expects `WORKLOAD_LOST`.
   */
  vanish?(handle: WorkloadHandle): Promise<void>;
  /** Fields for every StartRequest (`kernelId`, `workspace`, `resources`, extra `env`, ...). */
  request?: Partial<StartRequest>;
  /** How long anything may take on this substrate: an exit, a start, what is dying to go (default 20 s). */
  timeoutMs?: number;
  /** Called once after the suite, after the backend's `close`. */
  teardown?(): Promise<void>;
}

/** The suite's backend, called once before the tests and once more by the recovery test. */
export type BackendFactory = () => Backend | Promise<Backend>;

/** One test of the suite. */
export interface ConformanceCase {
  name: string;
  /** Runs the test; resolves with a reason when the test does not apply to this backend. */
  run(): Promise<string | undefined>;
}

/** The suite, unregistered: what to run before, between and after its cases. */
export interface ConformanceSuite {
  cases: ConformanceCase[];
  /** Creates the backend (the factory's first call). */
  setUp(): Promise<void>;
  /** Kills then cleans up, at once, every run the last case started; rejects if any of that fails. */
  afterEach(): Promise<void>;
  /** Closes the backend, then calls `teardown`. */
  tearDown(): Promise<void>;
  /**
   * How long a case or a hook may take in all: six times the fixtures' `timeoutMs`, which
   * bounds each single wait (a case waits for a few things in turn).
   */
  caseTimeoutMs: number;
}

/** The variable in every run's environment that names the run (see `processesWithEnv`). */
const RUN_ID_ENV = "CONFORMANCE_RUN_ID";

/** Thrown by a case that does not apply. */
class NotApplicable {
  constructor(readonly reason: string) {}
}
const notApplicable = (reason: string): never => {
  throw new NotApplicable(reason);
};

const isCode = (code: RuntimeKernelErrorCode) => (e: unknown) => isRuntimeKernelError(e, code);

/** Builds the suite's cases and hooks for one backend. */
export function conformanceSuite(factory: BackendFactory, fixtures: ConformanceFixtures): ConformanceSuite {
  const timeoutMs = fixtures.timeoutMs ?? 20_000;
  const kernelId = fixtures.request?.kernelId ?? `conformance-${randomUUID().slice(0, 8)}`;
  let backend: Backend;
  let started: WorkloadHandle[] = [];
  let n = 0;

  const request = (runnable: Runnable): StartRequest => {
    const workloadId = `conf-${++n}-${randomUUID().slice(0, 6)}`;
    const runId = randomUUID();
    const { profile = "conformance", owner = "conformance", ...rest } = fixtures.request ?? {};
    return {
      ...rest,
      kernelId,
      workloadId,
      runId,
      profile,
      owner,
      runnable,
      env: { ...rest.env, CONFORMANCE: "1", [RUN_ID_ENV]: runId },
      labels: {
        ...rest.labels,
        [LABELS.kernelId]: kernelId,
        [LABELS.workloadId]: workloadId,
        [LABELS.runId]: runId,
        [LABELS.profile]: profile,
        [LABELS.owner]: owner,
        [LABELS.createdAt]: String(Date.now()),
      },
    };
  };

  const start = async (runnable: Runnable): Promise<WorkloadHandle> => {
    const handle = await backend.start(request(runnable), { signal: new AbortController().signal });
    started.push(handle);
    if (runnable === fixtures.ignoresTerminate || runnable === fixtures.spawnsChild) {
      await within(fixtures.ready?.(handle, runnable), "ready");
    }
    return handle;
  };

  /** Stand-in handle of a start that never resolved: the ids alone. */
  const idsOf = (req: StartRequest): WorkloadHandle => ({
    workloadId: req.workloadId,
    runId: req.runId,
    backend: backend.name,
  });

  /** Bounds a wait by `timeoutMs`, with a message that says what was awaited. */
  async function within<T>(promise: Promise<T> | T, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        promise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${what}: nothing within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Polls `exitCode` until it is not null: the substrate decides when, the suite only bounds it. */
  const exitOf = async (handle: WorkloadHandle, from: Backend = backend): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const code = await from.exitCode(handle);
      if (code !== null) return code;
      if (Date.now() > deadline) throw new Error(`no exit observed within ${timeoutMs} ms`);
      await delay(50);
    }
  };

  /**
   * The status `watchExit` pushes, bounded by `timeoutMs` from now. Fails if `onExit` was
   * called before `watchExit` returned: the caller may not hold the unsubscribe function yet.
   */
  const pushed = async (handle: WorkloadHandle, from: Backend = backend): Promise<ExitStatus> => {
    let returned = false;
    let unsubscribe: (() => void) | undefined;
    const call = new Promise<{ status: ExitStatus; early: boolean }>((resolve) => {
      unsubscribe = from.watchExit?.(handle, (status) => resolve({ status, early: !returned }));
      returned = true;
    });
    try {
      const { status, early } = await within(call, "watchExit never called back");
      expect(early, "watchExit called onExit before it returned").toBe(false);
      return status;
    } finally {
      unsubscribe?.();
    }
  };

  /** The lines of a log stream, read to its end; each line bounded by `timeoutMs`. */
  const read = async (logs: AsyncIterable<LogEntry>, what: string): Promise<string[]> => {
    const lines: string[] = [];
    const iterator = logs[Symbol.asyncIterator]();
    for (;;) {
      const next = await within(iterator.next(), what);
      if (next.done) return lines;
      lines.push(next.value.line);
    }
  };

  /** Whatever still runs of the run must go (what is dying gets `timeoutMs`). */
  const nothingRuns = async (handle: WorkloadHandle, when: string): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let left = await fixtures.leftovers(handle);
    while (left.running.length > 0 && Date.now() < deadline) {
      await delay(50);
      left = await fixtures.leftovers(handle);
    }
    expect(left.running, `${when}: still running`).toEqual([]);
  };

  /** Nothing of the run may be kept, and whatever still runs must go. */
  const nothingLeft = async (handle: WorkloadHandle, when: string): Promise<void> => {
    expect((await fixtures.leftovers(handle)).stored, `${when}: still kept`).toEqual([]);
    await nothingRuns(handle, when);
    expect((await fixtures.leftovers(handle)).stored, `${when}: kept once it stopped`).toEqual([]);
  };

  const lostOrEnds = async (handle: WorkloadHandle, options: LogOptions): Promise<void> => {
    if (!backend.logs) return;
    await read(backend.logs(handle, options), `logs(${JSON.stringify(options)}) of a gone run`).catch(
      (error: unknown) => {
        if (!isRuntimeKernelError(error, "WORKLOAD_LOST")) throw error;
      },
    );
  };

  /** Every method on a run that is gone (lost, or cleaned up), as the contract table says. */
  const answersAsGone = async (handle: WorkloadHandle): Promise<void> => {
    await expect(backend.exitCode(handle)).rejects.toSatisfy(isCode("WORKLOAD_LOST"));
    if (backend.watchExit) expect(await pushed(handle)).toMatchObject({ exitCode: null, lost: true });
    await backend.terminate(handle, { graceMs: 1_000 });
    await backend.kill(handle);
    if (backend.discover) {
      const found = (await backend.discover({ kernelId })).find((f) => f.handle.runId === handle.runId);
      if (found) expect(found.exit, "a gone run that discover still lists").toMatchObject({ lost: true });
    }
    await lostOrEnds(handle, {});
    await lostOrEnds(handle, { follow: true });
  };

  const cases: ConformanceCase[] = [];
  const test = (name: string, run: () => Promise<void>) =>
    cases.push({
      name,
      run: async () => {
        try {
          await run();
          return undefined;
        } catch (error) {
          if (error instanceof NotApplicable) return error.reason;
          throw error;
        }
      },
    });
  const needsWatchExit = () => backend.watchExit ?? notApplicable("the backend does not offer watchExit");

  test("start resolves a plain-JSON handle naming the run and the backend", async () => {
    const req = request(fixtures.longRunning);
    const handle = await backend.start(req, { signal: new AbortController().signal });
    started.push(handle);
    expect(handle.workloadId).toBe(req.workloadId);
    expect(handle.runId).toBe(req.runId);
    expect(handle.backend).toBe(backend.name);
    expect(JSON.parse(JSON.stringify(handle))).toEqual(handle);
  });

  test("exitCode is null while the workload runs", async () => {
    const handle = await start(fixtures.longRunning);
    expect(await backend.exitCode(handle)).toBeNull();
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
    await backend.kill(handle);
    expect(await exitOf(handle)).toBe(137);
  });

  test("terminate ends a workload that honours the graceful signal with 128 + 15 = 143 (SIGTERM)", async () => {
    const handle = await start(fixtures.longRunning);
    const status = backend.watchExit ? pushed(handle) : undefined;
    await backend.terminate(handle, { graceMs: 10_000 });
    expect(await exitOf(handle)).toBe(143);
    if (status) expect(await status).toMatchObject({ exitCode: 143, signal: "SIGTERM" });
  });

  test("kill stops a workload that ignored terminate", async () => {
    const handle = await start(fixtures.ignoresTerminate);
    await backend.terminate(handle, { graceMs: 10_000 });
    expect(await backend.exitCode(handle)).toBeNull();
    await backend.kill(handle);
    expect(await exitOf(handle)).toBe(137);
  });

  test("terminate and kill are idempotent, also after the exit", async () => {
    const handle = await start(fixtures.longRunning);
    await backend.kill(handle);
    await backend.kill(handle);
    await exitOf(handle);
    await backend.terminate(handle, { graceMs: 1_000 });
    await backend.kill(handle);
    expect(await backend.exitCode(handle)).toBe(137);
  });

  test("cleanup after the exit leaves nothing of the run, and is idempotent", async () => {
    const handle = await start(fixtures.exitWith(0));
    await exitOf(handle);
    await backend.cleanup(handle);
    await nothingLeft(handle, "after cleanup");
    await backend.cleanup(handle);
  });

  test("cleanup of a running workload, and of one still dying from kill, leaves nothing", async () => {
    const running = await start(fixtures.spawnsChild ?? fixtures.longRunning);
    await backend.cleanup(running);
    await nothingLeft(running, "after cleanup of a running workload");
    const dying = await start(fixtures.spawnsChild ?? fixtures.longRunning);
    await backend.kill(dying);
    await backend.cleanup(dying);
    await nothingLeft(dying, "after kill and cleanup at once");
  });

  test("a handle survives a JSON round-trip and still drives the workload", async () => {
    const handle = await start(fixtures.longRunning);
    const copy = JSON.parse(JSON.stringify(handle)) as WorkloadHandle;
    expect(await backend.exitCode(copy)).toBeNull();
    await backend.kill(copy);
    expect(await exitOf(copy)).toBe(137);
    await backend.cleanup(copy);
  });

  test("a runnable that cannot start rejects with START_FAILED and leaves nothing", async () => {
    const req = request(fixtures.cannotStart);
    const attempt = backend.start(req, { signal: new AbortController().signal });
    const handle = await within(attempt, "start of cannotStart").catch((error: unknown) => {
      expect(error).toSatisfy(isCode("START_FAILED"));
    });
    if (handle) started.push(handle);
    expect(handle, "start of cannotStart resolved").toBeUndefined();
    await nothingLeft(idsOf(req), "after a failed start");
  });

  test("a start whose signal is already aborted rejects with START_ABORTED and leaves nothing", async () => {
    const controller = new AbortController();
    controller.abort(new Error("caller gave up"));
    const req = request(fixtures.longRunning);
    await expect(backend.start(req, { signal: controller.signal })).rejects.toSatisfy(
      isCode("START_ABORTED"),
    );
    await nothingLeft(idsOf(req), "after an aborted start");
  });

  test("a start aborted while under way rejects with START_ABORTED and leaves nothing", async () => {
    const controller = new AbortController();
    const req = request(fixtures.longRunning);
    const attempt = backend.start(req, { signal: controller.signal });
    attempt.then(
      (handle) => started.push(handle),
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
    const attempt = backend.start(req, { signal: controller.signal });
    attempt
      .then(
        (handle) => started.push(handle),
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

  test("the workload's own child is gone once terminate has ended it", async () => {
    const handle = await start(fixtures.spawnsChild ?? notApplicable("no spawnsChild fixture"));
    await backend.terminate(handle, { graceMs: 10_000 });
    expect(await exitOf(handle)).toBe(143);
    await nothingRuns(handle, "after terminate");
  });

  test("the workload's own child is gone once kill has ended it", async () => {
    const handle = await start(fixtures.spawnsChild ?? notApplicable("no spawnsChild fixture"));
    await backend.kill(handle);
    expect(await exitOf(handle)).toBe(137);
    await nothingRuns(handle, "after kill");
  });

  test("every method on a cleaned-up run answers as the contract table says", async () => {
    const handle = await start(fixtures.exitWith(0));
    await exitOf(handle);
    await backend.cleanup(handle);
    await answersAsGone(handle);
    await backend.cleanup(handle);
    await nothingLeft(handle, "after cleanup");
  });

  test("every method on a run lost behind the backend's back answers as the contract table says", async () => {
    const vanish = fixtures.vanish ?? notApplicable("no vanish fixture");
    const handle = await start(fixtures.longRunning);
    await vanish(handle);
    await answersAsGone(handle);
    await backend.cleanup(handle);
    await backend.cleanup(handle);
    await nothingLeft(handle, "after cleanup of a lost run");
  });

  test("watchExit pushes a kill's exit with the signal's name", async () => {
    needsWatchExit();
    const handle = await start(fixtures.longRunning);
    const status = pushed(handle);
    await backend.kill(handle);
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

  test("discover finds this kernel's workloads by label with their state", async () => {
    if (!backend.discover) notApplicable("the backend does not offer discover");
    const running = await start(fixtures.longRunning);
    const exited = await start(fixtures.exitWith(4));
    await exitOf(exited);
    const found = (await backend.discover?.({ kernelId })) ?? [];
    const byRun = new Map(found.map((f) => [f.handle.runId, f]));
    expect(byRun.get(running.runId)?.exit).toBeNull();
    expect(byRun.get(running.runId)?.labels[LABELS.workloadId]).toBe(running.workloadId);
    expect(byRun.get(exited.runId)?.exit?.exitCode).toBe(4);
    expect(await backend.discover?.({ kernelId: `${kernelId}-other` })).toEqual([]);
  });

  test("a second backend instance drives the first one's runs, and its close leaves them running", async () => {
    const running = await start(fixtures.longRunning);
    const exited = await start(fixtures.exitWith(5));
    const alive = await start(fixtures.longRunning);
    await exitOf(exited);
    const second = await factory();
    let open = second !== backend;
    try {
      // Copies, as a restarted kernel would have read them back.
      const copy = (h: WorkloadHandle): WorkloadHandle => JSON.parse(JSON.stringify(h));
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
      for (const h of [r, e]) {
        await second.cleanup(h);
        await nothingLeft(h, "after cleanup by the second instance");
      }
      if (open) {
        open = false;
        await second.close?.();
        // Still running: it dies of terminate, not of a kill that close sent.
        await backend.terminate(alive, { graceMs: 10_000 });
        expect(await exitOf(alive), "the exit of a run terminated after the second instance closed").toBe(
          143,
        );
      }
    } finally {
      if (open) await second.close?.();
    }
  });

  test("logs yields what was written, the last `tail` lines, and follows a running workload until it ends", async () => {
    if (!backend.logs) notApplicable("the backend does not offer logs");
    const prints = fixtures.prints ?? notApplicable("the backend offers logs: give the prints fixture");
    const logs = backend.logs?.bind(backend) as NonNullable<Backend["logs"]>;
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
    await backend.terminate(handle, { graceMs: 10_000 });
    expect(await untilEnd).toEqual(lines);
  });

  return {
    cases,
    caseTimeoutMs: timeoutMs * 6,
    setUp: async () => {
      backend = await factory();
    },
    afterEach: async () => {
      const runs = started;
      started = [];
      const failures = (
        await Promise.allSettled(runs.map((h) => backend.kill(h).then(() => backend.cleanup(h))))
      ).flatMap((result, i) =>
        result.status === "rejected" ? [`${runs[i]?.workloadId}: ${String(result.reason)}`] : [],
      );
      if (failures.length > 0) {
        throw new Error(`kill then cleanup of the test's runs failed:\n${failures.join("\n")}`);
      }
    },
    tearDown: async () => {
      try {
        await backend?.close?.();
      } finally {
        await fixtures.teardown?.();
      }
    },
  };
}

/** How one case ended, in {@link runConformance}. */
export interface CaseResult {
  name: string;
  outcome: "passed" | "failed" | "skipped";
  /** Why it failed, or why it was skipped. */
  reason?: string;
}

/**
 * Runs the whole suite without a test runner's registration, in order, with the same hooks
 * as `describeBackendConformance`, and reports each case. A case that fails, or whose
 * `afterEach` fails, is `failed`; a case that never settles fails after `caseTimeoutMs`.
 */
export async function runConformance(
  factory: BackendFactory,
  fixtures: ConformanceFixtures,
): Promise<CaseResult[]> {
  const suite = conformanceSuite(factory, fixtures);
  const results: CaseResult[] = [];
  await suite.setUp();
  try {
    for (const { name, run } of suite.cases) {
      let result: CaseResult;
      let timer: NodeJS.Timeout | undefined;
      try {
        const skipped = await Promise.race([
          run(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error("the case never settled")), suite.caseTimeoutMs);
          }),
        ]);
        result =
          skipped === undefined ? { name, outcome: "passed" } : { name, outcome: "skipped", reason: skipped };
      } catch (error) {
        result = { name, outcome: "failed", reason: String(error) };
      } finally {
        clearTimeout(timer);
      }
      try {
        await suite.afterEach();
      } catch (error) {
        if (result.outcome !== "failed") result = { name, outcome: "failed", reason: String(error) };
      }
      results.push(result);
    }
  } finally {
    await suite.tearDown();
  }
  return results;
}
