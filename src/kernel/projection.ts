/**
 * The status and event projection: what callers see of a workload (`WorkloadStatus`) and of
 * a transition (`TransitionEvent`), read from its spec, its run and the machine's context.
 * Owns the shape of what is reported (never a secret); it must not change any state.
 * @module
 */
import type { SerializedError } from "../errors.js";
import type { LifecycleContext } from "./machine.js";
import type { TransitionEvent, WorkloadSpec, WorkloadState, WorkloadStatus } from "./types.js";

/** What the projection reads of a workload. */
export interface WorkloadView {
  spec: WorkloadSpec;
  /** Restarts so far; the current run is restart number `restarts` (0: the first run). */
  restarts: number;
}

/** What the projection reads of a run. */
export interface RunView {
  runId: string;
  createdAt: number;
  state: WorkloadState | null;
  recovered: boolean;
  stoppedAt?: number;
  restartAt?: number;
  cleanupError?: SerializedError;
}

/** The event for a run's transition from `from` into `state` at `at` (the hub numbers it). */
export function transitionOf(
  workload: WorkloadView,
  run: RunView,
  context: LifecycleContext,
  from: WorkloadState | null,
  state: WorkloadState,
  at: number,
): Omit<TransitionEvent, "seq"> {
  const { spec } = workload;
  const { workloadId, owner, profile } = spec;
  const { runId } = run;
  // Two literals rather than a conditional spread (an object and a copy per event): the
  // fields keep their order either way.
  const event: Omit<TransitionEvent, "seq"> =
    owner === undefined
      ? { workloadId, runId, profile, from, state, at }
      : { workloadId, runId, owner, profile, from, state, at };
  if (state === "stopped") {
    if (context.exitCode !== undefined) event.exitCode = context.exitCode;
    if (context.signal !== undefined) event.signal = context.signal;
    if (context.stopReason !== undefined) event.stopReason = context.stopReason;
    if (context.error !== undefined) event.error = context.error;
  } else if (state === "stopping" && context.stopReason !== undefined) {
    event.stopReason = context.stopReason;
  } else if (state === "running" && context.handle?.ports) {
    event.ports = context.handle.ports;
  }
  if (workload.restarts > 0) event.restart = workload.restarts;
  if (run.recovered) event.recovered = true;
  if (spec.traceId !== undefined) event.traceId = spec.traceId;
  return event;
}

/**
 * The workload's status. Inside a machine action the actor's snapshot is still the previous
 * one, so callers there pass the new context in; outside, the snapshot's is current.
 */
export function statusOf(workload: WorkloadView, run: RunView, context: LifecycleContext): WorkloadStatus {
  const { spec, restarts } = workload;
  const { workloadId, owner, profile } = spec;
  const { runId, createdAt } = run;
  const state = run.state ?? "starting";
  const status: WorkloadStatus =
    owner === undefined
      ? { workloadId, runId, profile, state, createdAt, restarts }
      : { workloadId, runId, owner, profile, state, createdAt, restarts };
  if (context.startedAt !== undefined) status.startedAt = context.startedAt;
  if (run.stoppedAt !== undefined) status.stoppedAt = run.stoppedAt;
  if (context.exitCode !== undefined) status.exitCode = context.exitCode;
  if (context.signal !== undefined) status.signal = context.signal;
  if (
    context.stopReason !== undefined &&
    (state === "stopping" || state === "stopped" || state === "destroyed")
  ) {
    status.stopReason = context.stopReason;
  }
  const error = context.error ?? run.cleanupError;
  if (error !== undefined) status.error = error;
  if (run.restartAt !== undefined) status.restartAt = run.restartAt;
  if (context.handle?.ports) status.ports = context.handle.ports;
  if (state === "running") {
    if (context.idleDeadline !== undefined) status.idleDeadline = context.idleDeadline;
    if (context.maxLifetimeDeadline !== undefined) status.maxLifetimeDeadline = context.maxLifetimeDeadline;
  }
  if (spec.traceId !== undefined) status.traceId = spec.traceId;
  return status;
}
