/**
 * `createRuntimeKernel()`: the host's entry point, and the public API's checks and
 * orchestration (idempotent create, stop, destroy, recovery, shutdown). The workloads, their
 * runs and the policies on each transition live in workload-table.ts; the machine's actions
 * against the Backend port in run-effects.ts.
 * @module
 */
import type { Backend, DiscoveredWorkload, LogEntry, LogOptions } from "../backends/backend.js";
import { decodeRunLabels } from "../backends/run-labels.js";
import { type Clock, systemClock } from "../clock.js";
import {
  isRuntimeKernelError,
  KernelShutDownError,
  RuntimeKernelError,
  StartFailedError,
  WorkloadConflictError,
} from "../errors.js";
import type { RuntimeKernel, ShutdownOptions, StopOptions } from "./api.js";
import { EventHub, type EventStreamOptions, type KernelEventMap } from "./events.js";
import { ExitPoller } from "./exit-poller.js";
import { cleanupRetryDelay } from "./policies.js";
import { OwnerQuota } from "./quota.js";
import type { Workload } from "./run.js";
import { asError, KILL_FAILURES_BEFORE_REJECT } from "./run-effects.js";
import { Scheduler } from "./scheduler.js";
import { checkArguments, parseKernelOptions, parseWorkloadSpec, type RuntimeKernelOptions } from "./spec.js";
import { StartQueue } from "./start-queue.js";
import type {
  ListFilter,
  Profile,
  RecoveryReport,
  TransitionEvent,
  WorkloadSpec,
  WorkloadState,
  WorkloadStatus,
} from "./types.js";
import { WorkloadTable } from "./workload-table.js";

/** Cleanup attempts per workload at shutdown (1 s, then 2 s apart) before leaving it behind. */
const SHUTDOWN_CLEANUP_ATTEMPTS = 3;

class Kernel implements RuntimeKernel {
  readonly kernelId: string;
  readonly backend: Backend;
  readonly #profiles: Record<string, Profile>;
  readonly #clock: Clock;
  readonly #hub: EventHub;
  readonly #scheduler: Scheduler;
  readonly #poller: ExitPoller;
  readonly #table: WorkloadTable;
  #closed: Promise<void> | undefined;
  readonly #unwatchFaults: (() => void) | undefined;

  constructor(options: RuntimeKernelOptions) {
    parseKernelOptions(options);
    this.kernelId = options.kernelId ?? "default";
    this.backend = options.backend;
    this.#profiles = options.profiles ?? {};
    this.#clock = options.clock ?? systemClock;
    this.#hub = new EventHub(options.eventRetention ?? 1_000);
    this.#scheduler = new Scheduler(this.#clock);
    this.#poller = new ExitPoller(this.backend, this.#scheduler, options.pollIntervalMs ?? 1_000);
    this.#table = new WorkloadTable({
      kernelId: this.kernelId,
      backend: this.backend,
      clock: this.#clock,
      scheduler: this.#scheduler,
      starts: new StartQueue(options.maxConcurrentStarts ?? 32),
      poller: this.#poller,
      hub: this.#hub,
      quota: new OwnerQuota(options.ownerQuota),
      credentials: options.credentials,
      profiles: this.#profiles,
      reapAfterMs: options.reapAfterMs ?? 60_000,
    });
    this.#unwatchFaults = this.backend.watchFaults?.((error) => this.#hub.fault(error));
  }

  // ── public API ────────────────────────────────────────────────────────────

  async create(input: WorkloadSpec): Promise<WorkloadStatus> {
    const table = this.#table;
    if (table.closing) throw new KernelShutDownError();
    const spec = parseWorkloadSpec(input, this.#profiles);
    for (;;) {
      // Again on every pass: a create that waited may resume while the kernel shuts down.
      if (table.closing) throw new KernelShutDownError();
      const existing = table.get(spec.workloadId);
      if (!existing) {
        table.charge(spec);
        table.create(spec);
        return await table.waitFor(spec.workloadId, "running");
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
        table.touch(existing);
        return table.waitFor(spec.workloadId, "running");
      }
      if (state === "stopped" && !run.next) {
        // Reclaim the old run, then start a new one for the same workload. The quota is
        // checked first so that a refusal loses nothing.
        if (!existing.charged) {
          table.charge(spec);
          existing.charged = true;
        }
        run.cancelTimer();
        run.restartAt = undefined;
        existing.spec = spec;
        existing.profile = this.#profiles[spec.profile] as Profile;
        run.next = { restart: false };
        run.actor.send({ type: "DESTROY" });
        await table.waitFor(spec.workloadId, "destroyed").catch((error) => {
          existing.run.next = undefined;
          table.uncharge(existing);
          throw error;
        });
        // A destroy() that landed during the reclaim cancelled the new run.
        if (table.get(spec.workloadId) !== existing) {
          throw new StartFailedError(
            spec.workloadId,
            `Workload "${spec.workloadId}" was destroyed before it ran`,
          );
        }
        return table.waitFor(spec.workloadId, "running");
      }
      // Stopping, or a new run is already being prepared: wait for that and look again
      // (unless the stop cannot be done: its kill keeps failing).
      await table.waitFor(spec.workloadId, state === "stopping" ? "stopped" : "running").catch((error) => {
        const current = existing.run;
        if (current.state === "stopping" && current.killFailures >= KILL_FAILURES_BEFORE_REJECT) throw error;
      });
    }
  }

  get(workloadId: string): WorkloadStatus | undefined {
    checkArguments("get", [workloadId]);
    const workload = this.#table.get(workloadId);
    return workload ? this.#table.status(workload) : undefined;
  }

  list(filter: ListFilter = {}): WorkloadStatus[] {
    checkArguments("list", [filter]);
    const states = filter.state === undefined ? undefined : ([] as WorkloadState[]).concat(filter.state);
    const out: WorkloadStatus[] = [];
    for (const workload of this.#table.values()) {
      if (filter.owner !== undefined && workload.spec.owner !== filter.owner) continue;
      if (filter.profile !== undefined && workload.spec.profile !== filter.profile) continue;
      const state = workload.run.state;
      if (states && (state === null || !states.includes(state))) continue;
      out.push(this.#table.status(workload));
    }
    return out;
  }

  touch(workloadId: string): void {
    checkArguments("touch", [workloadId]);
    this.#table.touch(this.#table.require(workloadId));
  }

  async stop(workloadId: string, options: StopOptions = {}): Promise<WorkloadStatus> {
    checkArguments("stop", [workloadId, options]);
    const workload = this.#table.require(workloadId);
    const run = workload.run;
    if (run.state === "stopped" || run.state === "destroyed") {
      if (run.restartAt !== undefined) this.#table.cancelRestart(run);
      return this.#table.status(workload);
    }
    run.actor.send({
      type: "STOP",
      reason: options.reason ?? "requested",
      graceMs: options.graceMs,
    });
    // Awaited rather than returned: an async function that returns a promise adopts it
    // through an extra promise and job, once per stop of a burst of thousands.
    return await this.#table.waitFor(workloadId, "stopped");
  }

  async destroy(workloadId: string, options: { graceMs?: number } = {}): Promise<void> {
    checkArguments("destroy", [workloadId, options]);
    const run = this.#table.require(workloadId).run;
    run.next = undefined;
    run.restartAt = undefined;
    if (run.state === "stopped") run.cancelTimer();
    const done = this.#table.waitFor(workloadId, "destroyed");
    // Between a destroyed run and the next one the old actor is final: clearing `next` is enough.
    if (run.state !== "destroyed") {
      run.actor.send({ type: "DESTROY", graceMs: options.graceMs });
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
    return this.#table.waitFor(workloadId, state, options.signal);
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
    const workload = this.#table.require(workloadId);
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
    if (this.#table.closing) throw new KernelShutDownError();
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
      const known = this.#table.get(id);
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
      const run = this.#table.adopt(item);
      if (item.exit) {
        run.actor.send({ type: "EXITED", status: item.exit });
        report.exited.push(this.#table.status(run.workload));
      } else report.adopted.push(this.#table.status(run.workload));
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

  // ── shutdown ──────────────────────────────────────────────────────────────

  async #shutdown(options: ShutdownOptions): Promise<void> {
    const table = this.#table;
    table.closing = true;
    const workloads = [...table.values()];
    if (options.leaveRunning) {
      for (const workload of workloads) {
        const run = workload.run;
        table.effects.disarm(run);
        table.effects.releaseSlot(run);
        // A start still in flight cannot be left running for recover(): the backend reclaims it.
        run.abort?.abort(new KernelShutDownError({ workloadId: workload.spec.workloadId }));
        run.actor.stop();
        // No transition will settle these any more (create, stop, destroy, waitFor).
        workload.waiters.rejectAll(new KernelShutDownError({ workloadId: workload.spec.workloadId }));
      }
      table.clear();
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
      run.actor.send({ type: "STOP", reason: "shutdown", graceMs });
    }
    // A failed cleanup is retried a few times, soon (not on the reaper's backoff, which
    // may have grown to minutes), so that a transient failure leaves nothing behind.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.destroy(id, { graceMs });
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
