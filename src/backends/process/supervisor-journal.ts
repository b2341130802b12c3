/**
 * The supervisor's journal (`journal.ndjson` and its key `journal.key` in the state dir):
 * it appends, signs, replays, compacts and cuts back what the supervisor records. It must
 * not touch processes, log files or sockets: what a failed write means for a run, it tells
 * its owner through `refuse` and `warn`. Part of the supervisor's program (see
 * `supervisor.ts`): each function reaches Node only through its parameters.
 *
 * Append-only NDJSON: {op:"spawn",runId,stdoutPath,stderrPath} (before a spawn),
 * {op:"start",run}, {op:"exit",runId,exit}, {op:"remove",runId}, each line signed (see
 * {@link signedLine}). Written with write(2) before any reply or push leaves, so what a
 * kernel was told is on record. Not fsync'ed: it survives the death of any process, not a
 * power loss.
 *
 * A write can fail (ENOSPC, EIO) or be short. The journal then cuts the file back to its
 * last whole line, refuses the starts whose line is not on record (its owner kills them: a
 * kernel never hears of them) and reports a failure, under which the owner refuses new
 * starts; exits and removals are kept and written again once it can.
 * @module
 */
import type * as CryptoModule from "node:crypto";
import type * as FsModule from "node:fs";
import type { Clock } from "../../clock.js";
import type { JournalEntry, RunRecord, WireError, WireExit } from "./protocol.js";

/** A run as the journal knows it: its record and its exit, once it has one. */
export interface JournalRun {
  record: RunRecord;
  exit: WireExit | null;
}

/** What a {@link Journal} needs; `T` is what its owner tags a start line with (its run). */
export interface JournalOptions<T> {
  fs: typeof FsModule;
  crypto: Pick<typeof CryptoModule, "createHmac" | "randomBytes">;
  /** The journal file. */
  path: string;
  /** The file of the key every line is signed with (made, mode 0600, if missing). */
  keyPath: string;
  /** Schedules the retry of a failed write. */
  clock: Clock;
  /** Writes to the diagnostics file. */
  diag(message: string): void;
  /** Tells every kernel, and the diagnostics file, of a problem outside any request. */
  warn(message: string): void;
  /** The start line of `tag` cannot be written: the run must not run on. */
  refuse(tag: T, failure: WireError): void;
}

/** One line waiting to be written; `tag` marks a start line whose run is refused if it cannot be. */
export interface PendingLine<T> {
  text: string;
  tag?: T;
}

/** What the journal held at start-up. */
export interface Replayed {
  /** The file as it was read. */
  bytes: Buffer;
  /** The runs on record, in the order they started. */
  runs: Map<string, JournalRun>;
  /** The log files of spawns that no start line followed (their supervisor died in between). */
  unrecorded: string[];
  /** The lines skipped, as `line N: why`. */
  skipped: string[];
  /** What to tell kernels about the skipped lines, when any were. */
  warning?: string;
}

/** The journal of one supervisor. */
export interface Journal<T> {
  /** Reads the key, or makes one. Throws when the key file is not a key. */
  loadKey(): void;
  /** Reads every line, checked; what is not a trusted record is skipped and reported. */
  replay(): Replayed;
  /** Rewrites the file with only `runs`; false (the file kept as it was) when it cannot. */
  compact(runs: Iterable<JournalRun>): boolean;
  /** Opens the file as it is (compaction failed at start-up), without a torn last line. */
  openAsIs(bytes: Buffer): void;
  /** Queues a line; it is written at the next {@link flush}. */
  append(entry: JournalEntry, tag?: T): PendingLine<T>;
  /** Queues the line of an entry already serialized (`json`: an exit, whose JSON is also pushed). */
  appendJson(json: string): void;
  /** Takes back a queued line that was not written. */
  withdraw(line: PendingLine<T>): void;
  /** Writes what waits; false (and the failure handled) when the journal cannot be written. */
  flush(): boolean;
  /** Set while the journal cannot be written: why, as the error a refused start gets. */
  readonly failure: WireError | undefined;
  /** Compacts once the file holds far more lines than `runs` need. */
  maybeCompact(runs: ReadonlyMap<string, JournalRun>): void;
  /** Whether the file was deleted (the state dir removed): nobody can recover from it. */
  deleted(): boolean;
  /** Writes what waits and closes the file. */
  close(): void;
}

/** The journal's state, which the functions below share. */
export interface JournalState<T> {
  options: JournalOptions<T>;
  key: string;
  fd: number;
  /** Lines in the file, for compaction. */
  lines: number;
  /** Where this supervisor's last write ended: a file that ends elsewhere was written by someone else. */
  end: number;
  buffer: PendingLine<T>[];
  failure: WireError | undefined;
  retryTimer: unknown;
}

/**
 * One journal line for `entry`: its JSON with a last field `mac`, `sign` of the JSON without
 * it (an HMAC under the state dir's key), and a newline.
 */
export function signedLine(entry: JournalEntry, sign: (body: string) => string): string {
  return signedJson(JSON.stringify(entry), sign);
}

/** {@link signedLine} of an entry already serialized (`body`, its JSON). */
export function signedJson(body: string, sign: (body: string) => string): string {
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
  const problem = recordProblem(record);
  return problem === undefined
    ? { entry: value as JournalEntry }
    : { problem: `${String(record.op)} record with ${problem}` };
}

/** What is wrong with the fields of a signed record of a known op, if anything. */
export function recordProblem(record: Record<string, unknown>): string | undefined {
  const text = (v: unknown) => typeof v === "string" && v !== "";
  const int = (v: unknown, min: number) => Number.isSafeInteger(v) && (v as number) >= min;
  const finite = (v: unknown) => typeof v === "number" && Number.isFinite(v);
  const object = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (record.op === "spawn") {
    return text(record.runId) && text(record.stdoutPath) && text(record.stderrPath)
      ? undefined
      : "bad fields";
  }
  if (record.op === "start") {
    const run = record.run;
    if (!object(run)) return "no run";
    if (!text(run.runId) || !text(run.workloadId) || typeof run.kernelId !== "string") return "bad ids";
    if (!object(run.labels) || !Object.values(run.labels).every((v) => typeof v === "string"))
      return "bad labels";
    // pid 0 or 1 would make a group signal reach the supervisor's own group or every process.
    if (!int(run.pid, 2) || !int(run.startTime, 0) || typeof run.bootId !== "string")
      return "a bad pid, start time or boot id";
    if (!text(run.stdoutPath) || !text(run.stderrPath)) return "bad log paths";
    if (!finite(run.startedAt) || (run.killAt !== undefined && !finite(run.killAt))) return "bad times";
    return undefined;
  }
  if (record.op === "exit") {
    const exit = record.exit;
    if (!text(record.runId) || !object(exit)) return "no run id or no exit";
    if (!(exit.exitCode === null || int(exit.exitCode, 0)) || !finite(exit.at)) return "a bad exit";
    if (
      (exit.signal !== undefined && typeof exit.signal !== "string") ||
      (exit.lost !== undefined && typeof exit.lost !== "boolean")
    )
      return "a bad exit";
    return undefined;
  }
  return text(record.runId) ? undefined : "no run id";
}

/** A journal over `options.path`; nothing is read or written until its methods are called. */
export function createJournal<T>(options: JournalOptions<T>): Journal<T> {
  const state: JournalState<T> = {
    options,
    key: "",
    fd: -1,
    lines: 0,
    end: 0,
    buffer: [],
    failure: undefined,
    retryTimer: undefined,
  };
  const sign = (body: string): string => journalMac(state, body);
  return {
    loadKey: () => loadJournalKey(state),
    replay: () => replayJournal(state),
    compact: (runs) => compactJournal(state, runs),
    openAsIs: (bytes) => openJournalAsIs(state, bytes),
    append(entry, tag) {
      const line: PendingLine<T> =
        tag === undefined ? { text: signedLine(entry, sign) } : { text: signedLine(entry, sign), tag };
      state.buffer.push(line);
      return line;
    },
    appendJson(json) {
      state.buffer.push({ text: signedJson(json, sign) });
    },
    withdraw(line) {
      state.buffer = state.buffer.filter((pending) => pending !== line);
    },
    flush: () => flushJournal(state),
    get failure() {
      return state.failure;
    },
    maybeCompact(runs) {
      if (state.lines > 1024 && state.lines > 4 * runs.size && !state.failure && flushJournal(state))
        compactJournal(state, runs.values());
    },
    deleted() {
      try {
        return options.fs.fstatSync(state.fd).nlink === 0;
      } catch {
        return false;
      }
    },
    close() {
      if (state.retryTimer !== undefined) options.clock.clearTimeout(state.retryTimer);
      flushJournal(state);
      options.fs.closeSync(state.fd);
    },
  };
}

/** The signature of one line's JSON: an HMAC-SHA256 under the state dir's key. */
export function journalMac<T>(state: JournalState<T>, body: string): string {
  return state.options.crypto.createHmac("sha256", state.key).update(body).digest("base64url");
}

/** Reads the key, or makes one (written to a temporary file renamed into place, mode 0600). */
export function loadJournalKey<T>(state: JournalState<T>): void {
  const { fs, crypto, keyPath } = state.options;
  try {
    state.key = fs.readFileSync(keyPath, "latin1");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
    state.key = crypto.randomBytes(32).toString("hex");
    const tmp = `${keyPath}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, state.key, { mode: 0o600, flag: "wx" });
      fs.renameSync(tmp, keyPath);
    } catch (writeError) {
      try {
        fs.unlinkSync(tmp);
      } catch {}
      throw writeError;
    }
  }
  if (!/^[0-9a-f]{64}$/.test(state.key)) {
    throw new Error(
      `${keyPath} is not a journal key: remove it (the journal's records are then not trusted)`,
    );
  }
}

/** Reads the journal: every line checked, what is not a trusted record skipped. */
export function replayJournal<T>(state: JournalState<T>): Replayed {
  const { fs, path } = state.options;
  let bytes = Buffer.alloc(0);
  try {
    bytes = fs.readFileSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const runs = new Map<string, JournalRun>();
  const skipped: string[] = [];
  /** Spawns with no start line after them (yet). */
  const spawning = new Map<string, string[]>();
  const sign = (body: string): string => journalMac(state, body);
  bytes
    .toString("utf8")
    .split("\n")
    .forEach((line, index) => {
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
        runs.set(entry.run.runId, { record: entry.run, exit: null });
      } else if (entry.op === "exit") {
        const run = runs.get(entry.runId);
        if (run) run.exit = entry.exit;
      } else {
        spawning.delete(entry.runId);
        runs.delete(entry.runId);
      }
    });
  const replayed: Replayed = { bytes, runs, unrecorded: [...spawning.values()].flat(), skipped };
  if (skipped.length > 0) {
    const shown = skipped.slice(0, 10).join("; ");
    replayed.warning =
      `Skipped ${skipped.length} line(s) of ${path} that are not records it trusts: ${shown}` +
      (skipped.length > 10 ? `; and ${skipped.length - 10} more (see supervisor.log)` : "");
  }
  return replayed;
}

/**
 * Rewrites the journal with only `runs`, through a new file renamed over the old one. False
 * (and the old journal kept, no temporary file left) when it cannot.
 */
export function compactJournal<T>(state: JournalState<T>, runs: Iterable<JournalRun>): boolean {
  const { fs, path, diag } = state.options;
  const sign = (body: string): string => journalMac(state, body);
  const tmp = `${path}.${process.pid}.tmp`;
  const lines: string[] = [];
  for (const run of runs) {
    lines.push(signedLine({ op: "start", run: run.record }, sign));
    if (run.exit) lines.push(signedLine({ op: "exit", runId: run.record.runId, exit: run.exit }, sign));
  }
  const bytes = Buffer.from(lines.join(""));
  let fd = -1;
  try {
    fd = fs.openSync(tmp, "ax+", 0o600);
    writeAll(fs, fd, bytes);
    fs.renameSync(tmp, path);
  } catch (error) {
    if (fd >= 0) fs.closeSync(fd);
    try {
      fs.unlinkSync(tmp);
    } catch {}
    diag(`journal compaction failed, the journal stays as it is: ${(error as Error).message}`);
    return false;
  }
  if (state.fd >= 0) fs.closeSync(state.fd);
  state.fd = fd;
  state.end = bytes.length;
  state.lines = lines.length;
  return true;
}

/** Opens the journal as it is, cut back to its last whole line. */
export function openJournalAsIs<T>(state: JournalState<T>, bytes: Buffer): void {
  const { fs, path } = state.options;
  state.fd = fs.openSync(path, "a+", 0o600);
  const whole = bytes.lastIndexOf(0x0a) + 1;
  if (whole < bytes.length) fs.ftruncateSync(state.fd, whole);
  state.end = whole;
  state.lines = bytes.subarray(0, whole).toString("latin1").split("\n").length - 1;
}

/** Writes all of `bytes` at the end of `fd`, however short each write(2) is. */
export function writeAll(fs: Pick<typeof FsModule, "writeSync">, fd: number, bytes: Buffer): void {
  for (let written = 0; written < bytes.length; ) {
    const n = fs.writeSync(fd, bytes, written, bytes.length - written);
    if (n <= 0) throw Object.assign(new Error("write(2) wrote nothing"), { code: "EIO" });
    written += n;
  }
}

/** Writes what waits; false (and the failure handled) when the journal cannot be written. */
export function flushJournal<T>(state: JournalState<T>): boolean {
  if (state.buffer.length === 0) return true;
  const { fs } = state.options;
  let text = state.buffer.map((line) => line.text).join("");
  // Where the file ends before the write: a failed write is cut back to here. Something
  // else may have appended to it (a person, a test): if that left a line unfinished, ours
  // starts on a new one, so that it is not lost with it.
  let end = -1;
  try {
    end = fs.fstatSync(state.fd).size;
    if (end !== state.end && end > 0) {
      const last = Buffer.alloc(1);
      fs.readSync(state.fd, last, 0, 1, end - 1);
      if (last[0] !== 0x0a) text = `\n${text}`;
    }
    const bytes = Buffer.from(text);
    writeAll(fs, state.fd, bytes);
    state.end = end + bytes.length;
  } catch (error) {
    journalFailed(state, error as NodeJS.ErrnoException, end);
    return false;
  }
  state.lines += state.buffer.length;
  state.buffer = [];
  if (state.failure) {
    state.failure = undefined;
    state.options.warn("the journal can be written again: starts are accepted");
  }
  return true;
}

/**
 * A write failed: the file is cut back to where it ended, the starts waiting are refused, the
 * rest is kept and written again a second later.
 */
export function journalFailed<T>(state: JournalState<T>, error: NodeJS.ErrnoException, end: number): void {
  const { fs, path, clock, warn, refuse } = state.options;
  // Part of the text may be in the file: cut it off. Should that fail too, the next write
  // sees a file that does not end where it left it, and starts on a new line.
  try {
    if (end >= 0) fs.ftruncateSync(state.fd, end);
  } catch {}
  const errno = error.code ?? "EIO";
  const first = state.failure === undefined;
  const failure: WireError = {
    code: errno === "ENOSPC" || errno === "EDQUOT" ? "RESOURCE_EXHAUSTED" : "BACKEND_UNAVAILABLE",
    message: `the supervisor cannot write its journal ${path} (${error.message})`,
  };
  state.failure = failure;
  if (first) warn(`${failure.message}: starts are refused until it can`);
  // A start whose line is not on record must not run: nobody could find it after a crash.
  const kept: PendingLine<T>[] = [];
  for (const line of state.buffer) {
    if (line.tag !== undefined) refuse(line.tag, failure);
    else kept.push(line);
  }
  state.buffer = kept;
  if (state.buffer.length > 0 && state.retryTimer === undefined) {
    state.retryTimer = clock.setTimeout(() => {
      state.retryTimer = undefined;
      flushJournal(state);
    }, 1_000);
  }
}
