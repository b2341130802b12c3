/**
 * A workload and its runs. A `Workload` is what lasts across runs (spec, restarts, quota
 * charge, waiters); a `Run` is one attempt with its actor, timer and backend calls in flight.
 * A new run is a new object, so a late callback of an earlier run is recognised by identity.
 * Owns this bookkeeping only; it must not call the backend, publish events or decide policy.
 * @module
 */
import type { Actor } from "xstate";
import type { RuntimeKernelError, SerializedError } from "../errors.js";
import type { PollTarget } from "./exit-poller.js";
import type { LifecycleContext, RunMachine } from "./machine.js";
import type { ScheduledTask, Scheduler } from "./scheduler.js";
import type { StartTicket } from "./start-queue.js";
import type { Profile, WorkloadSpec, WorkloadState } from "./types.js";
import { Waiters } from "./waiters.js";

/** Everything the kernel keeps about one workload across its runs. Never holds secrets. */
export class Workload {
  spec: WorkloadSpec;
  profile: Profile;
  /** Restarts so far; the current run is restart number `restarts` (0: the first run). */
  restarts = 0;
  /** Whether this workload counts against its owner's quota. */
  charged: boolean;
  readonly waiters = new Waiters();
  /** The latest run; replaced, never reset, when a new run starts. */
  run!: Run;

  constructor(spec: WorkloadSpec, profile: Profile, charged: boolean) {
    this.spec = spec;
    this.profile = profile;
    this.charged = charged;
  }
}

/** One run of a workload: a lifecycle actor and what lives and dies with it. */
export class Run {
  readonly workload: Workload;
  readonly runId: string;
  readonly createdAt: number;
  /** Set once, right after construction (the actor's input reads the run). */
  actor!: Actor<RunMachine>;
  /** The last state reported; `null` before the first. */
  state: WorkloadState | null = null;
  /** Set while `recover()` adopts this run. */
  recovered: boolean;
  ticket?: StartTicket;
  abort?: AbortController;
  unwatch?: () => void;
  poll?: PollTarget;
  /** The one scheduled task of the run (deadline, grace, retry, reap or restart: exclusive by state). */
  timer?: ScheduledTask;
  /** Serialises terminate, kill and cleanup for the handle. */
  op?: Promise<unknown>;
  startError?: RuntimeKernelError;
  cleanupError?: SerializedError;
  cleanupAttempts = 0;
  /** Failed kills in a row. */
  killFailures = 0;
  /** What to do once this run is destroyed: start a new run. */
  next?: { restart: boolean };
  /** Epoch ms at which the restart after this run is due. */
  restartAt?: number;
  /** Epoch ms at which this run reached `stopped`. */
  stoppedAt?: number;

  constructor(workload: Workload, runId: string, createdAt: number, recovered: boolean) {
    this.workload = workload;
    this.runId = runId;
    this.createdAt = createdAt;
    this.recovered = recovered;
  }

  /** Whether this is still its workload's latest run. */
  get latest(): boolean {
    return this.workload.run === this;
  }

  /** The machine's context as of the last completed transition. */
  get context(): LifecycleContext {
    return this.actor.getSnapshot().context;
  }

  setTimer(scheduler: Scheduler, at: number, fire: () => void): void {
    this.timer?.cancel();
    this.timer = scheduler.at(at, fire);
  }

  cancelTimer(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /**
   * Runs backend calls for this run's handle one at a time, in order. With none in flight the
   * call starts at once, inside the transition that asked for it: a burst of stops then
   * reaches the backend while the caller is still issuing the rest, not after it.
   */
  serial<T>(call: () => Promise<T>): Promise<T> {
    let run: Promise<T>;
    if (this.op) run = this.op.then(call, call);
    else {
      // The call's own promise, not one wrapping it: a wrapper costs a promise and two
      // microtask hops per call, and a burst of stops makes thousands of calls.
      try {
        run = Promise.resolve(call());
      } catch (error) {
        run = Promise.reject(error);
      }
    }
    const release = () => {
      if (this.op === settled) this.op = undefined;
    };
    const settled: Promise<void> = run.then(release, release);
    this.op = settled;
    return run;
  }
}
