/**
 * `createRuntimeKernel()`: the host's entry point. The kernel keeps one lifecycle actor
 * per workload, interprets the machine's actions against the Backend port, and owns
 * the policies (idle TTL, max lifetime, quotas, restarts, reaping, recovery).
 * @module
 */
import { randomUUID } from "node:crypto";
import { type Actor, createActor } from "xstate";
import type {
  Backend,
  DiscoveredWorkload,
  ExitStatus,
  LogEntry,
  LogOptions,
  StartRequest,
  WorkloadHandle,
  WorkloadMount,
} from "../backends/backend.js";
import { decodeRunLabels, encodeRunLabels } from "../backends/run-labels.js";
import { type Clock, systemClock } from "../clock.js";
import {
  CleanupFailedError,
  isRuntimeKernelError,
  KernelShutDownError,
  RuntimeKernelError,
  type SerializedError,
  StartFailedError,
  serializeError,
  WorkloadConflictError,
  WorkloadNotFoundError,
} from "../errors.js";
import type { RuntimeKernel, ShutdownOptions, StopOptions } from "./api.js";
import { brokerCredentials, redactError } from "./credentials.js";
import { EventHub, type EventStreamOptions, type KernelEventMap } from "./events.js";
import { ExitPoller, type PollTarget, probeExit } from "./exit-poller.js";
import {
  type LifecycleContext,
  type LifecycleEvent,
  type LifecycleInput,
  nextDeadline,
  type RunMachine,
  runMachine,
} from "./machine.js";
import { cleanupRetryDelay, restartDelay } from "./policies.js";
import { statusOf, transitionOf } from "./projection.js";
import { OwnerQuota } from "./quota.js";
import type { ScheduledTask } from "./scheduler.js";
import { MAX_DEADLINE, Scheduler } from "./scheduler.js";
import { checkArguments, parseKernelOptions, parseWorkloadSpec, type RuntimeKernelOptions } from "./spec.js";
import { StartQueue, type StartTicket } from "./start-queue.js";
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
import { Waiters } from "./waiters.js";

const DEFAULT_GRACE_MS = 10_000;
/** After a successful kill, probe the exit this often in case the backend's watch missed it. */
const KILL_PROBE_MS = 5_000;
const KILL_RETRY_MS = 1_000;
/**
 * After this many failed kills in a row, `stop()`, `destroy()` and `waitFor()` of the
 * workload reject with the kill's error instead of waiting on (the backend cannot be
 * reached, say); the kernel keeps retrying the kill.
 */
const KILL_FAILURES_BEFORE_REJECT = 3;
/** Cleanup attempts per workload at shutdown (1 s, then 2 s apart) before leaving it behind. */
const SHUTDOWN_CLEANUP_ATTEMPTS = 3;

const ORDER: Record<WorkloadState, number> = Object.fromEntries(
  WORKLOAD_STATES.map((s, i) => [s, i]),
) as Record<WorkloadState, number>;

/** Everything the kernel keeps about one workload. Never holds secrets. */
interface WorkloadRecord {
  spec: WorkloadSpec;
  profile: Profile;
  runId: string;
  createdAt: number;
  actor: Actor<RunMachine>;
  state: WorkloadState | null;
  /** Restarts so far; the current run is restart number `restarts` (0: the first run). */
  restarts: number;
  /** Whether this record counts against its owner's quota. */
  charged: boolean;
  /** Set while the current run is being adopted by `recover()`. */
  recovered: boolean;
  ticket?: StartTicket;
  abort?: AbortController;
  unwatch?: () => void;
  poll?: PollTarget;
  /** The one scheduled task of the run (deadline, grace, retry, reap or restart: exclusive by state). */
  timer?: ScheduledTask;
  /** Serialises terminate, kill and cleanup for the handle. */
  op?: Promise<unknown>;
  readonly waiters: Waiters;
  startError?: RuntimeKernelError;
  cleanupError?: SerializedError;
  cleanupAttempts: number;
  /** Failed kills of the current run in a row. */
  killFailures: number;
  /** What to do once the current run is destroyed: start a new run. */
  next?: { restart: boolean };
  restartAt?: number;
  /** Epoch ms at which the current run reached `stopped`. */
  stoppedAt?: number;
}

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
  readonly #machine: RunMachine;
  readonly #records = new Map<string, WorkloadRecord>();
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
      const existing = this.#records.get(spec.workloadId);
      if (!existing) {
        this.#charge(spec);
        this.#startRun(this.#newRecord(spec), false);
        return this.#waitFor(spec.workloadId, "running");
      }
      if ((existing.spec.owner ?? "") !== (spec.owner ?? "")) {
        throw new WorkloadConflictError(
          spec.workloadId,
          `Workload "${spec.workloadId}" belongs to another owner`,
        );
      }
      const state = existing.state;
      if (state === "starting" || state === "running") {
        this.#touch(existing);
        return this.#waitFor(spec.workloadId, "running");
      }
      if (state === "stopped" && !existing.next) {
        // Reclaim the old run, then start a new one on the same record. The quota is
        // checked first so that a refusal loses nothing.
        if (!existing.charged) {
          this.#charge(spec);
          existing.charged = true;
        }
        this.#cancelTimer(existing);
        existing.restartAt = undefined;
        existing.spec = spec;
        existing.profile = this.#profiles[spec.profile] as Profile;
        existing.next = { restart: false };
        existing.actor.send({ type: "DESTROY" });
        await this.#waitFor(spec.workloadId, "destroyed").catch((error) => {
          existing.next = undefined;
          this.#uncharge(existing);
          throw error;
        });
        // A destroy() that landed during the reclaim cancelled the new run.
        if (this.#records.get(spec.workloadId) !== existing) {
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
        if (existing.state === "stopping" && existing.killFailures >= KILL_FAILURES_BEFORE_REJECT)
          throw error;
      });
    }
  }

  get(workloadId: string): WorkloadStatus | undefined {
    checkArguments("get", [workloadId]);
    const record = this.#records.get(workloadId);
    return record ? this.#status(record) : undefined;
  }

  list(filter: ListFilter = {}): WorkloadStatus[] {
    checkArguments("list", [filter]);
    const states = filter.state === undefined ? undefined : ([] as WorkloadState[]).concat(filter.state);
    const out: WorkloadStatus[] = [];
    for (const record of this.#records.values()) {
      if (filter.owner !== undefined && record.spec.owner !== filter.owner) continue;
      if (filter.profile !== undefined && record.spec.profile !== filter.profile) continue;
      if (states && (record.state === null || !states.includes(record.state))) continue;
      out.push(this.#status(record));
    }
    return out;
  }

  touch(workloadId: string): void {
    checkArguments("touch", [workloadId]);
    this.#touch(this.#require(workloadId));
  }

  async stop(workloadId: string, options: StopOptions = {}): Promise<WorkloadStatus> {
    checkArguments("stop", [workloadId, options]);
    const record = this.#require(workloadId);
    if (record.state === "stopped" || record.state === "destroyed") {
      if (record.restartAt !== undefined) this.#cancelRestart(record);
      return this.#status(record);
    }
    record.actor.send({
      type: "STOP",
      reason: options.reason ?? "requested",
      ...(options.graceMs !== undefined ? { graceMs: options.graceMs } : {}),
    });
    return this.#waitFor(workloadId, "stopped");
  }

  async destroy(workloadId: string, options: { graceMs?: number } = {}): Promise<void> {
    checkArguments("destroy", [workloadId, options]);
    const record = this.#require(workloadId);
    record.next = undefined;
    record.restartAt = undefined;
    if (record.state === "stopped") this.#cancelTimer(record);
    const done = this.#waitFor(workloadId, "destroyed");
    // Between a destroyed run and the next one the old actor is final: clearing `next` is enough.
    if (record.state !== "destroyed") {
      record.actor.send({
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
    const record = this.#records.get(workloadId);
    if (!record) return Promise.reject(new WorkloadNotFoundError(workloadId));
    const settled = this.#settlement(record, state);
    if (settled) return settled.ok ? Promise.resolve(settled.status) : Promise.reject(settled.error);
    return record.waiters.add(state, options.signal);
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
    const record = this.#require(workloadId);
    if (!this.backend.logs) {
      throw new RuntimeKernelError("UNSUPPORTED", `Backend "${this.backend.name}" cannot stream logs`, {
        workloadId,
      });
    }
    const handle = record.actor.getSnapshot().context.handle;
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
      const known = this.#records.get(id);
      if (known) {
        if (known.runId !== item.handle.runId) leftovers.push(item);
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
      const record = this.#adopt(item);
      if (item.exit) {
        record.actor.send({ type: "EXITED", status: item.exit });
        report.exited.push(this.#status(record));
      } else report.adopted.push(this.#status(record));
      record.recovered = false;
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

  #newRecord(spec: WorkloadSpec): WorkloadRecord {
    const record = {
      spec,
      profile: this.#profiles[spec.profile] as Profile,
      runId: "",
      createdAt: 0,
      actor: undefined as unknown as Actor<RunMachine>,
      state: null,
      restarts: 0,
      charged: true,
      recovered: false,
      cleanupAttempts: 0,
      killFailures: 0,
      waiters: new Waiters(),
    } satisfies WorkloadRecord;
    this.#records.set(spec.workloadId, record);
    return record;
  }

  #lifecycleInput(record: WorkloadRecord): LifecycleInput {
    const { spec, profile } = record;
    return {
      workloadId: spec.workloadId,
      runId: record.runId,
      graceMs: spec.graceMs ?? profile.graceMs ?? DEFAULT_GRACE_MS,
      idleTimeoutMs: spec.idleTimeoutMs ?? profile.idleTimeoutMs ?? 0,
      maxLifetimeMs: spec.maxLifetimeMs ?? profile.maxLifetimeMs ?? 0,
    };
  }

  #startRun(record: WorkloadRecord, restart: boolean): void {
    if (restart) record.restarts++;
    record.runId = randomUUID();
    record.createdAt = this.#clock.now();
    record.state = null;
    record.cleanupAttempts = 0;
    record.killFailures = 0;
    record.startError = undefined;
    record.cleanupError = undefined;
    record.restartAt = undefined;
    record.stoppedAt = undefined;
    record.actor = createActor(this.#machine, { input: this.#lifecycleInput(record) });
    record.actor.start();
  }

  #adopt(item: DiscoveredWorkload): WorkloadRecord {
    const labels = decodeRunLabels(item.labels);
    const profileName = labels.profile ?? "";
    const owner = labels.owner;
    const spec: WorkloadSpec = {
      workloadId: labels.workloadId ?? item.handle.workloadId,
      profile: profileName,
      ...(owner ? { owner } : {}),
    };
    const record = this.#newRecord(spec);
    record.profile = this.#profiles[profileName] ?? { runnable: {} };
    record.runId = item.handle.runId;
    record.createdAt = labels.createdAt || this.#clock.now();
    record.restarts = labels.restart;
    record.recovered = true;
    record.charged = !item.exit;
    if (record.charged) this.#quota.force(owner);
    const maxAt = labels.maxLifetimeAt;
    record.actor = createActor(this.#machine, {
      input: {
        ...this.#lifecycleInput(record),
        adopted: {
          handle: item.handle,
          now: this.#clock.now(),
          // It did run (waitFor "running" must not call it a failed start); when exactly is
          // not recorded, its creation is the closest bound known.
          startedAt: record.createdAt,
          // A label is read from the substrate: only a deadline the scheduler can hold is taken.
          ...(maxAt !== undefined && maxAt <= MAX_DEADLINE ? { maxLifetimeDeadline: maxAt } : {}),
        },
      },
    });
    record.actor.start();
    return record;
  }

  #touch(record: WorkloadRecord): void {
    if (record.state === "running") record.actor.send({ type: "TOUCH", now: this.#clock.now() });
  }

  #require(workloadId: string): WorkloadRecord {
    const record = this.#records.get(workloadId);
    if (!record) throw new WorkloadNotFoundError(workloadId);
    return record;
  }

  /** Sends to the run that scheduled the call, and to no later run of the same workload. */
  #sendTo(record: WorkloadRecord, runId: string, event: LifecycleEvent): void {
    if (record.runId === runId && this.#records.get(record.spec.workloadId) === record)
      record.actor.send(event);
  }

  #setTimer(record: WorkloadRecord, at: number, fire: () => void): void {
    record.timer?.cancel();
    record.timer = this.#scheduler.at(at, fire);
  }

  #cancelTimer(record: WorkloadRecord): void {
    record.timer?.cancel();
    record.timer = undefined;
  }

  /**
   * Runs backend calls for one handle one at a time, in order. With none in flight the call
   * starts at once, inside the transition that asked for it: a burst of stops then reaches
   * the backend while the caller is still issuing the rest, not after it.
   */
  #serial<T>(record: WorkloadRecord, call: () => Promise<T>): Promise<T> {
    // `new Promise` runs the call now and turns a synchronous throw into a rejection.
    const run = record.op ? record.op.then(call, call) : new Promise<T>((resolve) => resolve(call()));
    const release = () => {
      if (record.op === settled) record.op = undefined;
    };
    const settled: Promise<void> = run.then(release, release);
    record.op = settled;
    return run;
  }

  // ── quota ─────────────────────────────────────────────────────────────────

  #charge(spec: WorkloadSpec): void {
    this.#quota.charge(spec.owner, spec.workloadId);
  }

  #uncharge(record: WorkloadRecord): void {
    if (!record.charged) return;
    record.charged = false;
    this.#quota.release(record.spec.owner);
  }

  // ── the machine's actions ─────────────────────────────────────────────────

  #provideActions(): RunMachine {
    // Every action finds its record, and acts only if the run is still the record's current one.
    const on = <P>(fn: (record: WorkloadRecord, context: LifecycleContext, params: P) => void) => {
      return ({ context }: { context: LifecycleContext }, params: P) => {
        const record = this.#records.get(context.workloadId);
        if (record && record.runId === context.runId) fn(record, context, params);
      };
    };
    return runMachine.provide({
      actions: {
        report: on((record, context, params: { state: WorkloadState }) =>
          this.#report(record, context, params.state),
        ),
        requestSlot: on((record) => this.#requestSlot(record)),
        releaseSlot: on((record) => {
          if (record.ticket) this.#starts.withdraw(record.ticket);
          record.ticket = undefined;
        }),
        launch: on((record) => void this.#launch(record)),
        watch: on((record, context) => this.#watch(record, context)),
        arm: on((record, context) => this.#scheduleDeadline(record, context)),
        rearm: on((record, context) => this.#scheduleDeadline(record, context)),
        disarm: on((record) => this.#disarm(record)),
        terminate: on((record, context) => this.#terminate(record, context)),
        kill: on((record, context) => this.#kill(record, context)),
        scheduleKillRetry: on((record) => {
          const runId = record.runId;
          this.#setTimer(record, this.#clock.now() + KILL_RETRY_MS, () =>
            this.#sendTo(record, runId, { type: "RETRY_KILL" }),
          );
        }),
        cleanup: on((record, context) => this.#cleanup(record, context)),
        cleanupFailed: on((record, _context, params: { retryable: boolean }) =>
          this.#cleanupFailed(record, params.retryable),
        ),
      },
    });
  }

  #requestSlot(record: WorkloadRecord): void {
    const runId = record.runId;
    const ticket: StartTicket = {
      owner: record.spec.owner ?? "",
      grant: () => {
        record.ticket = undefined;
        this.#sendTo(record, runId, { type: "LAUNCH" });
      },
    };
    record.ticket = ticket;
    this.#starts.request(ticket);
  }

  async #launch(record: WorkloadRecord): Promise<void> {
    const { spec, profile, runId } = record;
    const abort = new AbortController();
    record.abort = abort;
    let secrets: string[] = [];
    let startTimer: ScheduledTask | undefined;
    try {
      const credentials = this.#options.credentials
        ? await brokerCredentials(this.#options.credentials, {
            workloadId: spec.workloadId,
            runId,
            profile: spec.profile,
            ...(spec.owner !== undefined ? { owner: spec.owner } : {}),
          })
        : {};
      secrets = Object.values(credentials);
      const request: StartRequest = {
        kernelId: this.kernelId,
        workloadId: spec.workloadId,
        runId,
        profile: spec.profile,
        ...(spec.owner !== undefined ? { owner: spec.owner } : {}),
        runnable: { ...profile.runnable, ...spec.runnable },
        env: { ...profile.env, ...spec.env, ...credentials },
        ...(spec.resources || profile.resources
          ? { resources: { ...profile.resources, ...spec.resources } }
          : {}),
        ...(spec.workspace !== undefined ? { workspace: spec.workspace } : {}),
        // parseWorkloadSpec replaced the spec's mounts with the checked set.
        ...(spec.mounts?.length ? { mounts: spec.mounts as WorkloadMount[] } : {}),
        labels: this.#labels(record),
      };
      const timeoutMs = profile.startTimeoutMs ?? 0;
      if (timeoutMs > 0) {
        startTimer = this.#scheduler.after(timeoutMs, () =>
          abort.abort(new StartFailedError(spec.workloadId, `Start timed out after ${timeoutMs} ms`)),
        );
      }
      const handle = await this.backend.start(request, { signal: abort.signal });
      if (this.#records.get(spec.workloadId) !== record || record.runId !== runId) {
        // The run was abandoned while the backend started it: nobody will stop it, so reclaim it now.
        this.#serial(record, () => this.backend.kill(handle))
          .then(() => this.backend.cleanup(handle))
          .catch((error) => this.#hub.fault(asError(error)));
        return;
      }
      this.#sendTo(record, runId, { type: "STARTED", handle, now: this.#clock.now() });
    } catch (thrown) {
      const cause = redactError(thrown, secrets);
      const error = isRuntimeKernelError(cause)
        ? cause
        : new StartFailedError(
            spec.workloadId,
            `Start of "${spec.workloadId}" failed: ${asError(cause).message}`,
            {
              cause,
            },
          );
      record.startError =
        error.code === "START_FAILED"
          ? error
          : new StartFailedError(spec.workloadId, error.message, {
              cause: error,
              retryable: error.retryable,
            });
      this.#sendTo(record, runId, { type: "START_FAILED", error: serializeError(error) });
    } finally {
      startTimer?.cancel();
      record.abort = undefined;
      this.#starts.release();
    }
  }

  #labels(record: WorkloadRecord): Record<string, string> {
    const { spec } = record;
    const { maxLifetimeMs } = record.actor.getSnapshot().context;
    return encodeRunLabels(
      {
        kernelId: this.kernelId,
        workloadId: spec.workloadId,
        runId: record.runId,
        profile: spec.profile,
        ...(spec.owner !== undefined ? { owner: spec.owner } : {}),
        createdAt: record.createdAt,
        // The deadline is fixed at creation time so a recovering kernel can restore it; the
        // run's own deadline (from when it reached running) is at most a start's duration later.
        ...(maxLifetimeMs > 0 ? { maxLifetimeAt: record.createdAt + maxLifetimeMs } : {}),
        restart: record.restarts,
      },
      spec.labels,
    );
  }

  #watch(record: WorkloadRecord, context: LifecycleContext): void {
    if (record.unwatch || record.poll) return;
    const handle = context.handle as WorkloadHandle;
    const runId = record.runId;
    const onExit = (status: ExitStatus) => this.#sendTo(record, runId, { type: "EXITED", status });
    if (this.backend.watchExit) {
      record.unwatch = this.backend.watchExit(handle, onExit);
    } else {
      record.poll = { handle, onExit, onError: (error) => this.#hub.fault(asError(error)) };
      this.#poller.add(record.poll);
    }
  }

  #scheduleDeadline(record: WorkloadRecord, context: LifecycleContext): void {
    const at = nextDeadline(context);
    if (at === undefined) return;
    const runId = record.runId;
    this.#setTimer(record, at, () =>
      this.#sendTo(record, runId, { type: "DEADLINE", now: this.#clock.now() }),
    );
  }

  #disarm(record: WorkloadRecord): void {
    record.unwatch?.();
    record.unwatch = undefined;
    if (record.poll) this.#poller.delete(record.poll);
    record.poll = undefined;
    this.#cancelTimer(record);
  }

  #terminate(record: WorkloadRecord, context: LifecycleContext): void {
    this.#cancelTimer(record);
    const handle = context.handle as WorkloadHandle;
    const { runId } = record;
    const graceMs = context.graceMs;
    this.#serial(record, () => this.backend.terminate(handle, { graceMs })).then(
      () => {
        // The grace runs from when the graceful signal was delivered.
        if (record.actor.getSnapshot().matches({ stopping: "terminating" })) {
          this.#setTimer(record, this.#clock.now() + graceMs, () =>
            this.#sendTo(record, runId, { type: "GRACE_EXPIRED" }),
          );
        }
      },
      (error) => {
        this.#hub.fault(asError(error));
        this.#sendTo(record, runId, { type: "TERMINATE_FAILED", error: serializeError(error) });
      },
    );
  }

  #kill(record: WorkloadRecord, context: LifecycleContext): void {
    this.#cancelTimer(record);
    const handle = context.handle as WorkloadHandle;
    const { runId } = record;
    this.#serial(record, () => this.backend.kill(handle)).then(
      () => {
        record.killFailures = 0;
        this.#probeAfterKill(record, runId, handle);
      },
      (error) => {
        this.#hub.fault(asError(error));
        if (record.runId === runId && ++record.killFailures >= KILL_FAILURES_BEFORE_REJECT) {
          // Whoever waits for the stop learns why it does not come; the retries go on.
          record.waiters.reject("stopped", error);
          record.waiters.reject("destroyed", error);
        }
        this.#sendTo(record, runId, { type: "KILL_FAILED", error: serializeError(error) });
      },
    );
  }

  /** A safety net: if the exit of a killed workload is not pushed, ask for it. */
  #probeAfterKill(record: WorkloadRecord, runId: string, handle: WorkloadHandle): void {
    if (record.runId !== runId || record.state !== "stopping") return;
    this.#setTimer(record, this.#clock.now() + KILL_PROBE_MS, () => {
      probeExit(this.backend, handle).then(
        (status) => {
          if (status === null) this.#probeAfterKill(record, runId, handle);
          else this.#sendTo(record, runId, { type: "EXITED", status });
        },
        (error) => {
          this.#hub.fault(asError(error));
          this.#probeAfterKill(record, runId, handle);
        },
      );
    });
  }

  #cleanup(record: WorkloadRecord, context: LifecycleContext): void {
    this.#cancelTimer(record);
    const { runId } = record;
    const handle = context.handle;
    if (!handle) {
      this.#sendTo(record, runId, { type: "CLEANED" });
      return;
    }
    this.#serial(record, () => this.backend.cleanup(handle)).then(
      () => this.#sendTo(record, runId, { type: "CLEANED" }),
      (error) => {
        const failure = isRuntimeKernelError(error, "CLEANUP_FAILED")
          ? error
          : new CleanupFailedError(record.spec.workloadId, `Cleanup failed: ${asError(error).message}`, {
              cause: error,
              retryable: !isRuntimeKernelError(error) || error.retryable,
            });
        this.#sendTo(record, runId, {
          type: "CLEANUP_FAILED",
          error: serializeError(failure),
          retryable: failure.retryable,
        });
      },
    );
  }

  #cleanupFailed(record: WorkloadRecord, retryable: boolean): void {
    record.cleanupAttempts++;
    const error = new CleanupFailedError(
      record.spec.workloadId,
      `Cleanup of "${record.spec.workloadId}" failed (attempt ${record.cleanupAttempts}); ` +
        (retryable
          ? "the reaper retries"
          : "the backend says it will not pass by itself: fix it, then call destroy()"),
      { retryable },
    );
    record.cleanupError = error.toJSON();
    record.next = undefined;
    this.#hub.fault(error);
    record.waiters.reject("destroyed", error);
    // A permanent failure is left for someone to fix: retrying it forever would only load the backend.
    if (!retryable) return;
    const runId = record.runId;
    this.#setTimer(record, this.#clock.now() + cleanupRetryDelay(record.cleanupAttempts), () =>
      this.#sendTo(record, runId, { type: "DESTROY" }),
    );
  }

  // ── transitions ───────────────────────────────────────────────────────────

  #report(record: WorkloadRecord, context: LifecycleContext, state: WorkloadState): void {
    const from = record.state;
    record.state = state;
    const event = transitionOf(record, record, context, from, state, this.#clock.now());
    if (state === "stopped") {
      record.stoppedAt = event.at;
      this.#onStopped(record, context);
    }
    this.#hub.publish(event);
    if (state === "destroyed") this.#onDestroyed(record, context);
    else this.#settleWaiters(record, context);
  }

  #onStopped(record: WorkloadRecord, context: LifecycleContext): void {
    if (context.destroyRequested) {
      this.#uncharge(record);
      return;
    }
    let delay = this.#closing
      ? undefined
      : restartDelay(record.profile.restart, context.stopReason, record.restarts + 1);
    if (delay !== undefined && !record.charged) {
      // An exit found by recover() was never charged; its restart is live again, within the quota.
      try {
        this.#charge(record.spec);
        record.charged = true;
      } catch {
        delay = undefined;
      }
    }
    if (delay !== undefined) {
      // The quota stays charged: the restart is the same workload going on.
      record.restartAt = this.#clock.now() + delay;
      record.next = { restart: true };
      const runId = record.runId;
      this.#setTimer(record, record.restartAt, () => this.#sendTo(record, runId, { type: "DESTROY" }));
      return;
    }
    this.#uncharge(record);
    this.#scheduleReap(record);
  }

  #scheduleReap(record: WorkloadRecord): void {
    const runId = record.runId;
    this.#setTimer(record, this.#clock.now() + (this.#options.reapAfterMs ?? 60_000), () =>
      this.#sendTo(record, runId, { type: "DESTROY" }),
    );
  }

  #cancelRestart(record: WorkloadRecord): void {
    record.next = undefined;
    record.restartAt = undefined;
    this.#uncharge(record);
    this.#scheduleReap(record);
  }

  #onDestroyed(record: WorkloadRecord, context: LifecycleContext): void {
    this.#cancelTimer(record);
    const next = record.next;
    if (!next || this.#closing) {
      this.#forget(record, context);
      return;
    }
    // Settle the old run's waiters (stop, destroy, reclaim); waits for `running` stay
    // pending for the new run while `next` is set. The new run starts outside this
    // run's action, so that one actor never runs inside another's transition.
    this.#settleWaiters(record, context);
    queueMicrotask(() => {
      if (record.next !== next || this.#closing) this.#forget(record, context);
      else {
        record.next = undefined;
        this.#startRun(record, next.restart);
      }
    });
  }

  /** The workload is gone for good: drop it and release its quota. */
  #forget(record: WorkloadRecord, context: LifecycleContext): void {
    record.next = undefined;
    this.#uncharge(record);
    if (this.#records.get(record.spec.workloadId) === record) this.#records.delete(record.spec.workloadId);
    this.#settleWaiters(record, context);
  }

  // ── waiting ───────────────────────────────────────────────────────────────

  /** Whether a wait for `target` is decided by the record's current state. */
  #settlement(
    record: WorkloadRecord,
    target: WorkloadState,
    context: LifecycleContext = record.actor.getSnapshot().context,
  ): { ok: true; status: WorkloadStatus } | { ok: false; error: unknown } | undefined {
    const state = record.state;
    if (state === null || ORDER[state] < ORDER[target]) return undefined;
    if (target === "running" && record.next) return undefined; // a new run is on its way
    if (target === "running" && state !== "running" && context.startedAt === undefined) {
      return {
        ok: false,
        error:
          record.startError ??
          new StartFailedError(
            record.spec.workloadId,
            `Workload "${record.spec.workloadId}" was stopped (${context.stopReason ?? "requested"}) before it ran`,
          ),
      };
    }
    return { ok: true, status: this.#status(record, context) };
  }

  #settleWaiters(record: WorkloadRecord, context?: LifecycleContext): void {
    record.waiters.settle((target) => this.#settlement(record, target, context));
  }

  // ── status ────────────────────────────────────────────────────────────────

  /**
   * Inside an action the actor's snapshot is still the previous one, so the machine's
   * actions pass the new context in; outside, the snapshot is current.
   */
  #status(
    record: WorkloadRecord,
    context: LifecycleContext = record.actor.getSnapshot().context,
  ): WorkloadStatus {
    return statusOf(record, record, context);
  }

  // ── shutdown ──────────────────────────────────────────────────────────────

  async #shutdown(options: ShutdownOptions): Promise<void> {
    this.#closing = true;
    const records = [...this.#records.values()];
    if (options.leaveRunning) {
      for (const record of records) {
        this.#disarm(record);
        if (record.ticket) this.#starts.withdraw(record.ticket);
        // A start still in flight cannot be left running for recover(): the backend reclaims it.
        record.abort?.abort(new KernelShutDownError({ workloadId: record.spec.workloadId }));
        record.actor.stop();
        // No transition will settle these any more (create, stop, destroy, waitFor).
        const error = new KernelShutDownError({ workloadId: record.spec.workloadId });
        record.waiters.rejectAll(error);
      }
      this.#records.clear();
    } else {
      await Promise.all(
        records.map(async (record) => {
          const id = record.spec.workloadId;
          record.next = undefined;
          record.restartAt = undefined;
          if (record.state === "starting" || record.state === "running") {
            record.actor.send({
              type: "STOP",
              reason: "shutdown",
              ...(options.graceMs !== undefined ? { graceMs: options.graceMs } : {}),
            });
          }
          // A failed cleanup is retried a few times, soon (not on the reaper's backoff, which
          // may have grown to minutes), so that a transient failure leaves nothing behind.
          for (let attempt = 1; ; attempt++) {
            try {
              await this.destroy(id, options.graceMs !== undefined ? { graceMs: options.graceMs } : {});
              break;
            } catch (error) {
              if (isRuntimeKernelError(error, "WORKLOAD_NOT_FOUND")) break;
              if (!isRuntimeKernelError(error, "CLEANUP_FAILED")) {
                this.#hub.fault(asError(error));
                break;
              }
              // Already reported on `error` (by #cleanupFailed); give up after a few attempts,
              // or at once when the backend says the failure will not pass by itself.
              if (attempt >= SHUTDOWN_CLEANUP_ATTEMPTS || !error.retryable) break;
              const retryMs = cleanupRetryDelay(attempt);
              await new Promise<void>((resolve) => this.#scheduler.after(retryMs, resolve));
            }
          }
        }),
      );
    }
    this.#scheduler.clear();
    this.#poller.close();
    this.#hub.endStreams();
    await this.backend.close?.();
    this.#unwatchFaults?.();
  }
}

function createdAt(item: DiscoveredWorkload): number {
  return decodeRunLabels(item.labels).createdAt;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
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
