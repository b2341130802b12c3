/**
 * The Backend conformance suite: the port's contract (docs/backend-port.md, and the TSDoc of
 * `src/backends/backend.ts` it is copied from) as tests that every backend, ours and yours,
 * runs against its real substrate. {@link conformanceSuite} builds the tests once;
 * `describeBackendConformance` (./vitest.ts) registers them with vitest, and
 * {@link runConformance} runs them without registering anything, so that this project can
 * check that the suite fails for backends broken on purpose (test/conformance/mutants).
 * @module
 */
import type { Backend, Runnable, StartRequest, WorkloadHandle } from "../backends/backend.js";
import { registerCases } from "./conformance-cases.js";
import { ConformanceHarness } from "./conformance-harness.js";

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

/** Builds the suite's cases and hooks for one backend. */
export function conformanceSuite(factory: BackendFactory, fixtures: ConformanceFixtures): ConformanceSuite {
  const h = new ConformanceHarness(factory, fixtures);
  registerCases(h);
  return {
    cases: h.cases,
    caseTimeoutMs: h.timeoutMs * 6,
    setUp: async () => {
      h.backend = await factory();
    },
    afterEach: async () => {
      const { backend } = h;
      const runs = h.started;
      h.started = [];
      const failures = (
        await Promise.allSettled(runs.map((run) => backend.kill(run).then(() => backend.cleanup(run))))
      ).flatMap((result, i) =>
        result.status === "rejected" ? [`${runs[i]?.workloadId}: ${String(result.reason)}`] : [],
      );
      if (failures.length > 0) {
        throw new Error(`kill then cleanup of the test's runs failed:\n${failures.join("\n")}`);
      }
    },
    tearDown: async () => {
      try {
        await h.backend?.close?.();
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
