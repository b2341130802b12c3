/**
 * The kernel's policies as pure functions: restart decisions and backoff, quotas,
 * the reaper's retry backoff. The kernel calls them; tests call them directly.
 * @module
 */
import type { RestartPolicy, StopReason } from "./types.js";

/** Defaults of a restart policy. */
export const RESTART_DEFAULTS = { maxRestarts: 3, backoffMs: 1_000, maxBackoffMs: 60_000 } as const;

/** Stop reasons after which `on-failure` restarts: the workload failed by itself. */
const FAILURES: ReadonlySet<StopReason> = new Set(["failed", "oom", "lost"]);

/**
 * The delay before restart number `attempt` (1-based), or `undefined` when the policy
 * says not to restart. A start that failed is not restarted: it is a configuration
 * problem that a restart would only repeat.
 */
export function restartDelay(
  policy: RestartPolicy | undefined,
  stopReason: StopReason | undefined,
  attempt: number,
): number | undefined {
  if (policy?.policy !== "on-failure" || !stopReason || !FAILURES.has(stopReason)) return undefined;
  const max = policy.maxRestarts ?? RESTART_DEFAULTS.maxRestarts;
  if (attempt > max) return undefined;
  const base = policy.backoffMs ?? RESTART_DEFAULTS.backoffMs;
  const cap = policy.maxBackoffMs ?? RESTART_DEFAULTS.maxBackoffMs;
  return Math.min(cap, base * 2 ** (attempt - 1));
}

/** The quota of `owner`; `Infinity` when none is configured. */
export function quotaFor(quota: number | ((owner: string) => number) | undefined, owner: string): number {
  if (quota === undefined) return Number.POSITIVE_INFINITY;
  return typeof quota === "function" ? quota(owner) : quota;
}

/** The delay before retrying a failed cleanup for the `attempt`-th time: 1 s doubling to 5 minutes. */
export function cleanupRetryDelay(attempt: number): number {
  return Math.min(300_000, 1_000 * 2 ** Math.max(0, attempt - 1));
}
