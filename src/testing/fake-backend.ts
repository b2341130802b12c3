/**
 * `FakeBackend`: an in-memory, deterministic Backend for host applications' test suites.
 * It behaves like a real substrate (exits, signals, terminate and kill, cleanup, recovery,
 * logs) with faults injected per workload or per runnable, on an injectable clock.
 * @module
 */
import {
  type Backend,
  type DiscoveredWorkload,
  type ExitStatus,
  exitCodeForSignal,
  LABELS,
  type LogEntry,
  type LogOptions,
  type StartRequest,
  type WorkloadHandle,
} from "../backends/backend.js";
import { ExitRegistry } from "../backends/exit-registry.js";
import { type Clock, systemClock } from "../clock.js";
import {
  CleanupFailedError,
  RuntimeKernelError,
  StartAbortedError,
  StartFailedError,
  WorkloadLostError,
} from "../errors.js";

/**
 * How a fake workload behaves. Set it per workload with {@link FakeBackend.behave}, per
 * runnable with `runnable.fake`, or for everything with the `defaults` option.
 */
export interface FakeBehavior {
  /** `start` resolves after this long (on the backend's clock). Default 0. */
  startDelayMs?: number;
  /** `start` rejects with this (a string becomes a `START_FAILED` error). */
  startError?: string | Error;
  /** The workload exits by itself after this long. Absent: it runs until stopped. */
  exitAfterMs?: number;
  /** The code of that exit (default 0). */
  exitCode?: number;
  /** That exit is a death by this signal instead (code 128 + n). */
  signal?: string;
  /** That exit is an OOM kill (code 137). */
  oomKilled?: boolean;
  /** The workload vanishes after this long: `lost`. */
  lostAfterMs?: number;
  /** SIGTERM is ignored: only `kill` stops it. */
  ignoreTerminate?: boolean;
  /** After `terminate`, it exits after this long (default 0), with code 143 (SIGTERM). */
  terminateDelayMs?: number;
  /** `kill` fails this many times (or always). */
  killFails?: number | "always";
  /** `cleanup` fails this many times (transient), or always (permanent). */
  cleanupFails?: number | "always";
  /** Lines the workload prints, returned by `logs`. */
  output?: string[];
}

/** The handle of a fake run. */
export interface FakeHandle extends WorkloadHandle {
  backend: "fake";
  /** A per-backend sequence number, so handles of two runs never compare equal. */
  serial: number;
}

/** What the fake knows about one run; returned by {@link FakeBackend.inspect}. */
export interface FakeWorkload {
  handle: FakeHandle;
  /** The start request, including its env (credentials included: this is a test double). */
  request: StartRequest;
  /** `null` while it runs. */
  exit: ExitStatus | null;
  /** Signals delivered, in order. */
  signals: string[];
  cleanedUp: boolean;
}

interface Instance extends FakeWorkload {
  behavior: FakeBehavior;
  timers: unknown[];
  killFailures: number;
  cleanupFailures: number;
  logWaiters: Set<() => void> | undefined;
}

/** Options of {@link FakeBackend}. */
export interface FakeBackendOptions {
  /** The clock for delays; pass the kernel's `ManualClock` for deterministic tests. */
  clock?: Clock;
  /** Behaviour of workloads with none of their own. */
  defaults?: FakeBehavior;
  /** Offer the push capability `watchExit` (default true); false makes the kernel poll `exitCode`. */
  watchExit?: boolean;
  /** Record every call in {@link FakeBackend.calls} (default false: a long test suite would accumulate them). */
  recordCalls?: boolean;
}

/** One recorded call to the fake. */
export interface FakeCall {
  method: "start" | "exitCode" | "terminate" | "kill" | "cleanup" | "discover" | "logs";
  workloadId?: string;
  runId?: string;
}

/**
 * An in-memory Backend with fault injection.
 *
 * @example
 * ```ts
 * const fake = new FakeBackend();
 * fake.behave("flaky", { exitAfterMs: 50, exitCode: 3 });
 * const kernel = createRuntimeKernel({ backend: fake, profiles: { agent: { runnable: { command: ["agent"] } } } });
 * await kernel.create({ workloadId: "flaky", profile: "agent" });
 * const { exitCode } = await kernel.waitFor("flaky", "stopped"); // 3
 * ```
 */
export class FakeBackend implements Backend<FakeHandle> {
  readonly name = "fake";
  /** Every call made, when `recordCalls` is on. */
  readonly calls: FakeCall[] = [];
  readonly #clock: Clock;
  readonly #defaults: FakeBehavior;
  readonly #record: boolean;
  readonly #byRun = new Map<string, Instance>();
  readonly #behaviors = new Map<string, FakeBehavior>();
  /** Exits and their watches, by run; a run the fake still holds is never forgotten for room. */
  readonly #exits = new ExitRegistry<Instance>({
    keep: (instance) => this.#byRun.get(instance.handle.runId) === instance,
  });
  #serial = 0;
  #started = 0;

  constructor(options: FakeBackendOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#defaults = options.defaults ?? {};
    this.#record = options.recordCalls ?? false;
    // An own `undefined` shadows the method: the kernel sees a backend without the capability.
    if (options.watchExit === false) Object.defineProperty(this, "watchExit", { value: undefined });
  }

  // ── test controls ─────────────────────────────────────────────────────────

  /** Sets the behaviour of every future run of `workloadId`. */
  behave(workloadId: string, behavior: FakeBehavior): this {
    this.#behaviors.set(workloadId, behavior);
    return this;
  }

  /** Makes the current run of `workloadId` exit now. */
  exit(workloadId: string, status: { exitCode?: number; signal?: string; oomKilled?: boolean } = {}): void {
    this.#end(this.#current(workloadId), exitStatusOf(status));
  }

  /** Makes the current run of `workloadId` vanish behind the kernel's back. */
  lose(workloadId: string): void {
    const instance = this.#current(workloadId);
    this.#end(instance, { exitCode: null, lost: true });
    this.#byRun.delete(instance.handle.runId);
    this.#exits.forget(instance);
  }

  /** Appends output lines to the current run of `workloadId`. */
  print(workloadId: string, ...lines: string[]): void {
    const instance = this.#current(workloadId);
    (instance.behavior.output ??= []).push(...lines);
    for (const wake of instance.logWaiters ?? []) wake();
  }

  /** The current (newest) run of `workloadId`, if the fake holds one. */
  inspect(workloadId: string): FakeWorkload | undefined {
    let found: Instance | undefined;
    for (const instance of this.#byRun.values()) {
      if (
        instance.handle.workloadId === workloadId &&
        (!found || instance.handle.serial > found.handle.serial)
      ) {
        found = instance;
      }
    }
    return found;
  }

  /** Every run the fake holds (not yet cleaned up). */
  workloads(): FakeWorkload[] {
    return [...this.#byRun.values()];
  }

  /** Runs currently running (started, not exited). */
  get running(): number {
    let n = 0;
    for (const instance of this.#byRun.values()) if (instance.exit === null) n++;
    return n;
  }

  /** How many runs were ever started. */
  get started(): number {
    return this.#started;
  }

  // ── the port ──────────────────────────────────────────────────────────────

  async start(request: StartRequest, options: { signal: AbortSignal }): Promise<FakeHandle> {
    this.#log("start", request);
    const behavior = {
      ...this.#defaults,
      ...(request.runnable.fake as FakeBehavior | undefined),
      ...this.#behaviors.get(request.workloadId),
    };
    if (behavior.startDelayMs) await this.#delay(behavior.startDelayMs, options.signal, request.workloadId);
    if (options.signal.aborted)
      throw new StartAbortedError(request.workloadId, { cause: options.signal.reason });
    if (behavior.startError !== undefined) {
      throw typeof behavior.startError === "string"
        ? new StartFailedError(request.workloadId, behavior.startError)
        : behavior.startError;
    }
    const handle: FakeHandle = {
      workloadId: request.workloadId,
      runId: request.runId,
      backend: "fake",
      serial: ++this.#serial,
    };
    const instance: Instance = {
      handle,
      request,
      exit: null,
      signals: [],
      cleanedUp: false,
      behavior: { ...behavior, output: behavior.output ? [...behavior.output] : undefined },
      timers: [],
      killFailures: 0,
      cleanupFailures: 0,
      logWaiters: undefined,
    };
    this.#byRun.set(request.runId, instance);
    this.#started++;
    if (behavior.exitAfterMs !== undefined) {
      this.#after(instance, behavior.exitAfterMs, () => this.#end(instance, exitStatusOf(behavior)));
    }
    if (behavior.lostAfterMs !== undefined) {
      this.#after(instance, behavior.lostAfterMs, () => {
        this.#end(instance, { exitCode: null, lost: true });
        this.#byRun.delete(instance.handle.runId);
        this.#exits.forget(instance);
      });
    }
    return handle;
  }

  async exitCode(handle: FakeHandle): Promise<number | null> {
    this.#log("exitCode", handle);
    const instance = this.#find(handle);
    if (!instance || instance.exit?.lost) throw new WorkloadLostError(handle.workloadId);
    return instance.exit ? instance.exit.exitCode : null;
  }

  async terminate(handle: FakeHandle, _options: { graceMs: number }): Promise<void> {
    this.#log("terminate", handle);
    const instance = this.#find(handle);
    if (!instance || instance.exit) return;
    instance.signals.push("SIGTERM");
    if (instance.behavior.ignoreTerminate) return;
    const delay = instance.behavior.terminateDelayMs ?? 0;
    const exit = () => this.#end(instance, { exitCode: 143, signal: "SIGTERM" });
    if (delay > 0) this.#after(instance, delay, exit);
    else queueMicrotask(exit);
  }

  async kill(handle: FakeHandle): Promise<void> {
    this.#log("kill", handle);
    const instance = this.#find(handle);
    if (!instance || instance.exit) return;
    const fails = instance.behavior.killFails;
    if (fails === "always" || (fails !== undefined && instance.killFailures < fails)) {
      instance.killFailures++;
      throw new RuntimeKernelError("BACKEND_ERROR", `fake: kill of ${handle.workloadId} failed`, {
        workloadId: handle.workloadId,
        retryable: true,
      });
    }
    instance.signals.push("SIGKILL");
    queueMicrotask(() => this.#end(instance, { exitCode: 137, signal: "SIGKILL" }));
  }

  async cleanup(handle: FakeHandle): Promise<void> {
    this.#log("cleanup", handle);
    const instance = this.#find(handle);
    if (!instance) return;
    const fails = instance.behavior.cleanupFails;
    if (fails === "always" || (fails !== undefined && instance.cleanupFailures < fails)) {
      instance.cleanupFailures++;
      throw new CleanupFailedError(handle.workloadId, `fake: cleanup of ${handle.workloadId} failed`, {
        retryable: fails !== "always",
      });
    }
    if (!instance.exit) this.#end(instance, { exitCode: 137, signal: "SIGKILL" });
    for (const timer of instance.timers) this.#clock.clearTimeout(timer);
    instance.cleanedUp = true;
    this.#byRun.delete(handle.runId);
    this.#exits.forget(instance);
  }

  watchExit(handle: FakeHandle, onExit: (status: ExitStatus) => void): () => void {
    const instance = this.#find(handle);
    if (!instance) return this.#exits.deliverLater({ exitCode: null, lost: true }, onExit).stop;
    return this.#exits.watch(instance, onExit).stop;
  }

  async discover(selector: { kernelId: string }): Promise<DiscoveredWorkload<FakeHandle>[]> {
    this.#log("discover");
    return [...this.#byRun.values()]
      .filter((i) => i.request.labels[LABELS.kernelId] === selector.kernelId && !i.exit?.lost)
      .map((i) => ({
        handle: { ...i.handle },
        labels: { ...i.request.labels },
        exit: i.exit ? { ...i.exit } : null,
      }));
  }

  async *logs(handle: FakeHandle, options: LogOptions = {}): AsyncIterable<LogEntry> {
    this.#log("logs", handle);
    const instance = this.#find(handle);
    if (!instance) throw new WorkloadLostError(handle.workloadId);
    const output = instance.behavior.output ?? [];
    let i = options.tail !== undefined ? Math.max(0, output.length - options.tail) : 0;
    for (;;) {
      while (i < output.length) yield { stream: "stdout", line: output[i++] as string };
      if (!options.follow || instance.exit || options.signal?.aborted) return;
      await new Promise<void>((resolve) => {
        instance.logWaiters ??= new Set();
        const wake = () => {
          instance.logWaiters?.delete(wake);
          options.signal?.removeEventListener("abort", wake);
          resolve();
        };
        instance.logWaiters.add(wake);
        options.signal?.addEventListener("abort", wake, { once: true });
      });
    }
  }

  // ── internals ─────────────────────────────────────────────────────────────

  #current(workloadId: string): Instance {
    const instance = this.inspect(workloadId) as Instance | undefined;
    if (!instance) throw new Error(`FakeBackend holds no run of "${workloadId}"`);
    return instance;
  }

  #find(handle: FakeHandle): Instance | undefined {
    const instance = this.#byRun.get(handle.runId);
    return instance && instance.handle.serial === handle.serial ? instance : undefined;
  }

  #end(instance: Instance, status: ExitStatus): void {
    if (instance.exit) return;
    instance.exit = status;
    for (const timer of instance.timers) this.#clock.clearTimeout(timer);
    instance.timers.length = 0;
    this.#exits.settle(instance, status);
    for (const wake of instance.logWaiters ?? []) wake();
  }

  #after(instance: Instance, ms: number, fire: () => void): void {
    instance.timers.push(this.#clock.setTimeout(fire, ms));
  }

  #delay(ms: number, signal: AbortSignal, workloadId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = this.#clock.setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        this.#clock.clearTimeout(timer);
        reject(new StartAbortedError(workloadId, { cause: signal.reason }));
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
  }

  #log(method: FakeCall["method"], target?: { workloadId: string; runId: string }): void {
    if (!this.#record) return;
    this.calls.push({ method, ...(target ? { workloadId: target.workloadId, runId: target.runId } : {}) });
  }
}

/** The exit a fake reports for a code, a death by signal (128 + n), or an OOM kill (137). */
function exitStatusOf(exit: { exitCode?: number; signal?: string; oomKilled?: boolean }): ExitStatus {
  if (exit.signal) return { exitCode: exitCodeForSignal(exit.signal), signal: exit.signal };
  if (exit.oomKilled) return { exitCode: 137, oomKilled: true };
  return { exitCode: exit.exitCode ?? 0 };
}
