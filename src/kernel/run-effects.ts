/**
 * The machine's actions for one run, carried out against the Backend port: the start slot,
 * credentials and the start itself, the exit watch, deadlines, terminate and kill with their
 * grace and retries, cleanup. Owns these backend calls and their timers; it must not publish
 * transitions or touch the workload table: it answers the machine through `send`.
 * @module
 */
import type {
  Backend,
  ExitStatus,
  StartRequest,
  WorkloadHandle,
  WorkloadMount,
} from "../backends/backend.js";
import { encodeRunLabels } from "../backends/run-labels.js";
import type { Clock } from "../clock.js";
import { CleanupFailedError, isRuntimeKernelError, StartFailedError, serializeError } from "../errors.js";
import { brokerCredentials, type CredentialBroker, redactError } from "./credentials.js";
import type { EventHub } from "./events.js";
import { type ExitPoller, probeExit } from "./exit-poller.js";
import { type LifecycleContext, type LifecycleEvent, nextDeadline } from "./machine.js";
import { cleanupRetryDelay } from "./policies.js";
import type { Run } from "./run.js";
import type { ScheduledTask, Scheduler } from "./scheduler.js";
import type { StartQueue, StartTicket } from "./start-queue.js";

/** After a successful kill, probe the exit this often in case the backend's watch missed it. */
const KILL_PROBE_MS = 5_000;
const KILL_RETRY_MS = 1_000;
/**
 * After this many failed kills in a row, `stop()`, `destroy()` and `waitFor()` of the
 * workload reject with the kill's error instead of waiting on (the backend cannot be
 * reached, say); the kernel keeps retrying the kill.
 */
export const KILL_FAILURES_BEFORE_REJECT = 3;

/** What the effects work with, all owned by the kernel. */
export interface RunEffectsContext {
  kernelId: string;
  backend: Backend;
  clock: Clock;
  scheduler: Scheduler;
  starts: StartQueue;
  poller: ExitPoller;
  hub: EventHub;
  credentials: CredentialBroker | undefined;
  /** Sends to `run`'s actor if it is still its workload's current run; drops the event otherwise. */
  send(run: Run, event: LifecycleEvent): void;
  /** Whether `run` is still its workload's current run. */
  isCurrent(run: Run): boolean;
}

/** The implementations of the machine's side-effect actions. */
export class RunEffects {
  readonly #c: RunEffectsContext;

  constructor(context: RunEffectsContext) {
    this.#c = context;
  }

  requestSlot(run: Run): void {
    const ticket: StartTicket = {
      owner: run.workload.spec.owner ?? "",
      grant: () => {
        run.ticket = undefined;
        this.#c.send(run, { type: "LAUNCH" });
      },
    };
    run.ticket = ticket;
    this.#c.starts.request(ticket);
  }

  releaseSlot(run: Run): void {
    if (run.ticket) this.#c.starts.withdraw(run.ticket);
    run.ticket = undefined;
  }

  async launch(run: Run): Promise<void> {
    const { backend, scheduler } = this.#c;
    const { spec, profile } = run.workload;
    const { runId } = run;
    const abort = new AbortController();
    run.abort = abort;
    let secrets: string[] = [];
    let startTimer: ScheduledTask | undefined;
    try {
      const credentials = this.#c.credentials
        ? await brokerCredentials(this.#c.credentials, {
            workloadId: spec.workloadId,
            runId,
            profile: spec.profile,
            ...(spec.owner !== undefined ? { owner: spec.owner } : {}),
          })
        : {};
      secrets = Object.values(credentials);
      const request: StartRequest = {
        kernelId: this.#c.kernelId,
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
        labels: this.#labels(run),
      };
      const timeoutMs = profile.startTimeoutMs ?? 0;
      if (timeoutMs > 0) {
        startTimer = scheduler.after(timeoutMs, () =>
          abort.abort(new StartFailedError(spec.workloadId, `Start timed out after ${timeoutMs} ms`)),
        );
      }
      const handle = await backend.start(request, { signal: abort.signal });
      if (!this.#c.isCurrent(run)) {
        // The run was abandoned while the backend started it: nobody will stop it, so reclaim it now.
        run
          .serial(() => backend.kill(handle))
          .then(() => backend.cleanup(handle))
          .catch((error) => this.#c.hub.fault(asError(error)));
        return;
      }
      this.#c.send(run, { type: "STARTED", handle, now: this.#c.clock.now() });
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
      run.startError =
        error.code === "START_FAILED"
          ? error
          : new StartFailedError(spec.workloadId, error.message, {
              cause: error,
              retryable: error.retryable,
            });
      this.#c.send(run, { type: "START_FAILED", error: serializeError(error) });
    } finally {
      startTimer?.cancel();
      run.abort = undefined;
      this.#c.starts.release();
    }
  }

  #labels(run: Run): Record<string, string> {
    const { spec, restarts } = run.workload;
    const { maxLifetimeMs } = run.context;
    return encodeRunLabels(
      {
        kernelId: this.#c.kernelId,
        workloadId: spec.workloadId,
        runId: run.runId,
        profile: spec.profile,
        owner: spec.owner,
        createdAt: run.createdAt,
        // The deadline is fixed at creation time so a recovering kernel can restore it; the
        // run's own deadline (from when it reached running) is at most a start's duration later.
        ...(maxLifetimeMs > 0 ? { maxLifetimeAt: run.createdAt + maxLifetimeMs } : {}),
        restart: restarts,
        traceId: spec.traceId,
      },
      spec.labels,
    );
  }

  watch(run: Run, context: LifecycleContext): void {
    if (run.unwatch || run.poll) return;
    const { backend } = this.#c;
    const handle = context.handle as WorkloadHandle;
    const onExit = (status: ExitStatus) => this.#c.send(run, { type: "EXITED", status });
    if (backend.watchExit) {
      run.unwatch = backend.watchExit(handle, onExit);
    } else {
      run.poll = { handle, onExit, onError: (error) => this.#c.hub.fault(asError(error)) };
      this.#c.poller.add(run.poll);
    }
  }

  scheduleDeadline(run: Run, context: LifecycleContext): void {
    const at = nextDeadline(context);
    if (at === undefined) return;
    run.setTimer(this.#c.scheduler, at, () =>
      this.#c.send(run, { type: "DEADLINE", now: this.#c.clock.now() }),
    );
  }

  disarm(run: Run): void {
    run.unwatch?.();
    run.unwatch = undefined;
    if (run.poll) this.#c.poller.delete(run.poll);
    run.poll = undefined;
    run.cancelTimer();
  }

  terminate(run: Run, context: LifecycleContext): void {
    run.cancelTimer();
    const handle = context.handle as WorkloadHandle;
    const graceMs = context.graceMs;
    run
      .serial(() => this.#c.backend.terminate(handle, { graceMs }))
      .then(
        () => {
          // The grace runs from when the graceful signal was delivered.
          if (run.actor.getSnapshot().matches({ stopping: "terminating" })) {
            run.setTimer(this.#c.scheduler, this.#c.clock.now() + graceMs, () =>
              this.#c.send(run, { type: "GRACE_EXPIRED" }),
            );
          }
        },
        (error) => {
          this.#c.hub.fault(asError(error));
          this.#c.send(run, { type: "TERMINATE_FAILED", error: serializeError(error) });
        },
      );
  }

  kill(run: Run, context: LifecycleContext): void {
    run.cancelTimer();
    const handle = context.handle as WorkloadHandle;
    run
      .serial(() => this.#c.backend.kill(handle))
      .then(
        () => {
          run.killFailures = 0;
          this.#probeAfterKill(run, handle);
        },
        (error) => {
          this.#c.hub.fault(asError(error));
          if (this.#c.isCurrent(run) && ++run.killFailures >= KILL_FAILURES_BEFORE_REJECT) {
            // Whoever waits for the stop learns why it does not come; the retries go on.
            run.workload.waiters.reject("stopped", error);
            run.workload.waiters.reject("destroyed", error);
          }
          this.#c.send(run, { type: "KILL_FAILED", error: serializeError(error) });
        },
      );
  }

  scheduleKillRetry(run: Run): void {
    run.setTimer(this.#c.scheduler, this.#c.clock.now() + KILL_RETRY_MS, () =>
      this.#c.send(run, { type: "RETRY_KILL" }),
    );
  }

  /** A safety net: if the exit of a killed workload is not pushed, ask for it. */
  #probeAfterKill(run: Run, handle: WorkloadHandle): void {
    if (!this.#c.isCurrent(run) || run.state !== "stopping") return;
    run.setTimer(this.#c.scheduler, this.#c.clock.now() + KILL_PROBE_MS, () => {
      probeExit(this.#c.backend, handle).then(
        (status) => {
          if (status === null) this.#probeAfterKill(run, handle);
          else this.#c.send(run, { type: "EXITED", status });
        },
        (error) => {
          this.#c.hub.fault(asError(error));
          this.#probeAfterKill(run, handle);
        },
      );
    });
  }

  cleanup(run: Run, context: LifecycleContext): void {
    run.cancelTimer();
    const handle = context.handle;
    if (!handle) {
      this.#c.send(run, { type: "CLEANED" });
      return;
    }
    const { workloadId } = run.workload.spec;
    run
      .serial(() => this.#c.backend.cleanup(handle))
      .then(
        () => this.#c.send(run, { type: "CLEANED" }),
        (error) => {
          const failure = isRuntimeKernelError(error, "CLEANUP_FAILED")
            ? error
            : new CleanupFailedError(workloadId, `Cleanup failed: ${asError(error).message}`, {
                cause: error,
                retryable: !isRuntimeKernelError(error) || error.retryable,
              });
          this.#c.send(run, {
            type: "CLEANUP_FAILED",
            error: serializeError(failure),
            retryable: failure.retryable,
          });
        },
      );
  }

  /** A cleanup failed: waiters for `destroyed` learn why, and the reaper retries unless it cannot pass. */
  cleanupFailed(run: Run, retryable: boolean): void {
    const { workloadId } = run.workload.spec;
    run.cleanupAttempts++;
    const error = new CleanupFailedError(
      workloadId,
      `Cleanup of "${workloadId}" failed (attempt ${run.cleanupAttempts}); ` +
        (retryable
          ? "the reaper retries"
          : "the backend says it will not pass by itself: fix it, then call destroy()"),
      { retryable },
    );
    run.cleanupError = error.toJSON();
    run.next = undefined;
    this.#c.hub.fault(error);
    run.workload.waiters.reject("destroyed", error);
    // A permanent failure is left for someone to fix: retrying it forever would only load the backend.
    if (!retryable) return;
    run.setTimer(this.#c.scheduler, this.#c.clock.now() + cleanupRetryDelay(run.cleanupAttempts), () =>
      this.#c.send(run, { type: "DESTROY" }),
    );
  }
}

/** An Error for whatever was thrown. */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
