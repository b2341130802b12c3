/**
 * The workloads' log files as the supervisor keeps them: a pool of empty files made ahead of
 * time, opening a run's two files, rotating a file past its cap, deleting a cleaned-up run's.
 * It owns the files under the log dir (and its `.pool`); it must not touch the journal,
 * processes or sockets. Part of the supervisor's program (see `supervisor.ts`): each function
 * reaches Node only through its parameters.
 *
 * Why a pool: creating a file on ext4 here costs about a millisecond and, measured, slows the
 * forks around it 2-3x; renaming a file that already exists costs about as much as nothing.
 * So empty files are made while no start is waiting, and a start renames two into place.
 *
 * Why copy-then-truncate: workloads write straight into their files (no pipe through the
 * supervisor), so the cap is enforced like logrotate's copytruncate: files are opened with
 * O_APPEND, so the workload's next write lands at the new end. Bytes written between the copy
 * and the truncate are lost; the docs say so.
 * @module
 */
import type * as FsModule from "node:fs";
import type * as PathModule from "node:path";
import type { Clock } from "../../clock.js";

/** What {@link createLogFiles} needs. */
export interface LogFilesOptions {
  fs: typeof FsModule;
  path: Pick<typeof PathModule, "join" | "dirname">;
  /** Where the backend puts log files; the pool is its `.pool` folder. */
  logDir: string;
  /** Fewest empty files kept ready; 0 disables the pool (every start creates its files). */
  poolMin: number;
  /** The most the pool grows to. */
  poolMax: number;
  /** A file's size past which it is rotated once (`.1`). */
  maxLogBytes: number;
  /** Names pool files apart from those of other supervisors. */
  owner: { pid: number; startedAt: number };
  /** Schedules refills, and tells how quiet the supervisor has been. */
  clock: Clock;
  diag(message: string): void;
}

/** The log files of one supervisor. */
export interface LogFiles {
  /** Takes in the empty files an earlier supervisor left in the pool (only plain, empty files of ours). */
  load(): void;
  /** The pool grows to `workloads` (the most live workloads seen), up to its maximum; anything else is ignored. */
  grow(workloads: unknown): void;
  /** Refills the pool after `delayMs`, unless a refill is already due or the pool is full. */
  scheduleRefill(delayMs: number): void;
  /** Something happened in the foreground (a request, an exit): the refill waits for quiet. */
  activity(): void;
  /** Whether nothing happened in the foreground for the last 50 ms. */
  quiet(): boolean;
  /** Opens a run's log file for appending, from the pool when it can; never through a link. */
  open(file: string): number;
  /** Puts a run's log file in place, from the pool when it can, for another process to open. */
  prepare(file: string): void;
  /**
   * Deletes a cleaned-up run's log file, and its rotated copy when this supervisor rotated it
   * or an earlier one may have.
   */
  delete(file: string, fromEarlierSupervisor: boolean): void;
  /** Rotates `file` once (to `.1`) when it is over the cap. */
  rotate(file: string): void;
  /** Empty files ready. */
  readonly pooled: number;
  /** Cancels a pending refill. */
  stop(): void;
}

/** The state the functions below share. */
export interface LogFilesState {
  options: LogFilesOptions;
  poolDir: string;
  pool: string[];
  /** Log files that have a rotated `.1` copy (only those need it removed at cleanup). */
  rotated: Set<string>;
  seq: number;
  target: number;
  /** When the supervisor last did foreground work: the refill waits for quiet. */
  lastActivityAt: number;
  refillTimer: unknown;
  /** Append, create, and never through a symbolic link. */
  flags: number;
}

/** The log files under `options.logDir`; nothing is touched until its methods are called. */
export function createLogFiles(options: LogFilesOptions): LogFiles {
  const { constants } = options.fs;
  const state: LogFilesState = {
    options,
    poolDir: options.path.join(options.logDir, ".pool"),
    pool: [],
    rotated: new Set(),
    seq: 0,
    target: options.poolMin,
    lastActivityAt: 0,
    refillTimer: undefined,
    flags: constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW,
  };
  return {
    load: () => loadPool(state),
    grow: (workloads) => growPool(state, workloads),
    scheduleRefill: (delayMs) => scheduleRefill(state, delayMs),
    activity() {
      state.lastActivityAt = options.clock.now();
    },
    quiet: () => options.clock.now() - state.lastActivityAt >= 50,
    open: (file) => openLog(state, file),
    prepare: (file) => prepareLog(state, file),
    delete: (file, fromEarlierSupervisor) => deleteLog(state, file, fromEarlierSupervisor),
    rotate: (file) => rotateLog(state, file),
    get pooled() {
      return state.pool.length;
    },
    stop() {
      if (state.refillTimer !== undefined) options.clock.clearTimeout(state.refillTimer);
    },
  };
}

/** Takes in the empty files of the pool, then sizes it from them. */
export function loadPool(state: LogFilesState): void {
  const { fs, path, poolMin, diag } = state.options;
  if (poolMin === 0) return;
  try {
    fs.mkdirSync(state.poolDir, { recursive: true, mode: 0o700 });
    const uid = process.geteuid?.();
    for (const name of fs.readdirSync(state.poolDir)) {
      // Only empty files of ours: a link planted here would become a workload's log.
      const file = path.join(state.poolDir, name);
      const stat = fs.lstatSync(file, { throwIfNoEntry: false });
      if (stat?.isFile() && stat.size === 0 && stat.nlink === 1 && stat.uid === uid) state.pool.push(file);
    }
    growPool(state, state.pool.length / 2);
  } catch (error) {
    diag(`log pool unavailable: ${(error as Error).message}`);
  }
}

/**
 * The pool grows to the most live workloads seen: here, in a kernel's hint (a supervisor
 * that exited with its kernel's shutdown forgets), or in the files an earlier one left.
 */
export function growPool(state: LogFilesState, workloads: unknown): void {
  if (typeof workloads !== "number" || !(workloads > state.target)) return;
  state.target = Math.min(state.options.poolMax, Math.ceil(workloads));
  scheduleRefill(state, 50);
}

export function scheduleRefill(state: LogFilesState, delayMs: number): void {
  if (state.options.poolMin === 0 || state.refillTimer !== undefined || state.pool.length >= state.target * 2)
    return;
  const timer = state.options.clock.setTimeout(() => refillPool(state), delayMs);
  state.refillTimer = timer;
  (timer as { unref?: () => void }).unref?.();
}

/**
 * Makes empty files in small batches, and only while nothing else happens: a batch blocks
 * the loop for milliseconds, and measured, a refill running beside a burst of stops or
 * starts cost that burst more than the pool saves it.
 */
export function refillPool(state: LogFilesState): void {
  const { fs, path, clock, owner, diag } = state.options;
  state.refillTimer = undefined;
  if (clock.now() - state.lastActivityAt < 50) {
    scheduleRefill(state, 50);
    return;
  }
  try {
    for (let i = 0; i < 8 && state.pool.length < state.target * 2; i++) {
      const file = path.join(state.poolDir, `${owner.pid}-${owner.startedAt}-${++state.seq}`);
      fs.closeSync(fs.openSync(file, "wx", 0o600));
      state.pool.push(file);
    }
  } catch (error) {
    diag(`log pool refill failed: ${(error as Error).message}`);
    return;
  }
  scheduleRefill(state, 0);
}

export function openLog(state: LogFilesState, file: string): number {
  const { fs, path } = state.options;
  for (let spare = state.pool.pop(); spare !== undefined; spare = state.pool.pop()) {
    try {
      fs.renameSync(spare, file);
      return fs.openSync(file, state.flags, 0o600);
    } catch {
      // Gone, or another filesystem: try the next, then create.
    }
  }
  try {
    return fs.openSync(file, state.flags, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    return fs.openSync(file, state.flags, 0o600);
  }
}

export function prepareLog(state: LogFilesState, file: string): void {
  for (let spare = state.pool.pop(); spare !== undefined; spare = state.pool.pop()) {
    try {
      state.options.fs.renameSync(spare, file);
      return;
    } catch {
      // Gone, or another filesystem: try the next, then create.
    }
  }
  state.options.fs.closeSync(openLog(state, file));
}

/**
 * Not recycled into the pool: a process that escaped the group could still hold the file
 * open and would write into the next workload's log.
 */
export function deleteLog(state: LogFilesState, file: string, fromEarlierSupervisor: boolean): void {
  const paths = state.rotated.delete(file) || fromEarlierSupervisor ? [file, `${file}.1`] : [file];
  for (const f of paths) {
    try {
      state.options.fs.unlinkSync(f);
    } catch {}
  }
}

export function rotateLog(state: LogFilesState, file: string): void {
  const { fs, maxLogBytes, diag } = state.options;
  const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  if (size <= maxLogBytes) return;
  try {
    fs.copyFileSync(file, `${file}.1.tmp`);
    fs.renameSync(`${file}.1.tmp`, `${file}.1`);
    fs.truncateSync(file, 0);
    state.rotated.add(file);
  } catch (error) {
    try {
      fs.unlinkSync(`${file}.1.tmp`);
    } catch {}
    diag(`log rotation of ${file} failed: ${(error as Error).message}`);
  }
}
