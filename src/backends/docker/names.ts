/**
 * Names that reach the Docker engine. The kernel's ids need not fit Docker's name grammar
 * (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`) nor a hostname, so they are sanitised to DNS-1123 labels
 * here and kept in full in the container's labels, which stay the authority.
 * @module
 */
import { createHash } from "node:crypto";

/** Longest DNS-1123 label, and so the longest container name and hostname we produce. */
const MAX_LABEL = 63;

/** Hex digits of the run's hash in a container name (40 bits: collisions need ~10^6 runs of one workload). */
const RUN_HASH_LENGTH = 10;

function shortHash(value: string, length: number): string {
  return createHash("sha256").update(value).digest("hex").slice(0, length);
}

/**
 * `value` as a DNS-1123 label: lower-cased, every run of characters outside `[a-z0-9-]`
 * replaced by one dash, dashes trimmed at both ends, at most 63 characters. May be empty.
 */
export function dns1123(value: string): string {
  return value
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, MAX_LABEL)
    .replace(/-+$/, "");
}

/**
 * The container name of one run: `<prefix>-<workloadId>-<hash of runId>`, a DNS-1123 label.
 * A hash of the run, not a prefix of its id, keeps two runs apart even when their ids share a
 * prefix (time-ordered ids do), so a new run never collides with the previous run's container
 * that is still being removed. Since the run's hash alone makes the name unique, a workload id
 * too long to fit is simply cut: the name is for people, the labels are for the kernel.
 */
export function containerName(prefix: string, workloadId: string, runId: string): string {
  const head = dns1123(prefix) || "rk";
  const run = shortHash(runId, RUN_HASH_LENGTH);
  const room = MAX_LABEL - head.length - run.length - 2;
  const workload = (dns1123(workloadId) || "w").slice(0, room).replace(/-+$/, "");
  return `${head}-${workload}-${run}`;
}

/** The container's hostname: the workload id as a DNS-1123 label (`workload` when nothing is left). */
export function hostnameFor(workloadId: string): string {
  return dns1123(workloadId) || "workload";
}

/** Whether `prefix` is usable as a name prefix: a DNS-1123 label of at most 20 characters. */
export function isNamePrefix(prefix: string): boolean {
  return prefix.length > 0 && prefix.length <= 20 && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(prefix);
}
