/**
 * The conformance suite's tools: requests and starts the suite cleans up after, waits bounded
 * by the fixtures' `timeoutMs` that say what they waited for, and the checks of what a run
 * leaves on its substrate. It holds no test of its own (those are conformance-cases.ts's).
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
import type { BackendFactory, ConformanceCase, ConformanceFixtures } from "./conformance.js";

export { delay };

/** The variable in every run's environment that names the run (see `processesWithEnv`). */
const RUN_ID_ENV = "CONFORMANCE_RUN_ID";

/** Thrown by a case that does not apply. */
class NotApplicable {
  constructor(readonly reason: string) {}
}

/** Ends a case as not applicable to this backend, for `reason`. */
export const notApplicable = (reason: string): never => {
  throw new NotApplicable(reason);
};

/** Whether an error is a runtime-kernel error of `code`. */
export const isCode = (code: RuntimeKernelErrorCode) => (e: unknown) => isRuntimeKernelError(e, code);

/**
 * One backend under test and the suite's tools for it. Its tools are bound (a case may take
 * them out of it); `backend` is set by the suite's `setUp`, `started` emptied after each case.
 */
export class ConformanceHarness {
  readonly factory: BackendFactory;
  readonly fixtures: ConformanceFixtures;
  readonly timeoutMs: number;
  readonly kernelId: string;
  readonly cases: ConformanceCase[] = [];
  /** The backend every case uses (the factory's first call). */
  backend!: Backend;
  /** The runs the current case started, killed and cleaned up after it. */
  started: WorkloadHandle[] = [];
  #n = 0;

  constructor(factory: BackendFactory, fixtures: ConformanceFixtures) {
    this.factory = factory;
    this.fixtures = fixtures;
    this.timeoutMs = fixtures.timeoutMs ?? 20_000;
    this.kernelId = fixtures.request?.kernelId ?? `conformance-${randomUUID().slice(0, 8)}`;
  }

  /** Adds a case; one that calls {@link notApplicable} reports the reason instead of passing. */
  readonly test = (name: string, run: () => Promise<void>): void => {
    this.cases.push({
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
  };

  /** A request for a new run of `runnable`, with the fixtures' fields and the kernel's labels. */
  readonly request = (runnable: Runnable): StartRequest => {
    const workloadId = `conf-${++this.#n}-${randomUUID().slice(0, 6)}`;
    const runId = randomUUID();
    const { profile = "conformance", owner = "conformance", ...rest } = this.fixtures.request ?? {};
    const kernelId = this.kernelId;
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

  /** Starts `runnable` (cleaned up after the case), ready for the suite's signals. */
  readonly start = async (runnable: Runnable): Promise<WorkloadHandle> => {
    const { fixtures } = this;
    const handle = await this.backend.start(this.request(runnable), { signal: new AbortController().signal });
    this.started.push(handle);
    if (runnable === fixtures.ignoresTerminate || runnable === fixtures.spawnsChild) {
      await this.within(fixtures.ready?.(handle, runnable), "ready");
    }
    return handle;
  };

  /** Stand-in handle of a start that never resolved: the ids alone. */
  readonly idsOf = (req: StartRequest): WorkloadHandle => ({
    workloadId: req.workloadId,
    runId: req.runId,
    backend: this.backend.name,
  });

  /** Bounds a wait by `timeoutMs`, with a message that says what was awaited. */
  readonly within = async <T>(promise: Promise<T> | T, what: string): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        promise,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`${what}: nothing within ${this.timeoutMs} ms`)),
            this.timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };

  /** Polls `exitCode` until it is not null: the substrate decides when, the suite only bounds it. */
  readonly exitOf = async (handle: WorkloadHandle, from: Backend = this.backend): Promise<number> => {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const code = await from.exitCode(handle);
      if (code !== null) return code;
      if (Date.now() > deadline) throw new Error(`no exit observed within ${this.timeoutMs} ms`);
      await delay(50);
    }
  };

  /**
   * The status `watchExit` pushes, bounded by `timeoutMs` from now. Fails if `onExit` was
   * called before `watchExit` returned: the caller may not hold the unsubscribe function yet.
   */
  readonly pushed = async (handle: WorkloadHandle, from: Backend = this.backend): Promise<ExitStatus> => {
    let returned = false;
    let unsubscribe: (() => void) | undefined;
    const call = new Promise<{ status: ExitStatus; early: boolean }>((resolve) => {
      unsubscribe = from.watchExit?.(handle, (status) => resolve({ status, early: !returned }));
      returned = true;
    });
    try {
      const { status, early } = await this.within(call, "watchExit never called back");
      expect(early, "watchExit called onExit before it returned").toBe(false);
      return status;
    } finally {
      unsubscribe?.();
    }
  };

  /** The lines of a log stream, read to its end; each line bounded by `timeoutMs`. */
  readonly read = async (logs: AsyncIterable<LogEntry>, what: string): Promise<string[]> => {
    const lines: string[] = [];
    const iterator = logs[Symbol.asyncIterator]();
    for (;;) {
      const next = await this.within(iterator.next(), what);
      if (next.done) return lines;
      lines.push(next.value.line);
    }
  };

  /** Whatever still runs of the run must go (what is dying gets `timeoutMs`). */
  readonly nothingRuns = async (handle: WorkloadHandle, when: string): Promise<void> => {
    const deadline = Date.now() + this.timeoutMs;
    let left = await this.fixtures.leftovers(handle);
    while (left.running.length > 0 && Date.now() < deadline) {
      await delay(50);
      left = await this.fixtures.leftovers(handle);
    }
    expect(left.running, `${when}: still running`).toEqual([]);
  };

  /** Nothing of the run may be kept, and whatever still runs must go. */
  readonly nothingLeft = async (handle: WorkloadHandle, when: string): Promise<void> => {
    expect((await this.fixtures.leftovers(handle)).stored, `${when}: still kept`).toEqual([]);
    await this.nothingRuns(handle, when);
    expect((await this.fixtures.leftovers(handle)).stored, `${when}: kept once it stopped`).toEqual([]);
  };

  /** Every method on a run that is gone (lost, or cleaned up), as the contract table says. */
  readonly answersAsGone = async (handle: WorkloadHandle): Promise<void> => {
    const { backend } = this;
    await expect(backend.exitCode(handle)).rejects.toSatisfy(isCode("WORKLOAD_LOST"));
    if (backend.watchExit) expect(await this.pushed(handle)).toMatchObject({ exitCode: null, lost: true });
    await backend.terminate(handle, { graceMs: 1_000 });
    await backend.kill(handle);
    if (backend.discover) {
      const found = (await backend.discover({ kernelId: this.kernelId })).find(
        (f) => f.handle.runId === handle.runId,
      );
      if (found) expect(found.exit, "a gone run that discover still lists").toMatchObject({ lost: true });
    }
    await this.#lostOrEnds(handle, {});
    await this.#lostOrEnds(handle, { follow: true });
  };

  /** Ends the case as not applicable when the backend does not offer `watchExit`. */
  readonly needsWatchExit = (): void => {
    if (!this.backend.watchExit) notApplicable("the backend does not offer watchExit");
  };

  async #lostOrEnds(handle: WorkloadHandle, options: LogOptions): Promise<void> {
    if (!this.backend.logs) return;
    await this.read(
      this.backend.logs(handle, options),
      `logs(${JSON.stringify(options)}) of a gone run`,
    ).catch((error: unknown) => {
      if (!isRuntimeKernelError(error, "WORKLOAD_LOST")) throw error;
    });
  }
}
