/**
 * Reading a Pod's status the way the port needs it: an exit, or why it is still Pending.
 * Pure functions over the API objects.
 * @module
 */

import { type ExitStatus, exitCodeForSignal, signalForExitCode } from "../backend.js";
import type { V1ContainerStatus, V1Pod } from "./models.js";
import { MAIN_CONTAINER } from "./pod-spec.js";

function mainStatus(pod: V1Pod): V1ContainerStatus | undefined {
  const all = pod.status?.containerStatuses ?? [];
  return all.find((c) => c.name === MAIN_CONTAINER) ?? all[0];
}

function fromTerminated(status: V1ContainerStatus | undefined): ExitStatus | undefined {
  const t = status?.state?.terminated;
  if (!t) return undefined;
  const exit: ExitStatus = { exitCode: t.exitCode };
  const signal = t.signal ? undefined : signalForExitCode(t.exitCode);
  if (signal) exit.signal = signal;
  if (t.reason === "OOMKilled") exit.oomKilled = true;
  return exit;
}

/**
 * The run's exit when the Pod shows one, else `null` (Pending, Running, Unknown).
 *
 * Succeeded is 0; Failed is the main container's terminated exit code (OOMKilled sets
 * `oomKilled`). A Failed Pod whose container never terminated (evicted, rejected by the node)
 * has no exit code: it is reported `lost`. A Pod being deleted whose container has already
 * terminated has exited, whatever its phase still says.
 */
export function exitOf(pod: V1Pod): ExitStatus | null {
  const phase = pod.status?.phase;
  const terminated = fromTerminated(mainStatus(pod));
  if (phase === "Succeeded") return terminated ?? { exitCode: 0 };
  if (phase === "Failed") return terminated ?? { exitCode: null, lost: true };
  if (pod.metadata?.deletionTimestamp && terminated) return terminated;
  return null;
}

/**
 * The exit of a Pod that is gone, from its last known state.
 * @param deletedWithGrace the grace period (seconds) of the kernel's own delete, if it asked for one;
 *   `undefined` when the Pod was deleted behind the kernel's back.
 */
export function exitOfDeleted(pod: V1Pod | undefined, deletedWithGrace: number | undefined): ExitStatus {
  const known = pod ? exitOf(pod) : null;
  if (known) return known;
  const terminated = pod ? fromTerminated(mainStatus(pod)) : undefined;
  if (terminated) return terminated;
  if (deletedWithGrace === undefined) return { exitCode: null, lost: true };
  // The kernel deleted it before any exit was recorded: what the kubelet does on delete.
  const signal = deletedWithGrace === 0 ? "SIGKILL" : "SIGTERM";
  return { exitCode: exitCodeForSignal(signal), signal };
}

/** Waiting reasons after which a Pod will not start by itself: fail the start at once. */
const FATAL_WAITING = new Set(["ErrImageNeverPull", "InvalidImageName", "CreateContainerConfigError"]);

/** Whether the Pod has started (Running, or already exited). */
export function hasStarted(pod: V1Pod): boolean {
  const phase = pod.status?.phase;
  return phase === "Running" || phase === "Succeeded" || phase === "Failed";
}

/** Why a Pod is still Pending, in the scheduler's or the kubelet's words. */
export function pendingReason(pod: V1Pod): string {
  const parts: string[] = [];
  const scheduled = pod.status?.conditions?.find((c) => c.type === "PodScheduled");
  if (scheduled && scheduled.status === "False")
    parts.push(
      `not scheduled: ${scheduled.reason ?? "Unschedulable"}${scheduled.message ? `: ${scheduled.message}` : ""}`,
    );
  const waiting = mainStatus(pod)?.state?.waiting;
  if (waiting?.reason)
    parts.push(`container waiting: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ""}`);
  if (parts.length === 0 && pod.status?.reason)
    parts.push(`${pod.status.reason}${pod.status.message ? `: ${pod.status.message}` : ""}`);
  if (parts.length === 0)
    parts.push(pod.spec?.nodeName ? `pending on node ${pod.spec.nodeName}` : "pending, not scheduled yet");
  return parts.join("; ");
}

/** A reason that makes waiting pointless (image missing with `Never` pull policy, ...), or undefined. */
export function fatalPendingReason(pod: V1Pod): string | undefined {
  const waiting = mainStatus(pod)?.state?.waiting;
  if (waiting?.reason && FATAL_WAITING.has(waiting.reason)) return pendingReason(pod);
  return undefined;
}
