/**
 * Waits on the shared Pod watch: for a created Pod to start, and for a deleted one to go. They
 * only watch; creating, deleting and asking the server are the backend's.
 * @module
 */
import { StartAbortedError, StartFailedError } from "../../errors.js";
import { exitOf, fatalPendingReason, hasStarted, pendingReason } from "./pod-status.js";
import type { PodWatch } from "./pod-watch.js";

/** The Pod a wait is about: its name and uid (empty when not known), and its workload. */
export interface WatchedPod {
  workloadId: string;
  pod: string;
  uid: string;
}

/** How a start waits: its abort signal, its timeout, and where the watch's changes come in. */
export interface StartWait {
  signal: AbortSignal;
  timeoutMs: number;
  /** Hands over the check to run on each change of the Pod (the caller subscribed before creating it). */
  listen: (onChange: () => void) => void;
}

/** Resolves once the Pod runs or has exited; rejects on a fatal or timed-out Pending, deletion, or abort. */
export function waitStarted(watch: PodWatch, target: WatchedPod, wait: StartWait): Promise<void> {
  const { signal, timeoutMs } = wait;
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const settle = (error?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener("abort", onAbort);
      if (error === undefined) resolve();
      else reject(error);
    };
    let seen = false;
    const check = () => {
      const pod = watch.pods.get(target.pod);
      if (!pod || pod.metadata?.uid !== target.uid) {
        // Seen, then gone: deleted (by someone else) before it ran.
        if (seen)
          settle(new StartFailedError(target.workloadId, `Pod ${target.pod} was deleted before it started`));
        return;
      }
      seen = true;
      if (hasStarted(pod) || exitOf(pod)) return settle();
      const fatal = fatalPendingReason(pod);
      if (fatal) settle(new StartFailedError(target.workloadId, `Pod ${target.pod} cannot start: ${fatal}`));
    };
    const onAbort = () => settle(new StartAbortedError(target.workloadId));
    // Aborted while the Pod (or its Secret's owner) was being written: no event will come.
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    timer = setTimeout(() => {
      const pod = watch.pods.get(target.pod);
      const reason = pod ? pendingReason(pod) : "the Pod is not visible";
      settle(
        new StartFailedError(
          target.workloadId,
          `Pod ${target.pod} did not start within ${timeoutMs} ms: ${reason}`,
        ),
      );
    }, timeoutMs);
    wait.listen(check);
    check();
  });
}

/**
 * Resolves `true` once the watch no longer holds `target` (by name, and by uid when known),
 * `false` if it still does after `timeoutMs`.
 */
export function waitGone(watch: PodWatch, target: WatchedPod, timeoutMs: number): Promise<boolean> {
  const present = () => {
    const pod = watch.pods.get(target.pod);
    return pod !== undefined && (!target.uid || pod.metadata?.uid === target.uid);
  };
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => {
      unsubscribe();
      resolve(false);
    }, timeoutMs);
    const unsubscribe = watch.subscribe(target.pod, () => {
      if (present()) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(true);
    });
    if (!present()) {
      clearTimeout(timer);
      unsubscribe();
      resolve(true);
    }
  });
}
