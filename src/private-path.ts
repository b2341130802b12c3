/**
 * Whether a path is private to this process's user: what the library requires of a
 * directory or file before it trusts what is in it (a socket it connects to, a journal it
 * acts on). Another user who can write to it, or rename it away from a directory above,
 * could put their own in its place. A leaf module: each caller turns a problem into its
 * own typed error.
 * @module
 */
import { existsSync, lstatSync, mkdirSync, realpathSync, type Stats, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";

/** What a private path should be. */
export type PrivateKind = "directory" | "file" | "socket";

/** A path that is not private, and why. */
export interface PathProblem {
  path: string;
  problem: string;
}

const GROUP_OR_OTHER_WRITE = 0o022;
const STICKY = 0o1000;

function euid(): number {
  return process.geteuid?.() ?? 0;
}

function mode(stats: Stats): string {
  return `mode ${(stats.mode & 0o7777).toString(8).padStart(4, "0")}`;
}

function isKind(stats: Stats, kind: PrivateKind): boolean {
  if (kind === "directory") return stats.isDirectory();
  return kind === "file" ? stats.isFile() : stats.isSocket();
}

/** Why `stats`, meant to be a private `kind`, is not one (no links, this user's, writable by nobody else). */
function ownProblem(stats: Stats, kind: PrivateKind): string | undefined {
  if (stats.isSymbolicLink()) return `is a symbolic link, not a ${kind}`;
  if (!isKind(stats, kind)) return `is not a ${kind}`;
  const uid = euid();
  if (stats.uid !== uid) return `belongs to uid ${stats.uid}, not to this process's user (uid ${uid})`;
  if ((stats.mode & GROUP_OR_OTHER_WRITE) !== 0)
    return `is writable by other users (${mode(stats)}; want ${kind === "directory" ? "0700" : "0600"})`;
  return undefined;
}

/**
 * The first directory above `path` (lexically, and again after resolving links; those that
 * do not exist yet are skipped) that does not belong to root or this user, or that others
 * may write to without the sticky bit (as /tmp has): they could rename what is below it
 * and put their own in its place.
 */
function ancestorProblem(path: string): PathProblem | undefined {
  const uid = euid();
  let existing = dirname(path);
  while (!existsSync(existing)) existing = dirname(existing);
  const real = join(realpathSync(existing), relative(existing, path));
  for (const start of new Set([path, real])) {
    for (let dir = dirname(start), child = start; child !== dir; child = dir, dir = dirname(dir)) {
      const stats = lstatSync(dir, { throwIfNoEntry: false });
      if (!stats) continue;
      if (stats.uid !== 0 && stats.uid !== uid) {
        return {
          path: dir,
          problem: `belongs to uid ${stats.uid} (neither root nor this user), who could replace ${child}`,
        };
      }
      if (stats.isDirectory() && (stats.mode & GROUP_OR_OTHER_WRITE) !== 0 && (stats.mode & STICKY) === 0) {
        return {
          path: dir,
          problem: `is writable by other users and not sticky (${mode(stats)}): they could replace ${child}`,
        };
      }
    }
  }
  return undefined;
}

/**
 * Creates `dir` (mode 0700, whatever the umask) when missing, once the directories above it
 * are found safe, and returns what keeps it from being private to this user, if anything.
 */
export function ensurePrivateDir(dir: string): PathProblem | undefined {
  const above = ancestorProblem(dir);
  if (above) return above;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const link = lstatSync(dir);
  if (link.isSymbolicLink() && link.uid !== 0 && link.uid !== euid()) {
    return { path: dir, problem: `is a symbolic link that belongs to uid ${link.uid}` };
  }
  const problem = ownProblem(statSync(dir), "directory");
  return problem ? { path: dir, problem } : undefined;
}

/** What keeps `path`, if it exists, from being a private `kind` of this user's (inside a private directory). */
export function privateEntryProblem(path: string, kind: PrivateKind): PathProblem | undefined {
  const stats = lstatSync(path, { throwIfNoEntry: false });
  const problem = stats && ownProblem(stats, kind);
  return problem ? { path, problem } : undefined;
}

/**
 * What keeps the file at `path` (links followed: a Kubernetes Secret volume is a tree of
 * them) from being trusted to hold a secret: another user who may write it could swap the
 * token or key we authenticate with, and one who may read it has it already. The rule is
 * PostgreSQL's for its key file: the file is this user's, readable by nobody else, or
 * root's and readable by its group at most.
 */
export function secretFileProblem(path: string): PathProblem | undefined {
  const stats = statSync(path, { throwIfNoEntry: false });
  if (!stats) return { path, problem: "does not exist" };
  if (!stats.isFile()) return { path, problem: "is not a regular file" };
  const uid = euid();
  const perm = stats.mode & 0o777;
  if (stats.uid === uid && (perm & 0o077) === 0) return undefined;
  if (stats.uid === 0 && (perm & 0o037) === 0) return undefined;
  if (stats.uid !== uid && stats.uid !== 0) {
    return { path, problem: `belongs to uid ${stats.uid}, not to this process's user (uid ${uid}) or root` };
  }
  return { path, problem: `is open to other users (${mode(stats)}; want 0600, or 0640 if root's)` };
}
