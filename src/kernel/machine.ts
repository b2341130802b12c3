/**
 * The runtime.v1 lifecycle as one XState v5 machine per run.
 *
 * The machine is pure: it decides, the kernel acts. Every side effect is a named action
 * (`launch`, `terminate`, `kill`, `cleanup`, `report`, ...) whose implementation the kernel
 * provides once with `lifecycleMachine.provide(...)`; backend results come back as events
 * (`STARTED`, `EXITED`, `CLEANED`, ...). Time enters only through events that carry `now`,
 * and deadlines are absolute epoch times in the context, so a snapshot can be persisted
 * and restored, and every transition is testable with xstate's pure `transition()`.
 *
 * ```
 *            ┌───────── start rejected / stop while queued ──────────┐
 *  starting ─┴─ STARTED ─► running ─ STOP, idle, max lifetime ─► stopping ─ EXITED ─► stopped ─ CLEANED ─► destroyed
 *     └─ STOP while launching: STARTED ─► stopping     └───────────── EXITED ─────────────────────┘
 * ```
 * @module
 */
import { assign, type StateMachine, type StateSchema, setup } from "xstate";
import type { ExitStatus, WorkloadHandle } from "../backends/backend.js";
import type { SerializedError } from "../errors.js";
import type { RequestedStopReason, StopReason, WorkloadState } from "./types.js";

/** The machine's context: everything needed to resume a run, as plain JSON. */
export interface LifecycleContext {
  workloadId: string;
  runId: string;
  handle: WorkloadHandle | null;
  /** Grace between terminate and kill for the current or next stop. */
  graceMs: number;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  /** Epoch ms; absent when the idle TTL is disabled or the run is not running. */
  idleDeadline?: number;
  /** Epoch ms; absent when the max lifetime is disabled. */
  maxLifetimeDeadline?: number;
  startedAt?: number;
  stopReason?: StopReason;
  exitCode?: number;
  signal?: string;
  error?: SerializedError;
  /** A stop arrived while the backend was still starting: taken as soon as the handle exists. */
  stopRequested: boolean;
  /** Once stopped, go straight on to cleanup. */
  destroyRequested: boolean;
}

/** Input of a run: fresh (`handle` absent) or adopted by a recovering kernel (`handle` present). */
export interface LifecycleInput {
  workloadId: string;
  runId: string;
  graceMs: number;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  /** Set for a run re-adopted by `recover()`: it starts in `running`. */
  adopted?: { handle: WorkloadHandle; now: number; startedAt?: number; maxLifetimeDeadline?: number };
}

/** Events the kernel sends to a run. */
export type LifecycleEvent =
  | { type: "LAUNCH" }
  | { type: "STARTED"; handle: WorkloadHandle; now: number }
  | { type: "START_FAILED"; error: SerializedError }
  | { type: "STOP"; reason: RequestedStopReason; graceMs?: number }
  | { type: "DESTROY"; graceMs?: number }
  | { type: "TOUCH"; now: number }
  | { type: "DEADLINE"; now: number }
  | { type: "EXITED"; status: ExitStatus }
  | { type: "GRACE_EXPIRED" }
  | { type: "TERMINATE_FAILED"; error: SerializedError }
  | { type: "KILL_FAILED"; error: SerializedError }
  | { type: "RETRY_KILL" }
  | { type: "CLEANED" }
  /** `retryable: false`: the backend says the failure will not pass by itself (default true). */
  | { type: "CLEANUP_FAILED"; error: SerializedError; retryable?: boolean };

/** The stop reason a run gets when it ends by itself. */
export function stopReasonForExit(status: ExitStatus): StopReason {
  if (status.lost) return "lost";
  if (status.oomKilled) return "oom";
  return status.exitCode === 0 ? "completed" : "failed";
}

/** What an exit records in the context. Built without spreads: it runs for every exit. */
function exitFields(
  status: ExitStatus,
  stopReason: StopReason | undefined,
): Pick<LifecycleContext, "exitCode" | "signal" | "stopReason"> {
  const fields: Pick<LifecycleContext, "exitCode" | "signal" | "stopReason"> = { stopReason };
  if (status.exitCode !== null) fields.exitCode = status.exitCode;
  if (status.signal) fields.signal = status.signal;
  return fields;
}

/** The deadline that has passed at `now`, if any; the max lifetime wins a tie. */
export function dueDeadline(
  context: LifecycleContext,
  now: number,
): "max_lifetime" | "idle_timeout" | undefined {
  if (context.maxLifetimeDeadline !== undefined && now >= context.maxLifetimeDeadline) return "max_lifetime";
  if (context.idleDeadline !== undefined && now >= context.idleDeadline) return "idle_timeout";
  return undefined;
}

/** The earliest deadline of a running run, if any. */
export function nextDeadline(context: LifecycleContext): number | undefined {
  const { idleDeadline: idle, maxLifetimeDeadline: max } = context;
  if (idle === undefined) return max;
  if (max === undefined) return idle;
  return Math.min(idle, max);
}

const noop = () => {};

/** Whether the stop this event starts has no grace: the event's own, else the run's. */
function noGrace(context: LifecycleContext, event: LifecycleEvent): boolean {
  const graceMs = event.type === "STOP" || event.type === "DESTROY" ? event.graceMs : undefined;
  return (graceMs ?? context.graceMs) === 0;
}

/**
 * The transitions into `stopping`, straight to the sub-state the stop starts in: `killing`
 * when it has no grace, else `terminating`. Choosing on the way in, rather than in an
 * eventless sub-state, spares every stop a microstep, and stops come in bursts.
 */
function toStopping<const A>(actions: A) {
  return [
    { guard: "noGrace", target: "#lifecycle.stopping.killing", actions },
    { target: "#lifecycle.stopping.terminating", actions },
  ] as const;
}

/** The transitions into `stopped`: on to `cleaning` at once when a destroy is pending. */
function toStopped<const A>(actions: A) {
  return [
    { guard: "destroyRequested", target: "#lifecycle.stopped.cleaning", actions },
    { target: "#lifecycle.stopped", actions },
  ] as const;
}

/**
 * The lifecycle machine with its full internal typing (sub-states included), for the kernel
 * and this module's tests. Its actions are placeholders: the kernel provides them.
 */
export const runMachine = setup({
  types: {
    context: {} as LifecycleContext,
    events: {} as LifecycleEvent,
    input: {} as LifecycleInput,
  },
  actions: {
    /** Emit the transition event for entering `state`. */
    report: (_, _params: { state: WorkloadState }) => {},
    /** Ask the start queue for a slot; it answers with LAUNCH. */
    requestSlot: noop,
    /** Release the start queue slot and forget the queue entry. */
    releaseSlot: noop,
    /** Call backend.start; answer STARTED or START_FAILED. */
    launch: noop,
    /** Watch for the exit (pushed by the backend, or the shared poll). */
    watch: noop,
    /** Schedule the next deadline. */
    arm: noop,
    /** Schedule the next deadline again (after a touch moved it). */
    rearm: noop,
    /** Stop watching and forget timers. */
    disarm: noop,
    /** Call backend.terminate and time the grace: answer GRACE_EXPIRED or TERMINATE_FAILED. */
    terminate: noop,
    /** Call backend.kill; answer KILL_FAILED on failure. */
    kill: noop,
    /** Schedule RETRY_KILL after a failed kill. */
    scheduleKillRetry: noop,
    /** Call backend.cleanup; answer CLEANED or CLEANUP_FAILED. */
    cleanup: noop,
    /** A cleanup failed; the kernel retries it later unless it is not retryable. */
    cleanupFailed: (_, _params: { retryable: boolean }) => {},
    // What each way of ending records in the context.
    recordStop: assign({
      stopReason: ({ event }) => (event as Extract<LifecycleEvent, { type: "STOP" }>).reason,
      graceMs: ({ context, event }) => (event as { graceMs?: number }).graceMs ?? context.graceMs,
    }),
    recordDestroy: assign({
      stopReason: "requested",
      destroyRequested: true,
      graceMs: ({ context, event }) => (event as { graceMs?: number }).graceMs ?? context.graceMs,
    }),
    recordDeadline: assign({
      stopReason: ({ context, event }) => dueDeadline(context, (event as { now: number }).now),
    }),
    recordExit: assign(({ event }) => {
      const { status } = event as Extract<LifecycleEvent, { type: "EXITED" }>;
      return exitFields(status, stopReasonForExit(status));
    }),
    // The reason stays the stop's; a workload lost while stopping is still reported lost.
    recordExitWhileStopping: assign(({ context, event }) => {
      const { status } = event as Extract<LifecycleEvent, { type: "EXITED" }>;
      return exitFields(status, status.lost ? "lost" : context.stopReason);
    }),
    recordStartFailure: assign({
      stopReason: "start_failed",
      error: ({ event }) => (event as Extract<LifecycleEvent, { type: "START_FAILED" }>).error,
    }),
    recordHandle: assign({
      handle: ({ event }) => (event as Extract<LifecycleEvent, { type: "STARTED" }>).handle,
    }),
  },
  guards: {
    isAdopted: ({ context }) => context.handle !== null,
    stopRequested: ({ context }) => context.stopRequested,
    destroyRequested: ({ context }) => context.destroyRequested,
    deadlineDue: ({ context, event }) =>
      event.type === "DEADLINE" && dueDeadline(context, event.now) !== undefined,
    /** The grace the stop this event starts will have (the event's own, else the context's) is 0. */
    noGrace: ({ context, event }) => noGrace(context, event),
    stopRequestedNoGrace: ({ context, event }) => context.stopRequested && noGrace(context, event),
    deadlineDueNoGrace: ({ context, event }) =>
      event.type === "DEADLINE" && dueDeadline(context, event.now) !== undefined && noGrace(context, event),
  },
}).createMachine({
  id: "lifecycle",
  context: ({ input }) => ({
    workloadId: input.workloadId,
    runId: input.runId,
    handle: input.adopted?.handle ?? null,
    graceMs: input.graceMs,
    idleTimeoutMs: input.idleTimeoutMs,
    maxLifetimeMs: input.maxLifetimeMs,
    ...(input.adopted
      ? {
          startedAt: input.adopted.startedAt,
          // The idle window restarts at adoption: activity while no kernel watched is unknown.
          ...(input.idleTimeoutMs > 0 ? { idleDeadline: input.adopted.now + input.idleTimeoutMs } : {}),
          maxLifetimeDeadline: input.adopted.maxLifetimeDeadline,
        }
      : {}),
    stopRequested: false,
    destroyRequested: false,
  }),
  initial: "init",
  states: {
    init: {
      always: [{ guard: "isAdopted", target: "running" }, { target: "starting" }],
    },
    starting: {
      entry: { type: "report", params: { state: "starting" } },
      initial: "queued",
      states: {
        queued: {
          entry: "requestSlot",
          on: {
            LAUNCH: "launching",
            // Nothing was started yet: cancel without calling the backend.
            STOP: {
              target: "#lifecycle.stopped",
              actions: ["releaseSlot", assign({ stopReason: ({ event }) => event.reason })],
            },
            DESTROY: {
              target: "#lifecycle.stopped.cleaning",
              actions: ["releaseSlot", assign({ stopReason: "requested", destroyRequested: true })],
            },
          },
        },
        launching: {
          entry: "launch",
          on: {
            STOP: {
              actions: assign({
                stopRequested: true,
                stopReason: ({ context, event }) => context.stopReason ?? event.reason,
                graceMs: ({ context, event }) => event.graceMs ?? context.graceMs,
              }),
            },
            DESTROY: {
              actions: assign({
                stopRequested: true,
                destroyRequested: true,
                stopReason: ({ context }) => context.stopReason ?? "requested",
                graceMs: ({ context, event }) => event.graceMs ?? context.graceMs,
              }),
            },
          },
        },
      },
      on: {
        STARTED: [
          // It never reaches running, so `startedAt` stays unset: callers waiting for
          // running learn that this run did not get there.
          {
            guard: "stopRequestedNoGrace",
            target: "#lifecycle.stopping.killing",
            actions: ["recordHandle", "watch"],
          },
          { guard: "stopRequested", target: "stopping", actions: ["recordHandle", "watch"] },
          {
            target: "running",
            actions: assign({
              handle: ({ event }) => event.handle,
              startedAt: ({ event }) => event.now,
              idleDeadline: ({ context, event }) =>
                context.idleTimeoutMs > 0 ? event.now + context.idleTimeoutMs : undefined,
              maxLifetimeDeadline: ({ context, event }) =>
                context.maxLifetimeMs > 0 ? event.now + context.maxLifetimeMs : undefined,
            }),
          },
        ],
        START_FAILED: toStopped("recordStartFailure"),
      },
    },
    running: {
      entry: [{ type: "report", params: { state: "running" } }, "watch", "arm"],
      on: {
        TOUCH: {
          guard: ({ context }) => context.idleTimeoutMs > 0,
          actions: assign({ idleDeadline: ({ context, event }) => event.now + context.idleTimeoutMs }),
        },
        DEADLINE: [
          { guard: "deadlineDueNoGrace", target: "#lifecycle.stopping.killing", actions: "recordDeadline" },
          { guard: "deadlineDue", target: "stopping", actions: "recordDeadline" },
          { actions: "rearm" },
        ],
        STOP: toStopping("recordStop"),
        DESTROY: toStopping("recordDestroy"),
        EXITED: toStopped("recordExit"),
      },
    },
    stopping: {
      entry: { type: "report", params: { state: "stopping" } },
      initial: "terminating",
      states: {
        terminating: {
          entry: "terminate",
          on: {
            GRACE_EXPIRED: "killing",
            TERMINATE_FAILED: "killing",
            // The run's grace is not 0 here, so only a stop or destroy asking for none kills at once.
            STOP: { guard: "noGrace", target: "killing" },
            DESTROY: [
              { guard: "noGrace", target: "killing", actions: assign({ destroyRequested: true }) },
              { actions: assign({ destroyRequested: true }) },
            ],
          },
        },
        killing: {
          entry: "kill",
          on: {
            KILL_FAILED: { actions: "scheduleKillRetry" },
            RETRY_KILL: { target: "killing", reenter: true },
            DESTROY: { actions: assign({ destroyRequested: true }) },
          },
        },
      },
      on: {
        EXITED: toStopped("recordExitWhileStopping"),
      },
    },
    stopped: {
      entry: ["disarm", { type: "report", params: { state: "stopped" } }],
      initial: "idle",
      states: {
        idle: {
          on: { DESTROY: "cleaning" },
        },
        cleaning: {
          entry: "cleanup",
          on: {
            CLEANUP_FAILED: {
              target: "idle",
              actions: [
                assign({ destroyRequested: false }),
                { type: "cleanupFailed", params: ({ event }) => ({ retryable: event.retryable !== false }) },
              ],
            },
          },
        },
      },
      on: { CLEANED: "destroyed" },
    },
    destroyed: {
      type: "final",
      entry: { type: "report", params: { state: "destroyed" } },
    },
  },
});

/** The machine's internal type, for the kernel providing its actions. */
export type RunMachine = typeof runMachine;

/**
 * A snapshot's `value` as the public type has it: one of the caller-visible states, and
 * below it a sub-state whose name is not part of the contract.
 */
export type LifecycleStateValue = "init" | WorkloadState | { [S in WorkloadState]?: string };

/**
 * The public type of {@link lifecycleMachine}: its context, events, input and action names
 * are typed, its state values only down to the five caller-visible states. The sub-states
 * (queued, launching, terminating, killing, cleaning, ...) are how this version implements
 * the lifecycle, and may change in any release; {@link visibleState} maps a value to its state.
 */
export type LifecycleMachine =
  RunMachine extends StateMachine<
    infer TContext,
    infer TEvent,
    infer TChildren,
    infer TActor,
    infer TAction,
    infer TGuard,
    infer TDelay,
    infer _TStateValue,
    infer TTag,
    infer TInput,
    infer TOutput,
    infer TEmitted,
    infer TMeta,
    infer _TStateSchema,
    infer TTransitionMeta
  >
    ? StateMachine<
        TContext,
        TEvent,
        TChildren,
        TActor,
        TAction,
        TGuard,
        TDelay,
        LifecycleStateValue,
        TTag,
        TInput,
        TOutput,
        TEmitted,
        TMeta,
        StateSchema,
        TTransitionMeta
      >
    : never;

/**
 * The runtime.v1 lifecycle machine, for hosts that test against it. Its actions are
 * placeholders (the kernel provides them). Use `transition(lifecycleMachine, snapshot, event)`
 * from xstate to drive it without a kernel, and {@link visibleState} to read the state.
 */
export const lifecycleMachine: LifecycleMachine = runMachine as unknown as LifecycleMachine;

/** The caller-visible state of a snapshot value (sub-states collapse to their parent). */
export function visibleState(value: unknown): WorkloadState | "init" {
  if (typeof value === "string") return value as WorkloadState | "init";
  return Object.keys(value as object)[0] as WorkloadState;
}
