/**
 * Names that reach the Docker engine. The kernel's ids need not fit Docker's name grammar
 * (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`) nor a hostname, so they are sanitised to DNS-1123 labels
 * here and kept in full in the container's labels, which stay the authority.
 * @module
 */
import { dns1123, runName } from "../names.js";

export { dns1123 };

/** The container name of one run: `<prefix>-<workloadId>-<hash of runId>` (see `runName`). */
export const containerName: (prefix: string, workloadId: string, runId: string) => string = runName;

/** The container's hostname: the workload id as a DNS-1123 label (`workload` when nothing is left). */
export function hostnameFor(workloadId: string): string {
  return dns1123(workloadId) || "workload";
}

/** Whether `prefix` is usable as a name prefix: a DNS-1123 label of at most 20 characters. */
export function isNamePrefix(prefix: string): boolean {
  return prefix.length > 0 && prefix.length <= 20 && /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/.test(prefix);
}
