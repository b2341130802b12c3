/**
 * The supervisor: one small, long-lived Node process per state dir, in the spirit of a
 * container shim. It spawns every workload (each in its own session and process group,
 * stdout and stderr straight into files), reaps them, records every start and exit in an
 * append-only journal in the state dir, pushes exits to connected kernels, and outlives
 * any kernel: a kernel killed with SIGKILL reconnects (or a new one does) and learns
 * what happened meanwhile.
 *
 * Why a separate process rather than spawning from the kernel: the workloads and their
 * exit codes must survive the kernel's death, and Node's spawn forks the whole parent,
 * so spawning from a small process is cheaper than from a large host application.
 *
 * The supervisor's code is {@link supervisorMain}, a self-contained function (it imports
 * nothing at run time: it reaches Node's modules through `process.getBuiltinModule`). The
 * backend writes its source text into the state dir and runs it with `process.execPath`,
 * so it works the same from TypeScript sources and from the bundled `dist/`.
 * @module
 */
import type * as ChildProcessModule from "node:child_process";
import type * as CryptoModule from "node:crypto";
import type * as FsModule from "node:fs";
import type * as NetModule from "node:net";
import type * as OsModule from "node:os";
import type * as PathModule from "node:path";
import type {
  JournalEntry,
  ReadyLine,
  Request,
  RunRecord,
  ServerMessage,
  StartSpec,
  SupervisorStats,
  WireError,
  WireExit,
} from "./protocol.js";

/** How a backend configures its supervisor (passed as JSON on the command line: no secrets). */
export interface SupervisorConfig {
  version: number;
  stateDir: string;
  socketPath: string;
  /** Exit after this long with no live workload and no client. */
  idleMs: number;
  /** Size of a log file (per stream) past which it is rotated once (`.1`). */
  maxLogBytes: number;
  /** How often to check log sizes. */
  logCheckMs: number;
  /** Most live workloads; 0 derives it from RLIMIT_NPROC and pid_max. */
  maxWorkloads: number;
  /** How often to check on workloads that a previous supervisor started (they cannot be waited for). */
  orphanPollMs: number;
  /** Where the backend puts log files; the pool of empty ones lives in its `.pool` folder. */
  logDir: string;
  /**
   * Fewest empty log files kept ready (0 disables the pool: every start creates its files).
   * The pool grows to the largest number of live workloads seen, up to `logPoolMax`.
   */
  logPoolMin: number;
  logPoolMax: number;
}

/** A run as the supervisor holds it in memory. */
interface Run {
  record: RunRecord;
  exit: WireExit | null;
  /** The ChildProcess while this supervisor spawned it and it has not exited. */
  child?: ChildProcessModule.ChildProcess;
  /** Started by a previous supervisor and still alive: only polling can see its end. */
  orphan: boolean;
  exitWaiters: Array<() => void>;
  /** Its start line could not be written: killed, forgotten, and its start answered with this. */
  refusal?: WireError;
}

/**
 * Field 22 (starttime) of /proc/<pid>/stat, whether the process is a zombie, and its process
 * group; `undefined` when there is no such process. Parsed after the last `)` because the
 * command name may contain spaces and parentheses.
 */
export function readProcStat(
  fs: Pick<typeof FsModule, "openSync" | "readSync" | "closeSync">,
  pid: number,
): { startTime: number; zombie: boolean; pgid: number } | undefined {
  // open/read/close into a small buffer: a third of readFileSync's cost on /proc (whose
  // files report size 0), and this runs for every start and every liveness check.
  const buffer = Buffer.allocUnsafe(1024);
  let length: number;
  try {
    const fd = fs.openSync(`/proc/${pid}/stat`, "r");
    try {
      length = fs.readSync(fd, buffer, 0, buffer.length, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const text = buffer.toString("latin1", 0, length);
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state), rest[2] field 5 (process group); field 22 is rest[19].
  return { startTime: Number(rest[19]), zombie: rest[0] === "Z" || rest[0] === "X", pgid: Number(rest[2]) };
}

/** The soft limits of /proc/self/limits that the budgets need (`Infinity` for unlimited). */
export function readLimits(fs: Pick<typeof FsModule, "readFileSync">): {
  openFiles: number;
  processes: number;
} {
  const out = { openFiles: Number.POSITIVE_INFINITY, processes: Number.POSITIVE_INFINITY };
  let text = "";
  try {
    text = fs.readFileSync("/proc/self/limits", "latin1");
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    const soft = line.slice(26).trim().split(/\s+/)[0];
    const value = soft === undefined || soft === "unlimited" ? Number.POSITIVE_INFINITY : Number(soft);
    if (line.startsWith("Max open files")) out.openFiles = value;
    else if (line.startsWith("Max processes")) out.processes = value;
  }
  return out;
}

/**
 * One journal line for `entry`: its JSON with a last field `mac`, `sign` of the JSON without
 * it (an HMAC under the state dir's key), and a newline.
 */
export function signedLine(entry: JournalEntry, sign: (body: string) => string): string {
  const body = JSON.stringify(entry);
  return `${body.slice(0, -1)},"mac":"${sign(body)}"}\n`;
}

/**
 * Reads one journal line (without its newline): the entry, or why it is not one. A line is
 * trusted only when it is signed with the state dir's key (see {@link signedLine}) and has
 * the shape of a record, so that no edit of the file can name a process for the supervisor
 * to signal: a pid, a start time or a `killAt` only count if a supervisor wrote them.
 */
export function parseJournalLine(
  line: string,
  sign: (body: string) => string,
): { entry: JournalEntry } | { problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { problem: "not JSON (a torn or garbled line)" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return {
      problem: `not a record (${value === null ? "null" : Array.isArray(value) ? "an array" : typeof value})`,
    };
  }
  const record = value as Record<string, unknown>;
  if (record.op !== "spawn" && record.op !== "start" && record.op !== "exit" && record.op !== "remove") {
    return {
      problem:
        record.op === undefined
          ? "a record without op"
          : `an unknown op ${JSON.stringify(record.op).slice(0, 40)}`,
    };
  }
  const marker = ',"mac":"';
  const at = line.lastIndexOf(marker);
  if (
    at < 0 ||
    !line.endsWith('"}') ||
    sign(`${line.slice(0, at)}}`) !== line.slice(at + marker.length, -2)
  ) {
    return {
      problem: "not signed with this state dir's journal.key (written by something else than its supervisor)",
    };
  }
  const text = (v: unknown) => typeof v === "string" && v !== "";
  const int = (v: unknown, min: number) => Number.isSafeInteger(v) && (v as number) >= min;
  const finite = (v: unknown) => typeof v === "number" && Number.isFinite(v);
  const object = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  const invalid = (what: string) => ({ problem: `${String(record.op)} record with ${what}` });
  if (record.op === "spawn") {
    if (!text(record.runId) || !text(record.stdoutPath) || !text(record.stderrPath))
      return invalid("bad fields");
    return { entry: value as JournalEntry };
  }
  if (record.op === "start") {
    const run = record.run;
    if (!object(run)) return invalid("no run");
    if (!text(run.runId) || !text(run.workloadId) || typeof run.kernelId !== "string")
      return invalid("bad ids");
    if (!object(run.labels) || !Object.values(run.labels).every((v) => typeof v === "string"))
      return invalid("bad labels");
    // pid 0 or 1 would make a group signal reach the supervisor's own group or every process.
    if (!int(run.pid, 2) || !int(run.startTime, 0) || typeof run.bootId !== "string")
      return invalid("a bad pid, start time or boot id");
    if (!text(run.stdoutPath) || !text(run.stderrPath)) return invalid("bad log paths");
    if (!finite(run.startedAt) || (run.killAt !== undefined && !finite(run.killAt)))
      return invalid("bad times");
    return { entry: value as JournalEntry };
  }
  if (record.op === "exit") {
    const exit = record.exit;
    if (!text(record.runId) || !object(exit)) return invalid("no run id or no exit");
    if (!(exit.exitCode === null || int(exit.exitCode, 0)) || !finite(exit.at)) return invalid("a bad exit");
    if (
      (exit.signal !== undefined && typeof exit.signal !== "string") ||
      (exit.lost !== undefined && typeof exit.lost !== "boolean")
    )
      return invalid("a bad exit");
    return { entry: value as JournalEntry };
  }
  return text(record.runId) ? { entry: value as JournalEntry } : invalid("no run id");
}

/**
 * Runs the supervisor in the current process. Self-contained on purpose: its source text is
 * what the backend launches, together with the functions above.
 */
export function supervisorMain(config: SupervisorConfig): void {
  const fs = process.getBuiltinModule("node:fs") as typeof FsModule;
  const net = process.getBuiltinModule("node:net") as typeof NetModule;
  const cp = process.getBuiltinModule("node:child_process") as typeof ChildProcessModule;
  const os = process.getBuiltinModule("node:os") as typeof OsModule;
  const path = process.getBuiltinModule("node:path") as typeof PathModule;
  const crypto = process.getBuiltinModule("node:crypto") as typeof CryptoModule;

  process.title = "runtime-kernel-supervisor";
  const journalPath = path.join(config.stateDir, "journal.ndjson");
  const diagPath = path.join(config.stateDir, "supervisor.log");
  const runs = new Map<string, Run>();
  const clients = new Set<NetModule.Socket>();
  const limits = readLimits(fs);
  let pidMax = 32768;
  try {
    pidMax = Number(fs.readFileSync("/proc/sys/kernel/pid_max", "latin1")) || pidMax;
  } catch {}
  const maxWorkloads =
    config.maxWorkloads > 0
      ? config.maxWorkloads
      : Math.max(1, Math.floor(Math.min(limits.processes, pidMax) / 2));
  let bootId = "";
  try {
    bootId = fs.readFileSync("/proc/sys/kernel/random/boot_id", "latin1").trim();
  } catch {}
  let live = 0;
  let orphans = 0;
  let journalFd = -1;
  let journalLines = 0;
  let baseFds = 0;
  let idleTimer: ReturnType<typeof setTimeout> | undefined;
  let backstopTimer: ReturnType<typeof setTimeout> | undefined;
  let backstopAt = Number.POSITIVE_INFINITY;
  let orphanTimer: ReturnType<typeof setInterval> | undefined;
  let pendingExits: Array<{ runId: string; exit: WireExit }> = [];
  let exitingDown = false;
  let server: NetModule.Server | undefined;

  const now = (): number => performance.timeOrigin + performance.now();
  const supervisorStartedAt = Date.now();

  function diag(message: string): void {
    try {
      fs.appendFileSync(diagPath, `${new Date().toISOString()} [${process.pid}] ${message}\n`, {
        mode: 0o600,
      });
    } catch {}
  }

  function fail(code: string, message: string): WireError & Error {
    return Object.assign(new Error(message), { code, message });
  }

  function say(line: ReadyLine): void {
    try {
      fs.writeSync(1, `${JSON.stringify(line)}\n`);
    } catch {}
  }

  process.on("uncaughtException", (error) => {
    diag(`uncaught exception, exiting: ${error.stack ?? String(error)}`);
    process.exit(70);
  });

  // --- the journal -------------------------------------------------------------------
  // Append-only NDJSON: {op:"spawn",runId,stdoutPath,stderrPath} (before a spawn),
  // {op:"start",run}, {op:"exit",runId,exit}, {op:"remove",runId}, each line signed (see
  // signedLine). Written with write(2) before any reply or push leaves, so what a kernel
  // was told is on record. Not fsync'ed: it survives the death of any process, not a power
  // loss.
  //
  // A write can fail (ENOSPC, EIO) or be short. The supervisor then cuts the file back to
  // its last whole line, refuses the starts whose line is not on record (it kills them: a
  // kernel never hears of them) and refuses new starts while the journal cannot be written;
  // exits and removals are kept and written again once it can, and exits are pushed anyway.

  const keyPath = path.join(config.stateDir, "journal.key");
  let journalKey = "";
  const sign = (body: string): string =>
    crypto.createHmac("sha256", journalKey).update(body).digest("base64url");
  /** Lines waiting to be written; `run` marks the start line of a run not yet acknowledged. */
  let journalBuffer: Array<{ text: string; run?: Run }> = [];
  /** Where this supervisor's last write ended: a file that ends elsewhere was written by someone else. */
  let journalEnd = 0;
  /** Set while the journal cannot be written: why, as the error a refused start gets. */
  let journalFailure: WireError | undefined;
  let journalRetryTimer: ReturnType<typeof setTimeout> | undefined;
  /** What start-up found wrong (lines skipped), told to every kernel that connects. */
  const warnings: string[] = [];

  function journal(entry: JournalEntry, run?: Run): { text: string; run?: Run } {
    const line = run ? { text: signedLine(entry, sign), run } : { text: signedLine(entry, sign) };
    journalBuffer.push(line);
    return line;
  }

  /** Writes all of `bytes` at the end of `fd`, however short each write(2) is. */
  function writeAll(fd: number, bytes: Buffer): void {
    for (let written = 0; written < bytes.length; ) {
      const n = fs.writeSync(fd, bytes, written, bytes.length - written);
      if (n <= 0) throw Object.assign(new Error("write(2) wrote nothing"), { code: "EIO" });
      written += n;
    }
  }

  /** Writes what waits; false (and the failure handled) when the journal cannot be written. */
  function flushJournal(): boolean {
    if (journalBuffer.length === 0) return true;
    let text = journalBuffer.map((line) => line.text).join("");
    // Where the file ends before the write: a failed write is cut back to here. Something
    // else may have appended to it (a person, a test): if that left a line unfinished, ours
    // starts on a new one, so that it is not lost with it.
    let end = -1;
    try {
      end = fs.fstatSync(journalFd).size;
      if (end !== journalEnd && end > 0) {
        const last = Buffer.alloc(1);
        fs.readSync(journalFd, last, 0, 1, end - 1);
        if (last[0] !== 0x0a) text = `\n${text}`;
      }
      const bytes = Buffer.from(text);
      writeAll(journalFd, bytes);
      journalEnd = end + bytes.length;
    } catch (error) {
      journalFailed(error as NodeJS.ErrnoException, end);
      return false;
    }
    journalLines += journalBuffer.length;
    journalBuffer = [];
    if (journalFailure) {
      journalFailure = undefined;
      warn("the journal can be written again: starts are accepted");
    }
    return true;
  }

  function journalFailed(error: NodeJS.ErrnoException, end: number): void {
    // Part of the text may be in the file: cut it off. Should that fail too, the next write
    // sees a file that does not end where it left it, and starts on a new line.
    try {
      if (end >= 0) fs.ftruncateSync(journalFd, end);
    } catch {}
    const errno = error.code ?? "EIO";
    const first = journalFailure === undefined;
    journalFailure = {
      code: errno === "ENOSPC" || errno === "EDQUOT" ? "RESOURCE_EXHAUSTED" : "BACKEND_UNAVAILABLE",
      message: `the supervisor cannot write its journal ${journalPath} (${error.message})`,
    };
    if (first) warn(`${journalFailure.message}: starts are refused until it can`);
    // A start whose line is not on record must not run: nobody could find it after a crash.
    const kept: typeof journalBuffer = [];
    for (const line of journalBuffer) {
      if (line.run) refuse(line.run, journalFailure);
      else kept.push(line);
    }
    journalBuffer = kept;
    if (journalBuffer.length > 0 && !journalRetryTimer) {
      journalRetryTimer = setTimeout(() => {
        journalRetryTimer = undefined;
        flushJournal();
      }, 1_000);
    }
  }

  /** Tells every kernel (and the diagnostics file) about a problem outside any request. */
  function warn(message: string): void {
    diag(message);
    for (const socket of clients) {
      if (socket.writable) socket.write(`${JSON.stringify({ event: "warning", message })}\n`);
    }
  }

  function loadKey(): void {
    try {
      journalKey = fs.readFileSync(keyPath, "latin1");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      journalKey = crypto.randomBytes(32).toString("hex");
      const tmp = `${keyPath}.${process.pid}.tmp`;
      try {
        fs.writeFileSync(tmp, journalKey, { mode: 0o600, flag: "wx" });
        fs.renameSync(tmp, keyPath);
      } catch (writeError) {
        try {
          fs.unlinkSync(tmp);
        } catch {}
        throw writeError;
      }
    }
    if (!/^[0-9a-f]{64}$/.test(journalKey)) {
      throw new Error(
        `${keyPath} is not a journal key: remove it (the journal's records are then not trusted)`,
      );
    }
  }

  /** Reads the journal into `runs`: every line checked, what is not a record skipped and reported. */
  function replay(): Buffer {
    let bytes = Buffer.alloc(0);
    try {
      bytes = fs.readFileSync(journalPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    }
    const lines = bytes.toString("utf8").split("\n");
    const skipped: string[] = [];
    /** Spawns with no start line after them (yet). */
    const spawning = new Map<string, string[]>();
    lines.forEach((line, index) => {
      if (line === "") return;
      const parsed = parseJournalLine(line, sign);
      if ("problem" in parsed) {
        skipped.push(`line ${index + 1}: ${parsed.problem}`);
        return;
      }
      const entry = parsed.entry;
      if (entry.op === "spawn") {
        spawning.set(entry.runId, [entry.stdoutPath, entry.stderrPath]);
      } else if (entry.op === "start") {
        spawning.delete(entry.run.runId);
        runs.set(entry.run.runId, { record: entry.run, exit: null, orphan: false, exitWaiters: [] });
      } else if (entry.op === "exit") {
        const run = runs.get(entry.runId);
        if (run) run.exit = entry.exit;
      } else {
        spawning.delete(entry.runId);
        runs.delete(entry.runId);
      }
    });
    if (spawning.size > 0) killUnrecorded([...spawning.values()].flat());
    for (const problem of skipped) diag(`journal ${problem}: skipped`);
    if (skipped.length > 0) {
      const shown = skipped.slice(0, 10).join("; ");
      warnings.push(
        `Skipped ${skipped.length} line(s) of ${journalPath} that are not records it trusts: ${shown}` +
          (skipped.length > 10 ? `; and ${skipped.length - 10} more (see supervisor.log)` : ""),
      );
    }
    for (const run of runs.values()) {
      if (run.exit) continue;
      if (isAlive(run.record)) {
        run.orphan = true;
        live++;
        orphans++;
      } else {
        run.exit = { exitCode: null, lost: true, at: now() };
      }
    }
    return bytes;
  }

  /**
   * Kills what a previous supervisor spawned but died before recording: the processes that
   * hold one of the run's log files open for writing (the workload, and whatever it forked).
   * No kernel was told of them. Their log files go too.
   */
  function killUnrecorded(logFiles: string[]): void {
    const inodes = new Set<string>();
    for (const file of logFiles) {
      const stat = fs.statSync(file, { throwIfNoEntry: false });
      if (stat) inodes.add(`${stat.dev}:${stat.ino}`);
    }
    for (const pid of inodes.size > 0 ? writersOf(inodes) : []) {
      const group = readProcStat(fs, pid)?.pgid;
      diag(`killing pid ${pid}: spawned by a supervisor that died before recording it`);
      try {
        process.kill(group === pid ? -pid : pid, "SIGKILL");
      } catch {}
    }
    for (const file of logFiles) deleteLog(file, true);
  }

  /** The processes that hold one of `inodes` (`dev:ino`) open for writing. */
  function writersOf(inodes: Set<string>): number[] {
    const out: number[] = [];
    for (const entry of fs.readdirSync("/proc")) {
      const pid = Number(entry);
      if (!Number.isInteger(pid) || pid === process.pid) continue;
      let fds: string[];
      try {
        fds = fs.readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue; // gone, or not ours to look at
      }
      for (const fd of fds) {
        try {
          const stat = fs.statSync(`/proc/${pid}/fd/${fd}`);
          if (!inodes.has(`${stat.dev}:${stat.ino}`)) continue;
          const flags = /flags:\s+([0-7]+)/.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, "latin1"));
          // O_WRONLY or O_RDWR: the workload's stdout or stderr, not a reader such as `tail -f`.
          if (flags && (Number.parseInt(flags[1] as string, 8) & 3) !== 0) {
            out.push(pid);
            break;
          }
        } catch {}
      }
    }
    return out;
  }

  /**
   * Rewrites the journal with only what `runs` holds, through a new file renamed over the
   * old one. False (and the old journal kept, no temporary file left) when it cannot.
   */
  function compact(): boolean {
    const tmp = `${journalPath}.${process.pid}.tmp`;
    const lines: string[] = [];
    for (const run of runs.values()) {
      lines.push(signedLine({ op: "start", run: run.record }, sign));
      if (run.exit) lines.push(signedLine({ op: "exit", runId: run.record.runId, exit: run.exit }, sign));
    }
    const bytes = Buffer.from(lines.join(""));
    let fd = -1;
    try {
      fd = fs.openSync(tmp, "ax+", 0o600);
      writeAll(fd, bytes);
      fs.renameSync(tmp, journalPath);
    } catch (error) {
      if (fd >= 0) fs.closeSync(fd);
      try {
        fs.unlinkSync(tmp);
      } catch {}
      diag(`journal compaction failed, the journal stays as it is: ${(error as Error).message}`);
      return false;
    }
    if (journalFd >= 0) fs.closeSync(journalFd);
    journalFd = fd;
    journalEnd = bytes.length;
    journalLines = lines.length;
    return true;
  }

  /** Opens the journal as it is (compaction failed at start-up), without a torn last line. */
  function openJournal(bytes: Buffer): void {
    journalFd = fs.openSync(journalPath, "a+", 0o600);
    const whole = bytes.lastIndexOf(0x0a) + 1;
    if (whole < bytes.length) fs.ftruncateSync(journalFd, whole);
    journalEnd = whole;
    journalLines = bytes.subarray(0, whole).toString("latin1").split("\n").length - 1;
  }

  function maybeCompact(): void {
    if (journalLines > 1024 && journalLines > 4 * runs.size && !journalFailure && flushJournal()) compact();
  }

  // --- processes -----------------------------------------------------------------------

  /** Whether the recorded process still runs (same boot, same start time, not a zombie). */
  function isAlive(record: RunRecord): boolean {
    if (record.bootId !== bootId) return false;
    const stat = readProcStat(fs, record.pid);
    return stat !== undefined && stat.startTime === record.startTime && !stat.zombie;
  }

  /** Whether the pid now names another process than the recorded one. */
  function pidReused(record: RunRecord): boolean {
    if (record.bootId !== bootId) return true;
    const stat = readProcStat(fs, record.pid);
    return stat !== undefined && stat.startTime !== record.startTime;
  }

  /**
   * Sends `signal` to the run's whole process group (the workload is a session and group
   * leader, so its pgid is its pid). After the leader is gone the group may still hold
   * grandchildren; they are signalled too unless the pid has been reused meanwhile.
   */
  function signalRun(run: Run, signal: "SIGTERM" | "SIGKILL"): boolean {
    const { pid } = run.record;
    if (run.orphan && !run.exit && !isAlive(run.record)) markOrphanGone(run);
    if (run.exit && pidReused(run.record)) return false;
    try {
      process.kill(-pid, signal);
      return true;
    } catch {
      // ESRCH: the group is empty. EPERM cannot happen for our own children.
      return false;
    }
  }

  function recordExit(run: Run, exit: WireExit): void {
    if (run.exit) return;
    run.exit = exit;
    run.child = undefined;
    live--;
    journal({ op: "exit", runId: run.record.runId, exit });
    pendingExits.push({ runId: run.record.runId, exit });
    if (pendingExits.length === 1) setImmediate(pushExits);
    const waiters = run.exitWaiters;
    run.exitWaiters = [];
    for (const waiter of waiters) waiter();
    noteIdle();
  }

  function onChildExit(run: Run, code: number | null, signal: NodeJS.Signals | null): void {
    if (run.refusal) return;
    const at = now();
    lastActivityAt = at;
    if (signal) {
      const n = os.constants.signals[signal] ?? 0;
      recordExit(run, { exitCode: 128 + n, signal, at });
    } else {
      recordExit(run, { exitCode: code, at });
    }
  }

  function markOrphanGone(run: Run): void {
    run.orphan = false;
    orphans--;
    recordExit(run, { exitCode: null, lost: true, at: now() });
  }

  /** Undoes a start that cannot be recorded: no kernel hears of the run, and it does not run on. */
  function refuse(run: Run, error: WireError): void {
    run.refusal = {
      code: error.code,
      message: `Cannot start "${run.record.workloadId}": ${error.message}; nothing was started`,
    };
    runs.delete(run.record.runId);
    live--;
    try {
      process.kill(-run.record.pid, "SIGKILL");
    } catch {}
    deleteLog(run.record.stdoutPath, false);
    deleteLog(run.record.stderrPath, false);
    noteIdle();
  }

  function pollOrphans(): void {
    if (orphans === 0) {
      if (orphanTimer) clearInterval(orphanTimer);
      orphanTimer = undefined;
      return;
    }
    for (const run of runs.values()) {
      if (run.orphan && !run.exit && !isAlive(run.record)) markOrphanGone(run);
    }
  }

  function waitExit(run: Run, timeoutMs: number): Promise<boolean> {
    if (run.exit) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      run.exitWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  function armBackstop(killAt: number | undefined): void {
    if (killAt === undefined || killAt >= backstopAt) return;
    if (backstopTimer) clearTimeout(backstopTimer);
    backstopAt = killAt;
    backstopTimer = setTimeout(runBackstop, Math.max(0, killAt - Date.now()));
  }

  /** Kills the groups whose max lifetime (plus the backstop margin) is over, kernel or not. */
  function runBackstop(): void {
    backstopTimer = undefined;
    backstopAt = Number.POSITIVE_INFINITY;
    const t = Date.now();
    let next: number | undefined;
    for (const run of runs.values()) {
      const killAt = run.record.killAt;
      if (run.exit || killAt === undefined) continue;
      if (killAt <= t) {
        diag(`max-lifetime backstop: SIGKILL to run ${run.record.runId} (pid ${run.record.pid})`);
        signalRun(run, "SIGKILL");
      } else if (next === undefined || killAt < next) {
        next = killAt;
      }
    }
    armBackstop(next);
  }

  // --- the pool of empty log files --------------------------------------------------------
  // Creating a file on ext4 here costs about a millisecond and, measured, slows the forks
  // around it 2-3x; renaming a file that already exists costs about as much as nothing.
  // So empty files are made ahead of time, while no start is waiting, and a start renames
  // two of them into place.

  const poolDir = path.join(config.logDir, ".pool");
  const pool: string[] = [];
  /** Log files that have a rotated `.1` copy (only those need it removed at cleanup). */
  const rotated = new Set<string>();
  let poolSeq = 0;
  let poolTarget = config.logPoolMin;
  /** When the supervisor last did foreground work (a request, an exit): the refill waits for quiet. */
  let lastActivityAt = 0;
  let refillTimer: ReturnType<typeof setTimeout> | undefined;

  function loadPool(): void {
    if (config.logPoolMin === 0) return;
    try {
      fs.mkdirSync(poolDir, { recursive: true, mode: 0o700 });
      const uid = process.geteuid?.();
      for (const name of fs.readdirSync(poolDir)) {
        // Only empty files of ours: a link planted here would become a workload's log.
        const file = path.join(poolDir, name);
        const stat = fs.lstatSync(file, { throwIfNoEntry: false });
        if (stat?.isFile() && stat.size === 0 && stat.nlink === 1 && stat.uid === uid) pool.push(file);
      }
      growPool(pool.length / 2);
    } catch (error) {
      diag(`log pool unavailable: ${(error as Error).message}`);
    }
  }

  /**
   * The pool grows to the most live workloads seen: here, in a kernel's hint (a supervisor
   * that exited with its kernel's shutdown forgets), or in the files an earlier one left.
   */
  function growPool(workloads: unknown): void {
    if (typeof workloads !== "number" || !(workloads > poolTarget)) return;
    poolTarget = Math.min(config.logPoolMax, Math.ceil(workloads));
    scheduleRefill(50);
  }

  function scheduleRefill(delayMs: number): void {
    if (config.logPoolMin === 0 || refillTimer || pool.length >= poolTarget * 2) return;
    refillTimer = setTimeout(refill, delayMs);
    refillTimer.unref();
  }

  /**
   * Makes empty files in small batches, and only while nothing else happens: a batch blocks
   * the loop for milliseconds, and measured, a refill running beside a burst of stops or
   * starts cost that burst more than the pool saves it.
   */
  function refill(): void {
    refillTimer = undefined;
    if (Date.now() - lastActivityAt < 50) {
      scheduleRefill(50);
      return;
    }
    try {
      for (let i = 0; i < 8 && pool.length < poolTarget * 2; i++) {
        const file = path.join(poolDir, `${process.pid}-${supervisorStartedAt}-${++poolSeq}`);
        fs.closeSync(fs.openSync(file, "wx", 0o600));
        pool.push(file);
      }
    } catch (error) {
      diag(`log pool refill failed: ${(error as Error).message}`);
      return;
    }
    scheduleRefill(0);
  }

  /** Append, create, and never through a symbolic link. */
  const logFlags =
    fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW;

  function openLog(file: string): number {
    for (let spare = pool.pop(); spare !== undefined; spare = pool.pop()) {
      try {
        fs.renameSync(spare, file);
        return fs.openSync(file, logFlags, 0o600);
      } catch {
        // Gone, or another filesystem: try the next, then create.
      }
    }
    try {
      return fs.openSync(file, logFlags, 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      return fs.openSync(file, logFlags, 0o600);
    }
  }

  /**
   * Deletes a cleaned-up run's log file (and its rotated copy). Not recycled into the pool:
   * a process that escaped the group could still hold it open and would write into the
   * next workload's log.
   */
  function deleteLog(file: string, fromEarlierSupervisor: boolean): void {
    const paths = rotated.delete(file) || fromEarlierSupervisor ? [file, `${file}.1`] : [file];
    for (const f of paths) {
      try {
        fs.unlinkSync(f);
      } catch {}
    }
  }

  function spawnError(error: NodeJS.ErrnoException, spec: StartSpec): Error {
    const errno = error.code ?? "UNKNOWN";
    const argv0 = spec.command[0];
    if (errno === "EAGAIN" || errno === "EMFILE" || errno === "ENFILE" || errno === "ENOMEM") {
      return fail("RESOURCE_EXHAUSTED", `Cannot start "${spec.workloadId}": the system refused (${errno})`);
    }
    if (errno === "ENOENT" && !fs.existsSync(spec.cwd)) {
      return fail(
        "START_FAILED",
        `Cannot start "${spec.workloadId}": working directory ${spec.cwd} does not exist`,
      );
    }
    if (errno === "ENOENT") {
      return fail("START_FAILED", `Cannot start "${spec.workloadId}": command not found: ${argv0}`);
    }
    if (errno === "EACCES") {
      return fail("START_FAILED", `Cannot start "${spec.workloadId}": permission denied: ${argv0}`);
    }
    return fail("START_FAILED", `Cannot start "${spec.workloadId}": ${errno}`);
  }

  function start(
    spec: StartSpec,
  ): { pid: number; startTime: number } | Promise<{ pid: number; startTime: number }> {
    const existing = runs.get(spec.runId);
    if (existing) return { pid: existing.record.pid, startTime: existing.record.startTime };
    if (live >= maxWorkloads) {
      throw fail(
        "RESOURCE_EXHAUSTED",
        `Cannot start "${spec.workloadId}": ${live} live workloads, the process budget (maxWorkloads ${maxWorkloads})`,
      );
    }
    // Each start briefly holds 2 log fds and libuv's 2 exec-status pipe fds.
    if (baseFds + clients.size + 8 > limits.openFiles) {
      throw fail(
        "RESOURCE_EXHAUSTED",
        `Cannot start "${spec.workloadId}": the supervisor is at its file descriptor limit (${limits.openFiles})`,
      );
    }
    // On record before it exists: should this supervisor die between the spawn and the start
    // line, its successor finds the process by its log files, and kills it (no kernel was
    // told of it). A journal that cannot take this line refuses the start: nothing runs.
    const { runId, stdoutPath, stderrPath } = spec;
    const spawnLine = journal({ op: "spawn", runId, stdoutPath, stderrPath });
    if (!flushJournal()) {
      journalBuffer = journalBuffer.filter((line) => line !== spawnLine);
      const why = journalFailure as WireError;
      throw fail(why.code, `Cannot start "${spec.workloadId}": ${why.message}; nothing was started`);
    }
    let out = -1;
    let err = -1;
    let child: ChildProcessModule.ChildProcess;
    try {
      out = openLog(spec.stdoutPath);
      err = openLog(spec.stderrPath);
      child = cp.spawn(spec.command[0] as string, spec.command.slice(1), {
        cwd: spec.cwd,
        env: spec.env,
        stdio: ["ignore", out, err],
        detached: true,
      });
    } catch (error) {
      deleteLog(spec.stdoutPath, false);
      deleteLog(spec.stderrPath, false);
      journal({ op: "remove", runId });
      throw spawnError(error as NodeJS.ErrnoException, spec);
    } finally {
      if (out >= 0) fs.closeSync(out);
      if (err >= 0) fs.closeSync(err);
    }
    if (child.pid === undefined) {
      // Node reports ENOENT, EACCES, EAGAIN, ... through an 'error' event on the next tick.
      return new Promise((_resolve, reject) => {
        child.once("error", (error) => {
          deleteLog(spec.stdoutPath, false);
          deleteLog(spec.stderrPath, false);
          journal({ op: "remove", runId });
          reject(spawnError(error, spec));
        });
      });
    }
    child.on("error", (error) => diag(`run ${spec.runId}: ${error.message}`));
    const pid = child.pid;
    // The child cannot have been reaped yet (that needs this event loop): the stat is there.
    const startTime = readProcStat(fs, pid)?.startTime ?? 0;
    const record: RunRecord = {
      runId: spec.runId,
      workloadId: spec.workloadId,
      kernelId: spec.kernelId,
      labels: spec.labels,
      pid,
      startTime,
      bootId,
      stdoutPath: spec.stdoutPath,
      stderrPath: spec.stderrPath,
      startedAt: Date.now(),
    };
    if (spec.killAt !== undefined) record.killAt = spec.killAt;
    const run: Run = { record, exit: null, child, orphan: false, exitWaiters: [] };
    runs.set(spec.runId, run);
    live++;
    growPool(live);
    scheduleRefill(50);
    clearIdle();
    journal({ op: "start", run: record }, run);
    child.once("exit", (code, signal) => onChildExit(run, code, signal));
    armBackstop(record.killAt);
    return { pid, startTime };
  }

  async function cleanup(run: Run, keepLogs: boolean): Promise<Record<string, never>> {
    if (!run.exit) {
      signalRun(run, "SIGKILL");
      if (run.orphan) {
        const deadline = Date.now() + 10_000;
        while (!run.exit && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 10));
          if (!isAlive(run.record)) markOrphanGone(run);
        }
      }
      if (!(await waitExit(run, 10_000))) {
        throw fail(
          "CLEANUP_FAILED",
          `Run ${run.record.runId} (pid ${run.record.pid}) did not die after SIGKILL`,
        );
      }
    }
    // Whatever the workload left in its group (grandchildren) goes too.
    signalRun(run, "SIGKILL");
    if (!keepLogs) {
      // This supervisor only knows of the rotations it did itself.
      const earlier = run.record.startedAt < supervisorStartedAt;
      deleteLog(run.record.stdoutPath, earlier);
      deleteLog(run.record.stderrPath, earlier);
    }
    if (runs.get(run.record.runId) === run) {
      runs.delete(run.record.runId);
      journal({ op: "remove", runId: run.record.runId });
      maybeCompact();
    }
    return {};
  }

  async function shutdown(force: boolean): Promise<Record<string, never>> {
    if (live > 0 && !force) {
      throw fail(
        "WORKLOAD_CONFLICT",
        `The supervisor still has ${live} live workload(s); stop them or use force`,
      );
    }
    exitingDown = true;
    for (const run of runs.values()) if (!run.exit) signalRun(run, "SIGKILL");
    await Promise.all(
      [...runs.values()].map((run) => (run.orphan ? Promise.resolve(true) : waitExit(run, 10_000))),
    );
    for (const run of runs.values()) if (run.orphan && !run.exit) markOrphanGone(run);
    for (const run of runs.values()) signalRun(run, "SIGKILL");
    setImmediate(exitNow);
    return {};
  }

  /**
   * A kernel leaves (its backend closes). With no live workload and no other kernel there is
   * nothing to supervise: exit now rather than after the idle time, so that nothing touches
   * the state and log dirs once the kernel's shutdown returns.
   */
  function detach(socket: NetModule.Socket): { exiting: boolean } {
    const exiting = live === 0 && [...clients].every((client) => client === socket);
    if (exiting) {
      exitingDown = true;
      diag("the last kernel left and no workload runs: exiting");
      setImmediate(exitNow);
    }
    return { exiting };
  }

  /**
   * Exits: every file written and closed and the socket removed first, the connections
   * closed last, so that a kernel that sees its connection close knows the supervisor has
   * stopped touching its files.
   */
  function exitNow(): void {
    if (refillTimer) clearTimeout(refillTimer);
    if (journalRetryTimer) clearTimeout(journalRetryTimer);
    const sockets = [...clients];
    try {
      for (const socket of [...outboxes.keys()]) flushOutbox(socket);
      pushExits();
      flushJournal();
      fs.closeSync(journalFd);
    } catch {}
    try {
      server?.close();
      fs.unlinkSync(config.socketPath);
    } catch {}
    for (const socket of sockets) socket.destroy();
    process.exit(0);
  }

  // --- logs ------------------------------------------------------------------------------
  // Workloads write straight into their files (no pipe through this process), so the cap
  // is enforced by copy-then-truncate, like logrotate's copytruncate: files are opened
  // with O_APPEND, so the workload's next write lands at the new end. Bytes written
  // between the copy and the truncate are lost; the docs say so.

  function checkLogs(): void {
    if (live === 0) return;
    for (const run of runs.values()) {
      if (run.exit) continue;
      for (const file of [run.record.stdoutPath, run.record.stderrPath]) {
        const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
        if (size <= config.maxLogBytes) continue;
        try {
          fs.copyFileSync(file, `${file}.1.tmp`);
          fs.renameSync(`${file}.1.tmp`, `${file}.1`);
          fs.truncateSync(file, 0);
          rotated.add(file);
        } catch (error) {
          try {
            fs.unlinkSync(`${file}.1.tmp`);
          } catch {}
          diag(`log rotation of ${file} failed: ${(error as Error).message}`);
        }
      }
    }
  }

  // --- clients ---------------------------------------------------------------------------

  /**
   * Replies wait in an outbox per client, written at once after a chunk of requests. The
   * reply to a start holds its run: if the start line could not be written, the run was
   * refused and the reply says so instead.
   */
  const outboxes = new Map<NetModule.Socket, Array<{ message: ServerMessage; run?: Run | undefined }>>();

  function send(socket: NetModule.Socket, message: ServerMessage, run?: Run): void {
    let outbox = outboxes.get(socket);
    if (!outbox) {
      outbox = [];
      outboxes.set(socket, outbox);
      setImmediate(() => flushOutbox(socket));
    }
    outbox.push({ message, run });
  }

  function flushOutbox(socket: NetModule.Socket): void {
    const outbox = outboxes.get(socket);
    if (!outbox) return;
    outboxes.delete(socket);
    // What a kernel is told must be on record first.
    flushJournal();
    let text = "";
    for (const { message, run } of outbox) {
      const refused =
        run?.refusal && "id" in message ? { id: message.id, ok: false, error: run.refusal } : undefined;
      text += `${JSON.stringify(refused ?? message)}\n`;
    }
    if (socket.writable) socket.write(text);
  }

  function pushExits(): void {
    if (pendingExits.length === 0) return;
    // On record first when the journal can be written; pushed anyway when it cannot (a
    // stopped workload must not look alive to its kernel): the journal gets it later.
    flushJournal();
    const text = pendingExits
      .map((e) => JSON.stringify({ event: "exit", runId: e.runId, exit: e.exit }))
      .join("\n");
    pendingExits = [];
    for (const socket of clients) if (socket.writable) socket.write(`${text}\n`);
  }

  function stats(): SupervisorStats {
    return {
      pid: process.pid,
      live,
      records: runs.size,
      clients: clients.size,
      rss: process.memoryUsage.rss(),
      fdLimit: limits.openFiles,
      maxWorkloads,
      pooledLogFiles: pool.length,
    };
  }

  function handle(socket: NetModule.Socket, request: Request): unknown {
    switch (request.op) {
      case "hello":
        growPool(request.poolHint);
        return { version: config.version, pid: process.pid, warnings };
      case "start":
        if (exitingDown) throw fail("BACKEND_UNAVAILABLE", "The supervisor is shutting down");
        return start(request.spec);
      case "signal": {
        const run = runs.get(request.runId);
        if (!run) throw fail("NOT_FOUND", `No run ${request.runId}`);
        return { delivered: signalRun(run, request.signal) };
      }
      case "status": {
        const run = runs.get(request.runId);
        return { found: run !== undefined, exit: run?.exit ?? null };
      }
      case "list": {
        const out: Array<{ record: RunRecord; exit: WireExit | null }> = [];
        for (const run of runs.values()) {
          if (run.record.kernelId === request.kernelId) out.push({ record: run.record, exit: run.exit });
        }
        return { runs: out };
      }
      case "cleanup": {
        const run = runs.get(request.runId);
        return run ? cleanup(run, request.keepLogs) : {};
      }
      case "shutdown":
        return shutdown(request.force);
      case "detach":
        return detach(socket);
      case "stats":
        return stats();
      default:
        throw fail("BACKEND_ERROR", `Unknown operation ${(request as { op: string }).op}`);
    }
  }

  function toWireError(error: unknown): WireError {
    const e = error as { code?: unknown; message?: unknown };
    const code = typeof e.code === "string" && /^[A-Z_]+$/.test(e.code) ? e.code : "BACKEND_ERROR";
    return { code, message: String(e.message ?? error) };
  }

  function onLine(socket: NetModule.Socket, line: string): void {
    lastActivityAt = Date.now();
    let request: Request;
    try {
      request = JSON.parse(line);
    } catch {
      diag("dropped a line that is not JSON");
      return;
    }
    if (typeof request !== "object" || request === null || typeof request.id !== "number") {
      diag("dropped a line that is not a request");
      return;
    }
    let result: unknown;
    try {
      result = handle(socket, request);
    } catch (error) {
      send(socket, { id: request.id, ok: false, error: toWireError(error) });
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value) => send(socket, { id: request.id, ok: true, result: value }),
        (error) => send(socket, { id: request.id, ok: false, error: toWireError(error) }),
      );
    } else {
      send(
        socket,
        { id: request.id, ok: true, result },
        request.op === "start" ? runs.get(request.spec.runId) : undefined,
      );
    }
  }

  function onConnection(socket: NetModule.Socket): void {
    clients.add(socket);
    clearIdle();
    let buffer = "";
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      buffer += chunk;
      let newline = buffer.indexOf("\n");
      if (newline < 0) return;
      let start = 0;
      while (newline >= 0) {
        onLine(socket, buffer.slice(start, newline));
        start = newline + 1;
        newline = buffer.indexOf("\n", start);
      }
      buffer = buffer.slice(start);
      // One write for all the replies to one chunk of requests.
      flushOutbox(socket);
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => {
      clients.delete(socket);
      outboxes.delete(socket);
      noteIdle();
    });
  }

  function clearIdle(): void {
    if (idleTimer) clearTimeout(idleTimer);
    idleTimer = undefined;
  }

  /** Whether the journal was deleted (the state dir removed): nobody can recover from it. */
  function journalDeleted(): boolean {
    try {
      return fs.fstatSync(journalFd).nlink === 0;
    } catch {
      return false;
    }
  }

  /**
   * With no live workload and no client, exits after `idleMs`, or at once (within half a
   * second) when its state dir has been removed.
   */
  function noteIdle(): void {
    if (live > 0 || clients.size > 0 || idleTimer) return;
    const since = Date.now();
    const tick = () => {
      idleTimer = undefined;
      if (live > 0 || clients.size > 0) return;
      const deleted = journalDeleted();
      if (deleted || Date.now() - since >= config.idleMs) {
        diag("idle: no live workload and no client, exiting");
        exitNow();
        return;
      }
      idleTimer = setTimeout(tick, Math.min(500, config.idleMs - (Date.now() - since)));
    };
    idleTimer = setTimeout(tick, Math.min(500, config.idleMs));
  }

  // --- start up ------------------------------------------------------------------------
  // The lock is an abstract unix socket: bind is atomic and the kernel releases it when
  // this process dies, however it dies, so there is no stale lock to break.

  const lock = net.createServer((socket) => socket.destroy());
  lock.once("error", (error: NodeJS.ErrnoException) => {
    if (error.code === "EADDRINUSE") {
      say({ ready: false, locked: true });
      process.exit(0);
    }
    say({ error: `cannot take the supervisor lock: ${error.message}` });
    process.exit(1);
  });
  // Named after the real path, so that two spellings of one state dir share one lock.
  const lockName = `runtime-kernel-supervisor/${crypto
    .createHash("sha256")
    .update(fs.realpathSync(config.stateDir))
    .digest("hex")
    .slice(0, 40)}`;
  lock.listen({ path: `\0${lockName}` }, () => {
    try {
      loadKey();
      const bytes = replay();
      // On a full disk the journal stays as it is (compaction needs room for a copy).
      if (!compact()) openJournal(bytes);
      if (orphans > 0) orphanTimer = setInterval(pollOrphans, config.orphanPollMs);
      for (const run of runs.values()) armBackstop(run.exit ? undefined : run.record.killAt);
      try {
        fs.unlinkSync(config.socketPath);
      } catch {}
    } catch (error) {
      diag(`start-up failed: ${(error as Error).stack}`);
      say({ error: `start-up failed: ${(error as Error).message}` });
      process.exit(1);
    }
    server = net.createServer(onConnection);
    server.once("error", (error) => {
      diag(`cannot listen on ${config.socketPath}: ${error.message}`);
      say({ error: `cannot listen on ${config.socketPath}: ${error.message}` });
      process.exit(1);
    });
    // The socket is bound inside listen(): create it private, then give workloads back the
    // umask the supervisor inherited (they inherit it in turn).
    const umask = process.umask(0o077);
    server.listen({ path: config.socketPath }, () => {
      try {
        fs.chmodSync(config.socketPath, 0o600);
      } catch {}
      try {
        baseFds = fs.readdirSync("/proc/self/fd").length;
      } catch {}
      setInterval(checkLogs, config.logCheckMs).unref();
      loadPool();
      scheduleRefill(0);
      diag(`listening on ${config.socketPath} (${runs.size} recorded runs, ${orphans} adopted orphans)`);
      say({ ready: true, pid: process.pid });
      noteIdle();
    });
    process.umask(umask);
  });
}

/** The source text of the supervisor program, ready to run with `node`. */
export function supervisorSource(config: SupervisorConfig): string {
  return [
    '"use strict";',
    // Some TypeScript loaders (tsx) wrap functions with a `__name` helper; the copied
    // source has no module around it, so give it a harmless one.
    "var __name = (target) => target;",
    readProcStat.toString(),
    readLimits.toString(),
    signedLine.toString(),
    parseJournalLine.toString(),
    supervisorMain.toString(),
    `${supervisorMain.name}(${JSON.stringify(config)});`,
    "",
  ].join("\n");
}
