/**
 * `createRuntimeKernel()`: the host's entry point. The kernel keeps its workloads, one
 * lifecycle actor per run, and owns the policies that act on transitions (idle TTL, max
 * lifetime, quotas, restarts, reaping, recovery); run-effects.ts carries out the machine's
 * actions against the Backend port.
 * @module
 */
import { randomUUID } from "node:crypto";
import { createActor } from "xstate";
import type { Backend, DiscoveredWorkload, LogEntry, LogOptions } from "../backends/backend.js";
import { decodeRunLabels } from "../backends/run-labels.js";
import { type Clock, systemClock } from "../clock.js";
import {
  isRuntimeKernelError,
  KernelShutDownError,
  RuntimeKernelError,
  StartFailedError,
  WorkloadConflictError,
  WorkloadNotFoundError,
} from "../errors.js";
import type { RuntimeKernel, ShutdownOptions, StopOptions } from "./api.js";
import { EventHub, type EventStreamOptions, type KernelEventMap } from "./events.js";
import { ExitPoller } from "./exit-poller.js";
import {
  type LifecycleContext,
  type LifecycleEvent,
  type LifecycleInput,
  type RunMachine,
  runMachine,
} from "./machine.js";
import { cleanupRetryDelay, restartDelay } from "./policies.js";
import { statusOf, transitionOf } from "./projection.js";
import { OwnerQuota } from "./quota.js";
import { Run, Workload } from "./run.js";
import { asError, KILL_FAILURES_BEFORE_REJECT, RunEffects } from "./run-effects.js";
import { MAX_DEADLINE, Scheduler } from "./scheduler.js";
import { checkArguments, parseKernelOptions, parseWorkloadSpec, type RuntimeKernelOptions } from "./spec.js";
import { StartQueue } from "./start-queue.js";
import {
  type ListFilter,
  type Profile,
  type RecoveryReport,
  type TransitionEvent,
  WORKLOAD_STATES,
  type WorkloadSpec,
  type WorkloadState,
  type WorkloadStatus,
} from "./types.js";
import type { Settlement } from "./waiters.js";

const DEFAULT_GRACE_MS = 10_000;
/** Cleanup attempts per workload at shutdown (1 s, then 2 s apart) before leaving it behind. */
const SHUTDOWN_CLEANUP_ATTEMPTS = 3;

const ORDER: Record<WorkloadState, number> = Object.fromEntries(
  WORKLOAD_STATES.map((s, i) => [s, i]),
) as Record<WorkloadState, number>;

class Kernel implements RuntimeKernel {
  readonly kernelId: string;
  readonly backend: Backend;
  readonly #profiles: Record<string, Profile>;
  readonly #options: RuntimeKernelOptions;
  readonly #clock: Clock;
  readonly #hub: EventHub;
  readonly #scheduler: Scheduler;
  readonly #starts: StartQueue;
  readonly #poller: ExitPoller;
  readonly #effects: RunEffects;
  readonly #machine: RunMachine;
  readonly #workloads = new Map<string, Workload>();
  readonly #quota: OwnerQuota;
  #closing = false;
  #closed: Promise<void> | undefined;
  readonly #unwatchFaults: (() => void) | undefined;

  constructor(options: RuntimeKernelOptions) {
    parseKernelOptions(options);
    this.#options = options;
    this.kernelId = options.kernelId ?? "default";
    this.backend = options.backend;
    this.#profiles = options.profiles ?? {};
    this.#clock = options.clock ?? systemClock;
    this.#hub = new EventHub(options.eventRetention ?? 1_000);
    this.#quota = new OwnerQuota(options.ownerQuota);
    this.#scheduler = new Scheduler(this.#clock);
    this.#starts = new StartQueue(options.maxConcurrentStarts ?? 32);
    this.#poller = new ExitPoller(this.backend, this.#scheduler, options.pollIntervalMs ?? 1_000);
    this.#effects = new RunEffects({
      kernelId: this.kernelId,
      backend: this.backend,
      clock: this.#clock,
      scheduler: this.#scheduler,
      starts: this.#starts,
      poller: this.#poller,
      hub: this.#hub,
      credentials: options.credentials,
      send: (run, event) => this.#send(run, event),
      isCurrent: (run) => this.#isCurrent(run),
    });
    this.#machine = this.#provideActions();
    this.#unwatchFaults = this.backend.watchFaults?.((error) => this.#hub.fault(error));
  }

  // ── public API ────────────────────────────────────────────────────────────

  async create(input: WorkloadSpec): Promise<WorkloadStatus> {
    if (this.#closing) throw new KernelShutDownError();
    const spec = parseWorkloadSpec(input, this.#profiles);
    for (;;) {
      // Again on every pass: a create that waited may resume while the kernel shuts down.
      if (this.#closing) throw new KernelShutDownError();
      const existing = this.#workloads.get(spec.workloadId);
      if (!existing) {
        this.#charge(spec);
        this.#startRun(this.#newWorkload(spec, this.#profiles[spec.profile] as Profile, true), false);
        return this.#waitFor(spec.workloadId, "running");
      }
      if ((existing.spec.owner ?? "") !== (spec.owner ?? "")) {
        throw new WorkloadConflictError(
          spec.workloadId,
          `Workload "${spec.workloadId}" belongs to another owner`,
        );
      }
      const run = existing.run;
      const state = run.state;
      if (state === "starting" || state === "running") {
        this.#touch(existing);
        return this.#waitFor(spec.workloadId, "running");
      }
      if (state === "stopped" && !run.next) {
        // Reclaim the old run, then start a new one for the same workload. The quota is
        // checked first so that a refusal loses nothing.
        if (!existing.charged) {
          this.#charge(spec);
          existing.charged = true;
        }
        run.cancelTimer();
        run.restartAt = undefined;
        existing.spec = spec;
        existing.profile = this.#profiles[spec.profile] as Profile;
        run.next = { restart: false };
        run.actor.send({ type: "DESTROY" });
        await this.#waitFor(spec.workloadId, "destroyed").catch((error) => {
          existing.run.next = undefined;
          this.#uncharge(existing);
          throw error;
        });
        // A destroy() that landed during the reclaim cancelled the new run.
        if (this.#workloads.get(spec.workloadId) !== existing) {
          throw new StartFailedError(
            spec.workloadId,
            `Workload "${spec.workloadId}" was destroyed before it ran`,
          );
        }
        return this.#waitFor(spec.workloadId, "running");
      }
      // Stopping, or a new run is already being prepared: wait for that and look again
      // (unless the stop cannot be done: its kill keeps failing).
      await this.#waitFor(spec.workloadId, state === "stopping" ? "stopped" : "running").catch((error) => {
        const current = existing.run;
        if (current.state === "stopping" && current.killFailures >= KILL_FAILURES_BEFORE_REJECT) throw error;
      });
    }
  }

  get(workloadId: string): WorkloadStatus | undefined {
    checkArguments("get", [workloadId]);
    const workload = this.#workloads.get(workloadId);
    return workload ? this.#status(workload) : undefined;
  }

  list(filter: ListFilter = {}): WorkloadStatus[] {
    checkArguments("list", [filter]);
    const states = filter.state === undefined ? undefined : ([] as WorkloadState[]).concat(filter.state);
    const out: WorkloadStatus[] = [];
    for (const workload of this.#workloads.values()) {
      if (filter.owner !== undefined && workload.spec.owner !== filter.owner) continue;
      if (filter.profile !== undefined && workload.spec.profile !== filter.profile) continue;
      const state = workload.run.state;
      if (states && (state === null || !states.includes(state))) continue;
      out.push(this.#status(workload));
    }
    return out;
  }

  touch(workloadId: string): void {
    checkArguments("touch", [workloadId]);
    this.#touch(this.#require(workloadId));
  }

  async stop(workloadId: string, options: StopOptions = {}): Promise<WorkloadStatus> {
    checkArguments("stop", [workloadId, options]);
    const workload = this.#require(workloadId);
    const run = workload.run;
    if (run.state === "stopped" || run.state === "destroyed") {
      if (run.restartAt !== undefined) this.#cancelRestart(run);
      return this.#status(workload);
    }
    run.actor.send({
      type: "STOP",
      reason: options.reason ?? "requested",
      ...(options.graceMs !== undefined ? { graceMs: options.graceMs } : {}),
    });
    return this.#waitFor(workloadId, "stopped");
  }

  async destroy(workloadId: string, options: { graceMs?: number } = {}): Promise<void> {
    checkArguments("destroy", [workloadId, options]);
    const run = this.#require(workloadId).run;
    run.next = undefined;
    run.restartAt = undefined;
    if (run.state === "stopped") run.cancelTimer();
    const done = this.#waitFor(workloadId, "destroyed");
    // Between a destroyed run and the next one the old actor is final: clearing `next` is enough.
    if (run.state !== "destroyed") {
      run.actor.send({
        type: "DESTROY",
        ...(options.graceMs !== undefined ? { graceMs: options.graceMs } : {}),
      });
    }
    await done;
  }

  waitFor(
    workloadId: string,
    state: WorkloadState,
    options: { signal?: AbortSignal } = {},
  ): Promise<WorkloadStatus> {
    try {
      checkArguments("waitFor", [workloadId, state, options]);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#waitFor(workloadId, state, options);
  }

  /** `waitFor` for the kernel's own calls, whose arguments need no checking. */
  #waitFor(
    workloadId: string,
    state: WorkloadState,
    options: { signal?: AbortSignal } = {},
  ): Promise<WorkloadStatus> {
    const workload = this.#workloads.get(workloadId);
    if (!workload) return Promise.reject(new WorkloadNotFoundError(workloadId));
    const settled = this.#settlement(workload, state);
    if (settled) return settled.ok ? Promise.resolve(settled.status) : Promise.reject(settled.error);
    return workload.waiters.add(state, options.signal);
  }

  events(options?: EventStreamOptions): AsyncIterableIterator<TransitionEvent> {
    checkArguments("events", [options]);
    return this.#hub.stream(options);
  }

  get lastEventSeq(): number {
    return this.#hub.lastSeq;
  }

  logs(workloadId: string, options: LogOptions = {}): AsyncIterable<LogEntry> {
    checkArguments("logs", [workloadId, options]);
    const workload = this.#require(workloadId);
    if (!this.backend.logs) {
      throw new RuntimeKernelError("UNSUPPORTED", `Backend "${this.backend.name}" cannot stream logs`, {
        workloadId,
      });
    }
    const handle = workload.run.context.handle;
    if (!handle) {
      throw new WorkloadConflictError(workloadId, `Workload "${workloadId}" has no output: it never started`);
    }
    return this.backend.logs(handle, options);
  }

  async recover(): Promise<RecoveryReport> {
    if (this.#closing) throw new KernelShutDownError();
    if (!this.backend.discover) {
      throw new RuntimeKernelError("UNSUPPORTED", `Backend "${this.backend.name}" cannot discover workloads`);
    }
    const found = await this.backend.discover({ kernelId: this.kernelId });
    const report: RecoveryReport = { adopted: [], exited: [], reaped: [] };
    // The newest run of each workload is adopted; any older run is a leftover.
    const newest = new Map<string, DiscoveredWorkload>();
    const leftovers: DiscoveredWorkload[] = [];
    for (const item of found) {
      const id = decodeRunLabels(item.labels).workloadId ?? item.handle.workloadId;
      const known = this.#workloads.get(id);
      if (known) {
        if (known.run.runId !== item.handle.runId) leftovers.push(item);
        continue;
      }
      const previous = newest.get(id);
      if (!previous) newest.set(id, item);
      else if (createdAt(item) > createdAt(previous)) {
        leftovers.push(previous);
        newest.set(id, item);
      } else leftovers.push(item);
    }
    // Running workloads first: they are live whatever the quota says, and the restart of
    // one that exited meanwhile must fit in what they leave of its owner's quota.
    const items = [...newest.values()].sort((x, y) => Number(x.exit !== null) - Number(y.exit !== null));
    for (const item of items) {
      const run = this.#adopt(item);
      if (item.exit) {
        run.actor.send({ type: "EXITED", status: item.exit });
        report.exited.push(this.#status(run.workload));
      } else report.adopted.push(this.#status(run.workload));
      run.recovered = false;
    }
    await Promise.all(
      leftovers.map(async (item) => {
        try {
          if (!item.exit) await this.backend.kill(item.handle);
          await this.backend.cleanup(item.handle);
          report.reaped.push(item.handle.runId);
        } catch (error) {
          this.#hub.fault(asError(error));
        }
      }),
    );
    return report;
  }

  shutdown(options: ShutdownOptions = {}): Promise<void> {
    try {
      checkArguments("shutdown", [options]);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#closed ??= this.#shutdown(options);
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  on<E extends keyof KernelEventMap>(event: E, listener: (...args: KernelEventMap[E]) => void): this {
    this.#hub.on(event, listener);
    return this;
  }

  once<E extends keyof KernelEventMap>(event: E, listener: (...args: KernelEventMap[E]) => void): this {
    this.#hub.once(event, listener);
    return this;
  }

  off<E extends keyof KernelEventMap>(event: E, listener: (...args: KernelEventMap[E]) => void): this {
    this.#hub.off(event, listener);
    return this;
  }

  // ── runs ──────────────────────────────────────────────────────────────────

  #newWorkload(spec: WorkloadSpec, profile: Profile, charged: boolean): Workload {
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
    const run = new Run(workload, randomUUID(), this.#clock.now(), false);
    this.#begin(run, this.#lifecycleInput(run));
  }

  #adopt(item: DiscoveredWorkload): Run {
    const labels = decodeRunLabels(item.labels);
    const profileName = labels.profile ?? "";
    const owner = labels.owner;
    const spec: WorkloadSpec = {
      workloadId: labels.workloadId ?? item.handle.workloadId,
      profile: profileName,
      ...(owner ? { owner } : {}),
    };
    const workload = this.#newWorkload(spec, this.#profiles[profileName] ?? { runnable: {} }, !item.exit);
    workload.restarts = labels.restart;
    if (workload.charged) this.#quota.force(owner);
    const run = new Run(workload, item.handle.runId, labels.createdAt || this.#clock.now(), true);
    const maxAt = labels.maxLifetimeAt;
    this.#begin(run, {
      ...this.#lifecycleInput(run),
      adopted: {
        handle: item.handle,
        now: this.#clock.now(),
        // It did run (waitFor "running" must not call it a failed start); when exactly is
        // not recorded, its creation is the closest bound known.
        startedAt: run.createdAt,
        // A label is read from the substrate: only a deadline the scheduler can hold is taken.
        ...(maxAt !== undefined && maxAt <= MAX_DEADLINE ? { maxLifetimeDeadline: maxAt } : {}),
      },
    });
    return run;
  }

  #touch(workload: Workload): void {
    const run = workload.run;
    if (run.state === "running") run.actor.send({ type: "TOUCH", now: this.#clock.now() });
  }

  #require(workloadId: string): Workload {
    const workload = this.#workloads.get(workloadId);
    if (!workload) throw new WorkloadNotFoundError(workloadId);
    return workload;
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

  #charge(spec: WorkloadSpec): void {
    this.#quota.charge(spec.owner, spec.workloadId);
  }

  #uncharge(workload: Workload): void {
    if (!workload.charged) return;
    workload.charged = false;
    this.#quota.release(workload.spec.owner);
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
    const effects = this.#effects;
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
    const event = transitionOf(run.workload, run, context, from, state, this.#clock.now());
    if (state === "stopped") {
      run.stoppedAt = event.at;
      this.#onStopped(run, context);
    }
    this.#hub.publish(event);
    if (state === "destroyed") this.#onDestroyed(run, context);
    else this.#settleWaiters(run.workload, context);
  }

  #onStopped(run: Run, context: LifecycleContext): void {
    const { workload } = run;
    if (context.destroyRequested) {
      this.#uncharge(workload);
      return;
    }
    let delay = this.#closing
      ? undefined
      : restartDelay(workload.profile.restart, context.stopReason, workload.restarts + 1);
    if (delay !== undefined && !workload.charged) {
      // An exit found by recover() was never charged; its restart is live again, within the quota.
      try {
        this.#charge(workload.spec);
        workload.charged = true;
      } catch {
        delay = undefined;
      }
    }
    if (delay !== undefined) {
      // The quota stays charged: the restart is the same workload going on.
      run.restartAt = this.#clock.now() + delay;
      run.next = { restart: true };
      run.setTimer(this.#scheduler, run.restartAt, () => this.#send(run, { type: "DESTROY" }));
      return;
    }
    this.#uncharge(workload);
    this.#scheduleReap(run);
  }

  #scheduleReap(run: Run): void {
    run.setTimer(this.#scheduler, this.#clock.now() + (this.#options.reapAfterMs ?? 60_000), () =>
      this.#send(run, { type: "DESTROY" }),
    );
  }

  #cancelRestart(run: Run): void {
    run.next = undefined;
    run.restartAt = undefined;
    this.#uncharge(run.workload);
    this.#scheduleReap(run);
  }

  #onDestroyed(run: Run, context: LifecycleContext): void {
    run.cancelTimer();
    const next = run.next;
    if (!next || this.#closing) {
      this.#forget(run, context);
      return;
    }
    // Settle the old run's waiters (stop, destroy, reclaim); waits for `running` stay
    // pending for the new run while `next` is set. The new run starts outside this
    // run's action, so that one actor never runs inside another's transition.
    this.#settleWaiters(run.workload, context);
    queueMicrotask(() => {
      if (run.next !== next || this.#closing) this.#forget(run, context);
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
    this.#uncharge(workload);
    if (this.#workloads.get(workload.spec.workloadId) === workload)
      this.#workloads.delete(workload.spec.workloadId);
    this.#settleWaiters(workload, context);
  }

  // ── waiting and status ────────────────────────────────────────────────────

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
    return { ok: true, status: this.#status(workload, context) };
  }

  #settleWaiters(workload: Workload, context?: LifecycleContext): void {
    workload.waiters.settle((target) => this.#settlement(workload, target, context));
  }

  /**
   * Inside an action the actor's snapshot is still the previous one, so the machine's
   * actions pass the new context in; outside, the snapshot is current.
   */
  #status(workload: Workload, context: LifecycleContext = workload.run.context): WorkloadStatus {
    return statusOf(workload, workload.run, context);
  }

  // ── shutdown ──────────────────────────────────────────────────────────────

  async #shutdown(options: ShutdownOptions): Promise<void> {
    this.#closing = true;
    const workloads = [...this.#workloads.values()];
    if (options.leaveRunning) {
      for (const workload of workloads) {
        const run = workload.run;
        this.#effects.disarm(run);
        this.#effects.releaseSlot(run);
        // A start still in flight cannot be left running for recover(): the backend reclaims it.
        run.abort?.abort(new KernelShutDownError({ workloadId: workload.spec.workloadId }));
        run.actor.stop();
        // No transition will settle these any more (create, stop, destroy, waitFor).
        workload.waiters.rejectAll(new KernelShutDownError({ workloadId: workload.spec.workloadId }));
      }
      this.#workloads.clear();
    } else {
      await Promise.all(workloads.map((workload) => this.#stopForShutdown(workload, options.graceMs)));
    }
    this.#scheduler.clear();
    this.#poller.close();
    this.#hub.endStreams();
    await this.backend.close?.();
    this.#unwatchFaults?.();
  }

  async #stopForShutdown(workload: Workload, graceMs: number | undefined): Promise<void> {
    const id = workload.spec.workloadId;
    const run = workload.run;
    run.next = undefined;
    run.restartAt = undefined;
    if (run.state === "starting" || run.state === "running") {
      run.actor.send({ type: "STOP", reason: "shutdown", ...(graceMs !== undefined ? { graceMs } : {}) });
    }
    // A failed cleanup is retried a few times, soon (not on the reaper's backoff, which
    // may have grown to minutes), so that a transient failure leaves nothing behind.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.destroy(id, graceMs !== undefined ? { graceMs } : {});
        return;
      } catch (error) {
        if (isRuntimeKernelError(error, "WORKLOAD_NOT_FOUND")) return;
        if (!isRuntimeKernelError(error, "CLEANUP_FAILED")) {
          this.#hub.fault(asError(error));
          return;
        }
        // Already reported on `error` (by cleanupFailed); give up after a few attempts,
        // or at once when the backend says the failure will not pass by itself.
        if (attempt >= SHUTDOWN_CLEANUP_ATTEMPTS || !error.retryable) return;
        const retryMs = cleanupRetryDelay(attempt);
        await new Promise<void>((resolve) => this.#scheduler.after(retryMs, resolve));
      }
    }
  }
}

function createdAt(item: DiscoveredWorkload): number {
  return decodeRunLabels(item.labels).createdAt;
}

/**
 * Creates a kernel over a backend. Throws `INVALID_SPEC` naming the field when an
 * option or a profile is malformed.
 *
 * @example
 * ```ts
 * const kernel = createRuntimeKernel({
 *   backend: new ProcessBackend({ stateDir: ".rk/state", logDir: ".rk/logs" }),
 *   profiles: { agent: { runnable: { command: ["node", "agent.js"] }, idleTimeoutMs: 300_000 } },
 *   ownerQuota: 10,
 * });
 * kernel.on("transition", (e) => console.log(e.workloadId, e.from, "->", e.state));
 * const status = await kernel.create({ workloadId: "w1", profile: "agent", owner: "alice" });
 * ```
 */
export function createRuntimeKernel(options: RuntimeKernelOptions): RuntimeKernel {
  return new Kernel(options);
}
