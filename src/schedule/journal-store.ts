/**
 * The embedded store: jobs in memory, every change appended to a journal file (NDJSON) before
 * the call that made it returns, and the file rewritten compactly when it has grown to twice
 * what it holds. One process at a time: a lock file beside the journal names its holder.
 *
 * What survives what: every change is written (write(2)) before `schedule`, a claim or a
 * record resolves, so the death of the process (SIGKILL included) loses nothing that was
 * acknowledged. With `sync: true` each batch of changes is also flushed to the disk
 * (fdatasync), so a power loss loses nothing either.
 * @module
 */
import {
  closeSync,
  constants,
  fdatasyncSync,
  fstatSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { dirname, resolve } from "node:path";
import { z } from "zod";
import { type Clock, systemClock } from "../index.js";
import { StoreUnavailableError } from "./errors.js";
import { JOB_STATUSES, type ScheduleJob } from "./job.js";
import { JobTable } from "./job-table.js";
import type { JobClaim, JobFilter, ScheduleStore } from "./store.js";
import { parseOrRefuse } from "./validate.js";

/** Options of {@link openJournalStore}. */
export interface JournalStoreOptions {
  /** The journal file; created (mode 0600, its folder 0700) if missing. A `<path>.lock` goes beside it. */
  path: string;
  /** Flush each batch of changes to the disk (fdatasync) too, to survive a power loss. Default false. */
  sync?: boolean;
  /** How long completed, failed and cancelled jobs (and their idempotency keys) are kept. Default 7 days. */
  historyMs?: number;
  /** The clock history is aged by; the scheduler's own in tests. Default the system clock. */
  clock?: Clock;
}

const DAY_MS = 86_400_000;
/** The journal is rewritten when it holds more than this many lines and twice as many as jobs. */
const COMPACT_MIN_LINES = 10_000;

type JournalLine = { op: "put"; job: ScheduleJob } | { op: "claim"; ids: string[] };

const lineSchema = z.union([
  z.object({
    op: z.literal("put"),
    job: z.looseObject({
      job_id: z.string(),
      status: z.enum(JOB_STATUSES),
      execute_at: z.number(),
      due_at: z.number(),
      retry: z.looseObject({ max_attempts: z.number(), backoff: z.array(z.number()), attempt: z.number() }),
      cron: z.string().nullable(),
      idempotency_key: z.string().nullable(),
    }),
  }),
  z.object({ op: z.literal("claim"), ids: z.array(z.string()) }),
]);

const optionsSchema = z.strictObject({
  path: z.string({ error: "is required: the journal file" }).min(1, "must not be empty"),
  sync: z.boolean().optional(),
  historyMs: z.number().int().nonnegative().optional(),
  clock: z
    .custom<Clock>((c) => typeof c === "object" && c !== null && "now" in c, "must implement Clock")
    .optional(),
});

/** The start time of a process (from /proc), so that a recycled pid is not taken for the lock's holder. */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Refuses a file another user could have written: its owner must be us, and no one else may write it. */
function checkOwnership(path: string, fd: number): void {
  const stat = fstatSync(fd);
  const uid = process.getuid?.();
  if (!stat.isFile() || (uid !== undefined && stat.uid !== uid) || (stat.mode & 0o022) !== 0) {
    throw new StoreUnavailableError(
      `Refusing the schedule journal ${path}: it must be a regular file owned by this user and writable by no one else`,
      { retryable: false },
    );
  }
}

/** Takes `<path>.lock`, or throws naming the live process that holds it. A lock whose holder died is taken over. */
function takeLock(lockPath: string, journalPath: string): () => void {
  const mine = `${process.pid} ${startTimeOf(process.pid) ?? ""}\n`;
  for (let tries = 0; ; tries++) {
    try {
      const fd = openSync(
        lockPath,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o600,
      );
      writeSync(fd, mine);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(lockPath, "utf8") === mine) unlinkSync(lockPath);
        } catch {}
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST" || tries > 0) {
        throw new StoreUnavailableError(
          `Cannot lock the schedule journal ${journalPath}: ${(error as Error).message}`,
          {
            cause: error,
          },
        );
      }
    }
    const [pid, started] = readFileSync(lockPath, "utf8").trim().split(" ");
    const holder = Number(pid);
    if (
      Number.isInteger(holder) &&
      holder > 0 &&
      alive(holder) &&
      (!started || startTimeOf(holder) === started)
    ) {
      throw new StoreUnavailableError(
        `The schedule journal ${journalPath} is in use by process ${holder} (its lock: ${lockPath})`,
      );
    }
    unlinkSync(lockPath);
  }
}

class JournalStore implements ScheduleStore {
  readonly name = "journal";
  readonly shared = false;
  readonly #path: string;
  readonly #sync: boolean;
  readonly #historyMs: number;
  readonly #clock: Clock;
  readonly #table = new JobTable();
  readonly #unlock: () => void;
  #fd: number;
  #lines = 0;
  #buffer: string[] = [];
  #waiting: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  #flushScheduled = false;
  /** Set when a write failed: the store stops rather than let memory and file disagree. */
  #broken: Error | undefined;
  #closed = false;

  constructor(options: JournalStoreOptions) {
    this.#path = resolve(options.path);
    this.#sync = options.sync ?? false;
    this.#historyMs = options.historyMs ?? 7 * DAY_MS;
    this.#clock = options.clock ?? systemClock;
    mkdirSync(dirname(this.#path), { recursive: true, mode: 0o700 });
    this.#unlock = takeLock(`${this.#path}.lock`, this.#path);
    try {
      this.#fd = openSync(
        this.#path,
        constants.O_RDWR | constants.O_CREAT | constants.O_APPEND | constants.O_NOFOLLOW,
        0o600,
      );
      checkOwnership(this.#path, this.#fd);
      this.#replay();
      this.#table.sweep(this.#clock.now() - this.#historyMs);
    } catch (error) {
      this.#unlock();
      throw error;
    }
  }

  /** Reads the journal into the table. A torn last line (the process died while writing it) is cut off. */
  #replay(): void {
    const text = readFileSync(this.#fd, "utf8");
    let offset = 0;
    let lineNo = 0;
    while (offset < text.length) {
      const end = text.indexOf("\n", offset);
      lineNo++;
      if (end === -1) {
        ftruncateSync(this.#fd, Buffer.byteLength(text.slice(0, offset)));
        break;
      }
      const line = text.slice(offset, end);
      offset = end + 1;
      if (line === "") continue;
      let entry: JournalLine;
      try {
        const parsed = lineSchema.safeParse(JSON.parse(line));
        if (!parsed.success) throw new Error(parsed.error.issues[0]?.message);
        entry = parsed.data as JournalLine;
      } catch (error) {
        throw new StoreUnavailableError(
          `The schedule journal ${this.#path} is damaged at line ${lineNo}: ${(error as Error).message}`,
          { retryable: false },
        );
      }
      this.#apply(entry);
      this.#lines++;
    }
  }

  #apply(entry: JournalLine): void {
    if (entry.op === "put") {
      this.#table.put(entry.job);
      return;
    }
    for (const id of entry.ids) {
      const job = this.#table.get(id);
      if (job) this.#table.put({ ...job, status: "executing" });
    }
  }

  // ── writing ────────────────────────────────────────────────────────────────

  /** Appends lines; resolves once they are written (with every other line of this turn of the event loop). */
  #write(lines: JournalLine[]): Promise<void> {
    if (this.#broken) return Promise.reject(this.#broken);
    for (const line of lines) this.#buffer.push(`${JSON.stringify(line)}\n`);
    const written = new Promise<void>((resolve, reject) => this.#waiting.push({ resolve, reject }));
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(() => this.#flush());
    }
    return written;
  }

  #flush(): void {
    this.#flushScheduled = false;
    const text = this.#buffer.join("");
    const waiting = this.#waiting;
    this.#lines += this.#buffer.length;
    this.#buffer = [];
    this.#waiting = [];
    try {
      const bytes = Buffer.from(text, "utf8");
      for (let written = 0; written < bytes.length; ) written += writeSync(this.#fd, bytes, written);
      if (this.#sync) fdatasyncSync(this.#fd);
      if (this.#lines > COMPACT_MIN_LINES && this.#lines > 2 * this.#table.size) this.#compact();
    } catch (error) {
      this.#broken = new StoreUnavailableError(
        `Writing the schedule journal ${this.#path} failed; the store has stopped: ${(error as Error).message}`,
        { cause: error, retryable: false },
      );
      for (const w of waiting) w.reject(this.#broken);
      return;
    }
    for (const w of waiting) w.resolve();
  }

  /** Rewrites the journal with one line per job, dropping history past its time. */
  #compact(): void {
    this.#table.sweep(this.#clock.now() - this.#historyMs);
    const lines: string[] = [];
    for (const job of this.#table.jobs()) lines.push(`${JSON.stringify({ op: "put", job })}\n`);
    const tmp = `${this.#path}.${process.pid}.tmp`;
    writeFileSync(tmp, lines.join(""), { mode: 0o600, flag: "w" });
    const fd = openSync(tmp, "r");
    fdatasyncSync(fd);
    closeSync(fd);
    renameSync(tmp, this.#path);
    closeSync(this.#fd);
    this.#fd = openSync(this.#path, constants.O_RDWR | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
    this.#lines = lines.length;
  }

  #usable(): void {
    if (this.#closed)
      throw new StoreUnavailableError(`The schedule journal ${this.#path} is closed`, { retryable: false });
    if (this.#broken) throw this.#broken;
  }

  // ── the store ──────────────────────────────────────────────────────────────

  async add(job: ScheduleJob): Promise<{ job: ScheduleJob; created: boolean }> {
    this.#usable();
    const existing =
      job.idempotency_key === null ? undefined : this.#table.byIdempotencyKey(job.idempotency_key);
    if (existing) return { job: existing, created: false };
    this.#table.put(job);
    await this.#write([{ op: "put", job }]);
    return { job, created: true };
  }

  async get(jobId: string): Promise<ScheduleJob | undefined> {
    this.#usable();
    return this.#table.get(jobId);
  }

  async list(filter: JobFilter): Promise<ScheduleJob[]> {
    this.#usable();
    return this.#table.list(filter);
  }

  async cancel(jobId: string, now: number): Promise<ScheduleJob | undefined> {
    this.#usable();
    const job = this.#table.cancel(jobId, now);
    if (job) await this.#write([{ op: "put", job }]);
    return job;
  }

  async claim(now: number, limit: number, leaseUntil: number): Promise<JobClaim[]> {
    this.#usable();
    const claims = this.#table.claim(now, limit, leaseUntil);
    if (claims.length > 0) await this.#write([{ op: "claim", ids: claims.map((c) => c.job.job_id) }]);
    return claims;
  }

  async record(claim: JobClaim, next: ScheduleJob): Promise<boolean> {
    this.#usable();
    if (!this.#table.holds(claim)) return false;
    this.#table.put(next);
    await this.#write([{ op: "put", job: next }]);
    return true;
  }

  async renew(claims: readonly JobClaim[], leaseUntil: number): Promise<void> {
    this.#usable();
    this.#table.renew(claims, leaseUntil);
  }

  async requeueExpired(now: number): Promise<number> {
    this.#usable();
    const jobs = this.#table.requeueExpired(now);
    if (jobs.length > 0) await this.#write(jobs.map((job) => ({ op: "put" as const, job })));
    return jobs.length;
  }

  async nextDue(): Promise<number | undefined> {
    this.#usable();
    return this.#table.nextDue();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    if (this.#flushScheduled) this.#flush();
    this.#closed = true;
    closeSync(this.#fd);
    this.#unlock();
  }
}

/**
 * Opens (or creates) a journal store at `path`, replaying what it holds. Jobs that were
 * executing when the last holder died come back as executing with their lease over, so the
 * scheduler re-queues them when it starts. Throws `STORE_UNAVAILABLE` when another live
 * process holds the journal, the file is not this user's own, or a line is damaged.
 */
export async function openJournalStore(options: JournalStoreOptions): Promise<ScheduleStore> {
  parseOrRefuse(optionsSchema, options, "journal store options");
  return new JournalStore(options);
}
