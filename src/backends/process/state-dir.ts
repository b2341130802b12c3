/**
 * What the process backend requires of its state dir before it talks to a supervisor there:
 * whoever can write to it could answer on its socket (and receive every workload's
 * environment and credentials), or write the journal that says which process groups the
 * supervisor may signal. So the state dir, the log dir and every file the backend uses in
 * them must belong to this process's user and be writable by no one else, and no directory
 * above them may let another user replace them. The rule is the one the runtime.v1 service
 * applies to its socket directory.
 * @module
 */
import { existsSync, lstatSync, mkdirSync, realpathSync, type Stats, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { BackendUnavailableError } from "../../errors.js";

/**
 * The state dir (or log dir, or a file in them) could be written by another user: the
 * backend refuses to use it. Not retryable: someone has to fix the ownership or mode named
 * in the message (`path`, `problem`).
 */
export class UnsafeStateDirError extends BackendUnavailableError {
  /** The file or directory at fault. */
  readonly path: string;
  /** What is wrong with it. */
  readonly problem: string;
  constructor(path: string, problem: string) {
    super(`The process backend refuses ${path}: ${problem}`, { retryable: false });
    this.path = path;
    this.problem = problem;
  }
}

/** The files the backend and its supervisor use in the state dir, and what each must be. */
const STATE_FILES = [
  ["supervisor.sock", "socket"],
  ["journal.ndjson", "file"],
  ["journal.key", "file"],
  ["supervisor.log", "file"],
  ["supervisor.cjs", "file"],
] as const;

type Kind = "directory" | "file" | "socket";

const GROUP_OR_OTHER_WRITE = 0o022;
const STICKY = 0o1000;

function euid(): number {
  return process.geteuid?.() ?? 0;
}

function mode(stats: Stats): string {
  return `mode ${(stats.mode & 0o7777).toString(8).padStart(4, "0")}`;
}

function isKind(stats: Stats, kind: Kind): boolean {
  if (kind === "directory") return stats.isDirectory();
  return kind === "file" ? stats.isFile() : stats.isSocket();
}

/** Why `stats` (of `path`, meant to be a `kind` of ours) is not to be trusted, if it is not. */
function ownProblem(stats: Stats, kind: Kind): string | undefined {
  if (stats.isSymbolicLink()) return `is a symbolic link, not a ${kind}`;
  if (!isKind(stats, kind)) return `is not a ${kind}`;
  const uid = euid();
  if (stats.uid !== uid) return `belongs to uid ${stats.uid}, not to this process's user (uid ${uid})`;
  if ((stats.mode & GROUP_OR_OTHER_WRITE) !== 0)
    return `is writable by other users (${mode(stats)}; want ${kind === "directory" ? "0700" : "0600"})`;
  return undefined;
}

/**
 * Checks every directory above `path` that exists (lexically, and again after resolving
 * links): each must belong to root or this user, and one that others may write to must be
 * sticky (as /tmp is), or they could rename what is below and put their own in its place.
 */
function checkAncestors(path: string): void {
  const uid = euid();
  let existing = dirname(path);
  while (!existsSync(existing)) existing = dirname(existing);
  const real = join(realpathSync(existing), relative(existing, path));
  for (const start of new Set([path, real])) {
    for (let dir = dirname(start), child = start; child !== dir; child = dir, dir = dirname(dir)) {
      const stats = lstatSync(dir, { throwIfNoEntry: false });
      if (!stats) continue; // made below, by this user
      if (stats.uid !== 0 && stats.uid !== uid) {
        throw new UnsafeStateDirError(
          dir,
          `belongs to uid ${stats.uid} (neither root nor this user), who could replace ${child}`,
        );
      }
      if (stats.isDirectory() && (stats.mode & GROUP_OR_OTHER_WRITE) !== 0 && (stats.mode & STICKY) === 0) {
        throw new UnsafeStateDirError(
          dir,
          `is writable by other users and not sticky (${mode(stats)}): they could replace ${child}`,
        );
      }
    }
  }
}

/** Creates `dir` (mode 0700) if missing, and refuses it unless only this user can change it. */
function ensurePrivateDir(dir: string): void {
  checkAncestors(dir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const link = lstatSync(dir);
  if (link.isSymbolicLink() && link.uid !== 0 && link.uid !== euid()) {
    throw new UnsafeStateDirError(dir, `is a symbolic link that belongs to uid ${link.uid}`);
  }
  const problem = ownProblem(statSync(dir), "directory");
  if (problem) throw new UnsafeStateDirError(dir, problem);
}

/** Refuses `path` if it exists and is not a `kind` that only this user can change. */
function checkEntry(path: string, kind: Kind): void {
  const stats = lstatSync(path, { throwIfNoEntry: false });
  const problem = stats && ownProblem(stats, kind);
  if (problem) throw new UnsafeStateDirError(path, problem);
}

/**
 * Creates the state and log dirs (mode 0700) when missing, and checks them, the directories
 * above them and the files the backend uses in them; throws {@link UnsafeStateDirError}
 * naming the first path another user could write to. Run before every connection to the
 * supervisor, so nothing (no spec, no environment) is sent to a socket someone else made.
 */
export function ensureStateDir(stateDir: string, logDir: string): void {
  ensurePrivateDir(stateDir);
  for (const [name, kind] of STATE_FILES) checkEntry(join(stateDir, name), kind);
  ensurePrivateDir(logDir);
  checkEntry(join(logDir, ".pool"), "directory");
}
