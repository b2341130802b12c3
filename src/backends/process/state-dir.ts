/**
 * What the process backend requires of its state dir before it talks to a supervisor there:
 * whoever can write to it could answer on its socket (and receive every workload's
 * environment and credentials), or write the journal that says which process groups the
 * supervisor may signal. So the state dir, the log dir and every file the backend uses in
 * them must belong to this process's user and be writable by no one else, and no directory
 * above them may let another user replace them (the rules of `private-path.ts`, the same
 * idea as the runtime.v1 service's socket directory).
 * @module
 */
import { join } from "node:path";
import { BackendUnavailableError } from "../../errors.js";
import { ensurePrivateDir, privateEntryProblem } from "../../private-path.js";

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

/**
 * Creates the state and log dirs (mode 0700) when missing, and checks them, the directories
 * above them and the files the backend uses in them; throws {@link UnsafeStateDirError}
 * naming the first path another user could write to. Run before every connection to the
 * supervisor, so nothing (no spec, no environment) is sent to a socket someone else made.
 */
export function ensureStateDir(stateDir: string, logDir: string): void {
  const problem =
    ensurePrivateDir(stateDir) ??
    STATE_FILES.map(([name, kind]) => privateEntryProblem(join(stateDir, name), kind)).find(Boolean) ??
    ensurePrivateDir(logDir) ??
    privateEntryProblem(join(logDir, ".pool"), "directory");
  if (problem) throw new UnsafeStateDirError(problem.path, problem.problem);
}
