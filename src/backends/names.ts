/**
 * Names that reach a substrate (container names, Pod and Secret names, hostnames) must be
 * DNS-1123 labels; the kernel's ids need not fit, so they are sanitised here, and the full
 * ids travel in labels. Shared by every backend that names things.
 * @module
 */
import { createHash } from "node:crypto";

/** Longest DNS-1123 label. */
export const MAX_LABEL = 63;

/** The first `length` hex digits of the SHA-256 of `value`. */
export function shortHash(value: string, length: number): string {
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
 * The name of one run: `<prefix>-<workloadId>-<hash of runId>`, a DNS-1123 label. A hash of
 * the run, not a prefix of its id, keeps two runs apart even when their ids share a prefix
 * (time-ordered ids do), so a new run never collides with the old run's container or Pod
 * that is still going away. A workload id too long to fit is cut and marked with a hash of
 * its full form: the name is for people, the labels are for the kernel.
 */
export function runName(prefix: string, workloadId: string, runId: string): string {
  const head = dns1123(prefix) || "rk";
  const run = shortHash(runId, 10);
  let workload = dns1123(workloadId) || "w";
  const room = MAX_LABEL - head.length - run.length - 2;
  if (workload.length > room) {
    workload = `${workload.slice(0, Math.max(1, room - 7)).replace(/-+$/, "")}-${shortHash(workloadId, 6)}`;
  }
  return `${head}-${workload}-${run}`;
}
