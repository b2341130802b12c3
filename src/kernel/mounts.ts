/**
 * The mount set of a run: the profile's fixed mounts, then the spec's, each source checked
 * against the profile's `mountRoots` after resolving symbolic links, so neither `../` nor a
 * link planted in a root can reach outside it. A workspace is a one-entry set and obeys the
 * same roots when the profile names any.
 * @module
 */
import { realpathSync } from "node:fs";
import { isAbsolute, posix, relative, resolve, sep } from "node:path";
import type { WorkloadMount } from "../backends/backend.js";
import { InvalidSpecError, type ValidationIssue } from "../errors.js";
import type { Mount, Profile, WorkloadSpec } from "./types.js";

/** Whether `path` is `root` or lies below it (both absolute and normalized). */
function within(path: string, root: string): boolean {
  const rel = relative(root, path);
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

/**
 * A root as the kernel's host sees it: resolved when it exists here. A root that does not
 * exist on this host (a node path of a remote cluster) is kept as written; sources under it
 * are then checked lexically, and the substrate (kubelet's `subPath` check) refuses links.
 */
function resolveRoot(root: string): { root: string; local: boolean } {
  try {
    return { root: realpathSync(root), local: true };
  } catch {
    return { root: resolve(root), local: false };
  }
}

/** Where `source` really is, and the first root that holds it; or why it is refused. */
function placeSource(
  source: string,
  roots: ReadonlyArray<{ root: string; local: boolean; given: string }>,
): { source: string; root: string } | { refused: string } {
  if (!isAbsolute(source)) return { refused: "must be an absolute host path" };
  const lexical = resolve(source);
  let real: string | undefined;
  for (const root of roots) {
    if (root.local) {
      try {
        real ??= realpathSync(source);
      } catch {
        return { refused: "does not exist on this host" };
      }
    }
    const path = root.local ? (real as string) : lexical;
    if (within(path, root.root)) return { source: path, root: root.root };
  }
  const names = roots.map((r) => r.given).join(", ");
  return { refused: `must lie in one of the profile's mountRoots (${names}) once links are resolved` };
}

/** Why a mount target is refused, if it is. */
function targetProblem(target: string): string | undefined {
  if (!target.startsWith("/")) return "must be an absolute path inside the workload";
  if (posix.normalize(target) !== target && `${posix.normalize(target)}/` !== target)
    return "must be a normalized path (no '.', '..' or '//')";
  if (target === "/") return "must not be the workload's root";
  return undefined;
}

/**
 * Checks and resolves the mounts of `spec` under `profile`: returns the run's mount set (the
 * profile's `mounts`, then the spec's) with each source resolved, and the workspace resolved
 * when the profile names `mountRoots`. Throws {@link InvalidSpecError} naming each bad
 * field (`mounts.1.source`, `workspace`); nothing has been started.
 */
export function resolveMounts(
  spec: WorkloadSpec,
  profile: Profile,
): { mounts: WorkloadMount[]; workspace?: string } {
  const issues: ValidationIssue[] = [];
  const roots = (profile.mountRoots ?? []).map((given) => ({ ...resolveRoot(given), given }));
  const mounts: WorkloadMount[] = [];
  const targets = new Set<string>();
  const add = (mount: Mount, path: string, place: ReturnType<typeof placeSource>) => {
    if ("refused" in place) issues.push({ path: `${path}.source`, message: place.refused });
    const problem = targetProblem(mount.target);
    const target = mount.target.length > 1 ? mount.target.replace(/\/$/, "") : mount.target;
    if (problem) issues.push({ path: `${path}.target`, message: problem });
    else if (targets.has(target))
      issues.push({ path: `${path}.target`, message: `${target} is mounted twice` });
    targets.add(target);
    if (!("refused" in place)) mounts.push({ ...place, target, readOnly: mount.readOnly ?? false });
  };
  // The profile's own mounts are the host's choice: each is its own root.
  for (const [i, mount] of (profile.mounts ?? []).entries()) {
    const { root, local } = resolveRoot(mount.source);
    const place = isAbsolute(mount.source)
      ? { source: root, root: local ? root : resolve(mount.source) }
      : { refused: "must be an absolute host path" };
    add(mount, `profile.mounts.${i}`, place);
  }
  const specMounts = spec.mounts ?? [];
  if (specMounts.length > 0 && roots.length === 0) {
    issues.push({
      path: "mounts",
      message: `profile "${spec.profile}" names no mountRoots, so its specs may not mount host directories`,
    });
  } else {
    for (const [i, mount] of specMounts.entries()) {
      add(mount, `mounts.${i}`, placeSource(mount.source, roots));
    }
  }
  let workspace = spec.workspace;
  if (workspace !== undefined && roots.length > 0) {
    const place = placeSource(workspace, roots);
    if ("refused" in place) issues.push({ path: "workspace", message: place.refused });
    else workspace = place.source;
  }
  if (issues.length > 0) throw new InvalidSpecError(issues, { workloadId: spec.workloadId });
  return { mounts, workspace };
}
