/**
 * A Pod's log as `logs` yields it: the main container's lines, timestamped by the kubelet,
 * followed or not. It owns only the log request; it never looks at the Pod's state.
 * @module
 */

import { WorkloadLostError } from "../../errors.js";
import type { LogEntry, LogOptions } from "../backend.js";
import { type KubeApi, toKernelError } from "./api.js";
import { MAIN_CONTAINER } from "./pod-spec.js";

/** Where a Pod's log is read: the run's Pod and workload. */
export interface PodLogTarget {
  workloadId: string;
  namespace: string;
  pod: string;
}

/** The main container's log lines of `target.pod`, as `Backend.logs` yields them. */
export async function* podLogs(
  api: KubeApi,
  target: PodLogTarget,
  options: LogOptions,
): AsyncIterable<LogEntry> {
  const q = new URLSearchParams({ container: MAIN_CONTAINER, timestamps: "true" });
  if (options.follow) q.set("follow", "true");
  if (options.tail !== undefined) q.set("tailLines", String(options.tail));
  const lines: LogEntry[] = [];
  let wake: (() => void) | undefined;
  let end: { status?: number; error?: unknown; body?: string } | undefined;
  const request = api.stream(
    "logs",
    `/api/v1/namespaces/${encodeURIComponent(target.namespace)}/pods/${encodeURIComponent(target.pod)}/log?${q}`,
    {
      onLine: (raw) => {
        lines.push(logEntry(raw));
        wake?.();
      },
      onEnd: (result) => {
        end = result;
        wake?.();
      },
    },
  );
  const onAbort = () => request.abort();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    for (;;) {
      while (lines.length > 0) yield lines.shift() as LogEntry;
      if (end) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
      wake = undefined;
    }
    if (options.signal?.aborted) return;
    if (end.status !== undefined && end.status !== 200) {
      if (end.status === 404)
        throw new WorkloadLostError(target.workloadId, `Pod ${target.pod} no longer exists`);
      throw toKernelError(
        { code: end.status, body: end.body },
        `reading the logs of Pod ${target.pod}`,
        target.workloadId,
      );
    }
    if (end.error !== undefined && end.status === undefined)
      throw toKernelError(end.error, `reading the logs of Pod ${target.pod}`, target.workloadId);
  } finally {
    options.signal?.removeEventListener("abort", onAbort);
    request.abort();
  }
}

/** One kubelet line: `<RFC 3339 time> <text>`, or the text alone when it has no time. */
function logEntry(raw: string): LogEntry {
  const space = raw.indexOf(" ");
  const stamp = space > 0 ? Date.parse(raw.slice(0, space)) : Number.NaN;
  return Number.isNaN(stamp)
    ? { stream: "stdout", line: raw }
    : { stream: "stdout", line: raw.slice(space + 1), at: stamp };
}
