/**
 * The kernel's workloads and their runs: starting and adopting runs, wiring the machine's
 * actions to run-effects.ts, what each transition sets off (restart, reap, forget, quota
 * release) and settling the waiters. It must not check a caller's arguments (kernel.ts does)
 * nor call the backend itself (run-effects.ts does).
 * @module
 */
import { randomUUID } from "node:crypto";
import { createActor } from "xstate";
import type { DiscoveredWorkload } from "../backends/backend.js";
import { decodeRunLabels } from "../backends/run-labels.js";
import type { Clock } from "../clock.js";
import { StartFailedError, WorkloadNotFoundError } from "../errors.js";
import type { EventHub } from "./events.js";
import {
  type LifecycleContext,
  type LifecycleEvent,
  type LifecycleInput,
  type RunMachine,
  runMachine,
} from "./machine.js";
import { restartDelay } from "./policies.js";
import { statusOf, transitionOf } from "./projection.js";
import type { OwnerQuota } from "./quota.js";
import { Run, Workload } from "./run.js";
import { RunEffects, type RunEffectsContext } from "./run-effects.js";
import { MAX_DEADLINE, type Scheduler } from "./scheduler.js";
import { isTraceId } from "./spec.js";
import {
  type Profile,
  WORKLOAD_STATES,
  type WorkloadSpec,
  type WorkloadState,
  type WorkloadStatus,
} from "./types.js";
import type { Settlement } from "./waiters.js";

const DEFAULT_GRACE_MS = 10_000;

const ORDER: Record<WorkloadState, number> = Object.fromEntries(
  WORKLOAD_STATES.map((s, i) => [s, i]),
) as Record<WorkloadState, number>;

/** What the table works with, all owned by the kernel. */
export interface WorkloadTableOptions extends Omit<RunEffectsContext, "send" | "isCurrent"> {
  clock: Clock;
  scheduler: Scheduler;
  hub: EventHub;
  quota: OwnerQuota;
  profiles: Record<string, Profile>;
  reapAfterMs: number;
}

/** The workloads a kernel knows, by id. */
export class WorkloadTable {
  /** Set once the kernel shuts down: no restart, no new run. */
  closing = false;
  readonly effects: RunEffects;
  readonly #workloads = new Map<string, Workload>();
  readonly #o: WorkloadTableOptions;
  readonly #machine: RunMachine;

  constructor(options: WorkloadTableOptions) {
    this.#o = options;
    this.effects = new RunEffects({
      ...options,
      send: (run, event) => this.#send(run, event),
      isCurrent: (run) => this.#isCurrent(run),
    });
    this.#machine = this.#provideActions();
  }

  get(workloadId: string): Workload | undefined {
    return this.#workloads.get(workloadId);
  }

  /** The workload, or `WORKLOAD_NOT_FOUND`. */
  require(workloadId: string): Workload {
    const workload = this.#workloads.get(workloadId);
    if (!workload) throw new WorkloadNotFoundError(workloadId);
    return workload;
  }

  values(): IterableIterator<Workload> {
    return this.#workloads.values();
  }

  /** Forgets every workload at once (a shutdown leaving them running). */
  clear(): void {
    this.#workloads.clear();
  }

  // ── runs ──────────────────────────────────────────────────────────────────

  /** A new workload (charged: it counts against its owner's quota), with a first run started. */
  create(spec: WorkloadSpec): void {
    this.#startRun(this.#add(spec, this.#o.profiles[spec.profile] as Profile, true), false);
  }

  #add(spec: WorkloadSpec, profile: Profile, charged: boolean): Workload {
    const workload = new Workload(spec, profile, charged);
    this.#workloads.set(spec.workloadId, workload);
    return workload;
  }

  #lifecycleInput(run: Run): LifecycleInput {
    const { spec, profile } = run.workload;
    return {
      workloadId: spec.workloadId,
      runId: run.runId,
      graceMs: spec.graceMs ?? profile.graceMs ?? DEFAULT_GRACE_MS,
      idleTimeoutMs: spec.idleTimeoutMs ?? profile.idleTimeoutMs ?? 0,
      maxLifetimeMs: spec.maxLifetimeMs ?? profile.maxLifetimeMs ?? 0,
    };
  }

  /** Makes `run` its workload's current run and starts its actor. */
  #begin(run: Run, input: LifecycleInput): void {
    run.workload.run = run;
    run.actor = createActor(this.#machine, { input });
    run.actor.start();
  }

  #startRun(workload: Workload, restart: boolean): void {
    if (restart) workload.restarts++;
    const run = new Run(workload, randomUUID(), this.#o.clock.now(), false);
    this.#begin(run, this.#lifecycleInput(run));
  }

  /** Takes over a run `recover()` found, as a new workload whose run is already running. */
  adopt(item: DiscoveredWorkload): Run {
    const labels = decodeRunLabels(item.labels);
    const profileName = labels.profile ?? "";
    const { owner, traceId } = labels;
    const spec: WorkloadSpec = {
      workloadId: labels.workloadId ?? item.handle.workloadId,
      profile: profileName,
      ...(owner ? { owner } : {}),
      // Read from the substrate: taken only when it is one a spec could carry.
      ...(traceId !== undefined && isTraceId(traceId) ? { traceId } : {}),
    };
    const workload = this.#add(spec, this.#o.profiles[profileName] ?? { runnable: {} }, !item.exit);
    workload.restarts = labels.restart;
    if (workload.charged) this.#o.quota.force(owner);
    const run = new Run(workload, item.handle.runId, labels.createdAt || this.#o.clock.now(), true);
    const maxAt = labels.maxLifetimeAt;
    this.#begin(run, {
      ...this.#lifecycleInput(run),
      adopted: {
        handle: item.handle,
        now: this.#o.clock.now(),
        // It did run (waitFor "running" must not call it a failed start); when exactly is
        // not recorded, its creation is the closest bound known.
        startedAt: run.createdAt,
        // A label is read from the substrate: only a deadline the scheduler can hold is taken.
        ...(maxAt !== undefined && maxAt <= MAX_DEADLINE ? { maxLifetimeDeadline: maxAt } : {}),
      },
    });
    return run;
  }

  /** Activity: pushes a running workload's idle deadline back. */
  touch(workload: Workload): void {
    const run = workload.run;
    if (run.state === "running") run.actor.send({ type: "TOUCH", now: this.#o.clock.now() });
  }

  /** Whether `run` is the current run of a workload the kernel still has: the one staleness test. */
  #isCurrent(run: Run): boolean {
    return run.latest && this.#workloads.get(run.workload.spec.workloadId) === run.workload;
  }

  /** Sends to the run that scheduled the call, and to no later run of the same workload. */
  #send(run: Run, event: LifecycleEvent): void {
    if (this.#isCurrent(run)) run.actor.send(event);
  }

  // ── quota ─────────────────────────────────────────────────────────────────

  /** Counts `spec`'s workload against its owner's quota, or throws `QUOTA_EXCEEDED`. */
  charge(spec: WorkloadSpec): void {
    this.#o.quota.charge(spec.owner, spec.workloadId);
  }

  uncharge(workload: Workload): void {
    if (!workload.charged) return;
    workload.charged = false;
    this.#o.quota.release(workload.spec.owner);
  }

  // ── the machine's actions ─────────────────────────────────────────────────

  #provideActions(): RunMachine {
    // An action acts only for the current run of its workload: the actor's identity says which.
    const on = <P>(fn: (run: Run, context: LifecycleContext, params: P) => void) => {
      return ({ context, self }: { context: LifecycleContext; self: unknown }, params: P) => {
        const run = this.#workloads.get(context.workloadId)?.run;
        if (run !== undefined && run.actor === self) fn(run, context, params);
      };
    };
    const effects = this.effects;
    return runMachine.provide({
      actions: {
        report: on((run, context, params: { state: WorkloadState }) =>
          this.#report(run, context, params.state),
        ),
        requestSlot: on((run) => effects.requestSlot(run)),
        releaseSlot: on((run) => effects.releaseSlot(run)),
        launch: on((run) => void effects.launch(run)),
        watch: on((run, context) => effects.watch(run, context)),
        arm: on((run, context) => effects.scheduleDeadline(run, context)),
        rearm: on((run, context) => effects.scheduleDeadline(run, context)),
        disarm: on((run) => effects.disarm(run)),
        terminate: on((run, context) => effects.terminate(run, context)),
        kill: on((run, context) => effects.kill(run, context)),
        scheduleKillRetry: on((run) => effects.scheduleKillRetry(run)),
        cleanup: on((run, context) => effects.cleanup(run, context)),
        cleanupFailed: on((run, _context, params: { retryable: boolean }) =>
          effects.cleanupFailed(run, params.retryable),
        ),
      },
    });
  }

  // ── transitions ───────────────────────────────────────────────────────────

  #report(run: Run, context: LifecycleContext, state: WorkloadState): void {
    const from = run.state;
    run.state = state;
    const event = transitionOf(run.workload, run, context, from, state, this.#o.clock.now());
    if (state === "stopped") {
      run.stoppedAt = event.at;
      this.#onStopped(run, context);
    }
    this.#o.hub.publish(event);
    if (state === "destroyed") this.#onDestroyed(run, context);
    else this.#settleWaiters(run.workload, context);
  }

  #onStopped(run: Run, context: LifecycleContext): void {
    const { workload } = run;
    if (context.destroyRequested) {
      this.uncharge(workload);
      return;
    }
    let delay = this.closing
      ? undefined
      : restartDelay(workload.profile.restart, context.stopReason, workload.restarts + 1);
    if (delay !== undefined && !workload.charged) {
      // An exit found by recover() was never charged; its restart is live again, within the quota.
      try {
        this.charge(workload.spec);
        workload.charged = true;
      } catch {
        delay = undefined;
      }
    }
    if (delay !== undefined) {
      // The quota stays charged: the restart is the same workload going on.
      run.restartAt = this.#o.clock.now() + delay;
      run.next = { restart: true };
      run.setTimer(this.#o.scheduler, run.restartAt, () => this.#send(run, { type: "DESTROY" }));
      return;
    }
    this.uncharge(workload);
    this.#scheduleReap(run);
  }

  #scheduleReap(run: Run): void {
    run.setTimer(this.#o.scheduler, this.#o.clock.now() + this.#o.reapAfterMs, () =>
      this.#send(run, { type: "DESTROY" }),
    );
  }

  /** Drops the restart pending after `run`: the workload is reaped instead. */
  cancelRestart(run: Run): void {
    run.next = undefined;
    run.restartAt = undefined;
    this.uncharge(run.workload);
    this.#scheduleReap(run);
  }

  #onDestroyed(run: Run, context: LifecycleContext): void {
    run.cancelTimer();
    const next = run.next;
    if (!next || this.closing) {
      this.#forget(run, context);
      return;
    }
    // Settle the old run's waiters (stop, destroy, reclaim); waits for `running` stay
    // pending for the new run while `next` is set. The new run starts outside this
    // run's action, so that one actor never runs inside another's transition.
    this.#settleWaiters(run.workload, context);
    queueMicrotask(() => {
      if (run.next !== next || this.closing) this.#forget(run, context);
      else {
        run.next = undefined;
        this.#startRun(run.workload, next.restart);
      }
    });
  }

  /** The workload is gone for good: drop it and release its quota. */
  #forget(run: Run, context: LifecycleContext): void {
    const { workload } = run;
    run.next = undefined;
    this.uncharge(workload);
    if (this.#workloads.get(workload.spec.workloadId) === workload)
      this.#workloads.delete(workload.spec.workloadId);
    this.#settleWaiters(workload, context);
  }

  // ── waiting and status ────────────────────────────────────────────────────

  /** Resolves once the workload reaches `state` or a later one (see `RuntimeKernel.waitFor`). */
  waitFor(workloadId: string, state: WorkloadState, signal?: AbortSignal): Promise<WorkloadStatus> {
    const workload = this.#workloads.get(workloadId);
    if (!workload) return Promise.reject(new WorkloadNotFoundError(workloadId));
    const settled = this.#settlement(workload, state);
    if (settled) return settled.ok ? Promise.resolve(settled.status) : Promise.reject(settled.error);
    return workload.waiters.add(state, signal);
  }

  /** Whether a wait for `target` is decided by the workload's current run. */
  #settlement(
    workload: Workload,
    target: WorkloadState,
    context: LifecycleContext = workload.run.context,
  ): Settlement | undefined {
    const run = workload.run;
    const state = run.state;
    if (state === null || ORDER[state] < ORDER[target]) return undefined;
    if (target === "running" && run.next) return undefined; // a new run is on its way
    if (target === "running" && state !== "running" && context.startedAt === undefined) {
      const { workloadId } = workload.spec;
      return {
        ok: false,
        error:
          run.startError ??
          new StartFailedError(
            workloadId,
            `Workload "${workloadId}" was stopped (${context.stopReason ?? "requested"}) before it ran`,
          ),
      };
    }
    return { ok: true, status: this.status(workload, context) };
  }

  #settleWaiters(workload: Workload, context?: LifecycleContext): void {
    workload.waiters.settle((target) => this.#settlement(workload, target, context));
  }

  /**
   * The workload's status. Inside an action the actor's snapshot is still the previous one,
   * so the machine's actions pass the new context in; outside, the snapshot is current.
   */
  status(workload: Workload, context: LifecycleContext = workload.run.context): WorkloadStatus {
    return statusOf(workload, workload.run, context);
  }
}
