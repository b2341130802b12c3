/**
 * The scheduler: schedule.v1 jobs kept in a {@link ScheduleStore} and fired when due, on the
 * kernel's {@link Clock}. One timer, armed for the earliest of: the next due job, the next
 * lease renewal, and (for a shared store) the next poll. Due jobs are claimed in batches and
 * fired concurrently up to a bound; the outcome of each firing is recorded only while its
 * claim holds, so a cancelled or re-queued job is never written back.
 * @module
 */
import { EventEmitter } from "eventemitter3";
import { z } from "zod";
import {
  type Clock,
  InvalidSpecError,
  type RuntimeKernel,
  RuntimeKernelError,
  systemClock,
} from "../index.js";
import { isTimeZone, nextCronSlot } from "./cron.js";
import { type Dispatch, httpDispatch, idempotencyKeyOf, startWorkload } from "./dispatch.js";
import {
  buildJob,
  type FiringResult,
  JOB_STATUSES,
  type JobStatus,
  redact,
  type ScheduleJob,
  type ScheduleJobInput,
} from "./job.js";
import type { JobClaim, ScheduleStore } from "./store.js";
import { parseOrRefuse } from "./validate.js";

/** Options of {@link createScheduler}. */
export interface SchedulerOptions {
  /** Where jobs live: `openJournalStore(...)` or `openRedisStore(...)`. Closed by `close()`. */
  store: ScheduleStore;
  /** Makes a job's HTTP call. Default {@link httpDispatch}. */
  dispatch?: Dispatch;
  /** Starts the workloads of `workload` jobs. Without it, such jobs are refused. */
  kernel?: RuntimeKernel;
  /** The profiles a `workload` job may name; a job naming another is refused at schedule time. Default: any (the kernel refuses it at the firing, and the job fails). */
  profiles?: readonly string[];
  /** Source of time and timers; inject `ManualClock` in tests. */
  clock?: Clock;
  /** The IANA time zone cron expressions are read in. Default `UTC`. */
  timeZone?: string;
  /** Firings in flight at most. Default 64. */
  concurrency?: number;
  /** How long a claim holds without renewal; renewed every third of it while the firing runs. Default 30,000 ms. */
  leaseMs?: number;
  /** How often a shared store is polled for jobs other processes added and claims they left. Default 1,000 ms. */
  pollIntervalMs?: number;
}

/** What `list` accepts. */
export interface ListJobsOptions {
  /** Only jobs in this state. Default: pending and executing jobs. */
  status?: JobStatus;
  /** At most this many (1 to 10,000). Default 50. */
  limit?: number;
}

/** Events of a {@link Scheduler}. */
export interface SchedulerEventMap {
  /** A firing ended and its outcome was recorded: the job as it now is (completed, failed, or pending again). */
  fired: [job: ScheduleJob];
  /** A store call failed in the background; the scheduler tries again at its next poll. */
  error: [error: Error];
}

/** schedule.v1 jobs, fired when due. */
export interface Scheduler extends AsyncDisposable {
  /** The store it keeps jobs in. */
  readonly store: ScheduleStore;
  /** Resolves with how many jobs were re-queued at start (executing when their last holder died). */
  readonly ready: Promise<number>;
  /**
   * Validates and stores a job, and returns it (status `pending`). A job whose
   * `idempotency_key` is taken returns the job that holds it and stores nothing.
   * Rejects with `INVALID_SPEC`, whose issues name each bad field.
   */
  schedule(input: ScheduleJobInput): Promise<ScheduleJob>;
  /** The job, or `undefined` if unknown (or final and past the store's history). */
  get(jobId: string): Promise<ScheduleJob | undefined>;
  /** Jobs in `due_at` order. Rejects with `INVALID_SPEC` for an unknown status or a bad limit. */
  list(options?: ListJobsOptions): Promise<ScheduleJob[]>;
  /** Cancels a pending or executing job and returns it; `undefined` if unknown or already final. */
  cancel(jobId: string): Promise<ScheduleJob | undefined>;
  /**
   * Fires every job due now and resolves, with how many it claimed, once those and any
   * firings already in flight are recorded. The scheduler's timer does this by itself;
   * tests on a `ManualClock` call it after moving time.
   */
  tick(): Promise<number>;
  /** Stops firing. Firings in flight are aborted and put back as they were (they fire again at the next start). Then closes the store. */
  close(): Promise<void>;
  on<E extends keyof SchedulerEventMap>(event: E, listener: (...args: SchedulerEventMap[E]) => void): this;
  off<E extends keyof SchedulerEventMap>(event: E, listener: (...args: SchedulerEventMap[E]) => void): this;
}

/** Jobs claimed per store call. */
const CLAIM_BATCH = 100;
/** The longest the timer sleeps: far-off jobs are looked at again, and no timer overflows. */
const MAX_SLEEP_MS = 3_600_000;

const optionsSchema = z.strictObject({
  store: z.custom<ScheduleStore>(
    (s) => typeof s === "object" && s !== null && typeof (s as ScheduleStore).claim === "function",
    "must implement ScheduleStore",
  ),
  dispatch: z.custom<Dispatch>((d) => typeof d === "function", "must be a function").optional(),
  kernel: z
    .custom<RuntimeKernel>(
      (k) => typeof k === "object" && k !== null && typeof (k as RuntimeKernel).create === "function",
      "must be a RuntimeKernel",
    )
    .optional(),
  profiles: z.array(z.string()).optional(),
  clock: z
    .custom<Clock>((c) => typeof c === "object" && c !== null && "now" in c, "must implement Clock")
    .optional(),
  timeZone: z.string().refine(isTimeZone, "must be an IANA time zone, such as Europe/Berlin").optional(),
  concurrency: z.number().int().positive().optional(),
  leaseMs: z.number().int().min(1_000, "must be at least 1,000 ms").optional(),
  pollIntervalMs: z.number().int().positive().optional(),
});

const listSchema = z.strictObject({
  status: z.enum(JOB_STATUSES, { error: `must be one of ${JOB_STATUSES.join(", ")}` }).optional(),
  limit: z
    .number({ error: "must be a number" })
    .int("must be an integer")
    .min(1, "must be at least 1")
    .max(10_000, "must be at most 10000")
    .optional(),
});

/** The job after a successful firing: completed, or (cron) pending for its next slot. */
function afterSuccess(job: ScheduleJob, result: FiringResult, now: number, timeZone: string): ScheduleJob {
  const { error: _, ...rest } = job;
  const done = { ...rest, result, completed_at: now / 1000 };
  const next = job.cron === null ? undefined : nextCronSlot(job.cron, timeZone, now);
  if (next === undefined) return { ...done, status: "completed" };
  return {
    ...done,
    status: "pending",
    execute_at: next / 1000,
    due_at: next / 1000,
    retry: { ...job.retry, attempt: 0 },
  };
}

/** The job after a failed attempt: pending for a retry after its backoff, or failed. */
function afterFailure(job: ScheduleJob, error: unknown, now: number): ScheduleJob {
  const attempt = job.retry.attempt + 1;
  const message = error instanceof Error ? error.message : String(error);
  const retryable = (error as { retryable?: unknown }).retryable !== false;
  const retry = { ...job.retry, attempt };
  if (retryable && attempt < job.retry.max_attempts) {
    const { backoff } = job.retry;
    const delay = backoff.length === 0 ? 0 : (backoff[Math.min(attempt - 1, backoff.length - 1)] as number);
    return { ...job, status: "pending", due_at: now / 1000 + delay, retry, error: message };
  }
  return { ...job, status: "failed", retry, error: message, failed_at: now / 1000 };
}

/** Rejects once `signal` aborts, whatever `work` does. */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

interface Firing {
  claim: JobClaim;
  abort: AbortController;
}

class JobScheduler extends EventEmitter<SchedulerEventMap> implements Scheduler {
  readonly store: ScheduleStore;
  readonly ready: Promise<number>;
  readonly #clock: Clock;
  readonly #dispatch: Dispatch;
  readonly #kernel: RuntimeKernel | undefined;
  readonly #profiles: readonly string[] | undefined;
  readonly #timeZone: string;
  readonly #concurrency: number;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  /** Firings in flight, by job id. */
  readonly #firings = new Map<string, Firing>();
  readonly #settled = new Set<Promise<void>>();
  #dueTimer: unknown;
  #dueAt = Number.POSITIVE_INFINITY;
  #houseTimer: unknown;
  #lastRenew = 0;
  #lastPoll = 0;
  /** Whether the last pump filled every free slot: a finishing firing then pumps again. */
  #saturated = false;
  #pumpRunning: Promise<unknown> = Promise.resolve();
  #pumpQueued: Promise<number> | undefined;
  #closing = false;
  #closed: Promise<void> | undefined;

  constructor(options: SchedulerOptions) {
    super();
    parseOrRefuse(optionsSchema, options, "scheduler options");
    this.store = options.store;
    this.#clock = options.clock ?? systemClock;
    this.#dispatch = options.dispatch ?? httpDispatch;
    this.#kernel = options.kernel;
    this.#profiles = options.profiles;
    this.#timeZone = options.timeZone ?? "UTC";
    this.#concurrency = options.concurrency ?? 64;
    this.#leaseMs = options.leaseMs ?? 30_000;
    this.#pollMs = options.pollIntervalMs ?? 1_000;
    this.ready = this.#start();
    // Failures are reported as events; `ready` must not reject unobserved.
    this.ready.catch(() => {});
  }

  async #start(): Promise<number> {
    const now = this.#clock.now();
    this.#lastPoll = now;
    let recovered = 0;
    try {
      recovered = await this.store.requeueExpired(now);
    } catch (error) {
      // A shared store is polled again; an exclusive one requeues at open, so this is rare.
      this.#report(error);
    }
    this.#armHousekeeping();
    void this.#pump();
    return recovered;
  }

  // ── the public API ─────────────────────────────────────────────────────────

  async schedule(input: ScheduleJobInput): Promise<ScheduleJob> {
    if (this.#closing) throw new RuntimeKernelError("KERNEL_SHUT_DOWN", "The scheduler has been closed");
    const job = buildJob(input, {
      now: this.#clock.now(),
      timeZone: this.#timeZone,
      profiles: this.#profiles,
    });
    if (job.workload && !this.#kernel) {
      throw new InvalidSpecError(
        [{ path: "workload", message: "this scheduler has no kernel to start workloads with" }],
        { subject: "schedule job" },
      );
    }
    const { job: stored, created } = await this.store.add(job);
    if (created) this.#wakeAt(stored.due_at * 1000);
    return redact(stored);
  }

  async get(jobId: string): Promise<ScheduleJob | undefined> {
    const job = await this.store.get(jobId);
    return job && redact(job);
  }

  async list(options: ListJobsOptions = {}): Promise<ScheduleJob[]> {
    const { status, limit = 50 } = parseOrRefuse(listSchema, options, "job listing");
    const jobs = await this.store.list({ limit, status });
    return jobs.map(redact);
  }

  async cancel(jobId: string): Promise<ScheduleJob | undefined> {
    const job = await this.store.cancel(jobId, this.#clock.now());
    // The claim is void now; stop the call rather than let it run out.
    this.#firings.get(jobId)?.abort.abort();
    return job && redact(job);
  }

  async tick(): Promise<number> {
    await this.ready;
    let claimed = 0;
    for (;;) {
      const more = await this.#pump();
      while (this.#settled.size > 0) await Promise.allSettled([...this.#settled]);
      claimed += more;
      // A retry without backoff is due again at once: keep going until nothing is due.
      if (more === 0 || this.#closing) return claimed;
    }
  }

  close(): Promise<void> {
    this.#closing = true;
    this.#closed ??= (async () => {
      this.#disarm();
      for (const firing of this.#firings.values()) firing.abort.abort();
      await this.ready.catch(() => {});
      await this.#pumpRunning;
      while (this.#settled.size > 0) await Promise.allSettled([...this.#settled]);
      await this.store.close();
    })();
    return this.#closed;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  // ── firing ─────────────────────────────────────────────────────────────────

  /** Claims and fires due jobs until none is due or every slot is taken; one pump at a time. */
  #pump(): Promise<number> {
    if (this.#pumpQueued) return this.#pumpQueued;
    const run = this.#pumpRunning.then(() => {
      this.#pumpQueued = undefined;
      return this.#pumpOnce();
    });
    this.#pumpQueued = run;
    this.#pumpRunning = run.catch(() => {});
    return run;
  }

  async #pumpOnce(): Promise<number> {
    if (this.#closing) return 0;
    let claimed = 0;
    try {
      for (;;) {
        const room = Math.min(CLAIM_BATCH, this.#concurrency - this.#firings.size);
        this.#saturated = room <= 0;
        if (room <= 0) break;
        const now = this.#clock.now();
        const claims = await this.store.claim(now, room, now + this.#leaseMs);
        for (const claim of claims) this.#fire(claim);
        claimed += claims.length;
        if (claims.length < room || this.#closing) break;
      }
      await this.#arm();
    } catch (error) {
      this.#report(error);
      this.#wakeAt(this.#clock.now() + this.#pollMs);
    }
    return claimed;
  }

  #fire(claim: JobClaim): void {
    const firing: Firing = { claim, abort: new AbortController() };
    // A claim taken while closing is put back at once.
    if (this.#closing) firing.abort.abort();
    if (this.#firings.size === 0) this.#lastRenew = this.#clock.now();
    this.#firings.set(claim.job.job_id, firing);
    this.#armHousekeeping();
    const settled = this.#runFiring(firing).finally(() => {
      this.#firings.delete(claim.job.job_id);
      this.#settled.delete(settled);
      // Nothing left to renew: an exclusive store's idle scheduler holds no timer.
      if (this.#firings.size === 0 && !this.store.shared && this.#houseTimer !== undefined) {
        this.#clock.clearTimeout(this.#houseTimer);
        this.#houseTimer = undefined;
      }
      if (this.#saturated && !this.#closing) void this.#pump();
    });
    this.#settled.add(settled);
  }

  async #runFiring({ claim, abort }: Firing): Promise<void> {
    const { job } = claim;
    let next: ScheduleJob;
    try {
      const result = await untilAborted(this.#run(job, abort.signal), abort.signal);
      next = afterSuccess(job, result, this.#clock.now(), this.#timeZone);
    } catch (error) {
      // Interrupted (close, cancel): put back as it was, to fire again; a cancel voided the claim, so nothing is written.
      next = abort.signal.aborted
        ? { ...job, status: "pending" }
        : afterFailure(job, error, this.#clock.now());
    }
    try {
      if (await this.store.record(claim, next)) {
        if (!abort.signal.aborted) this.emit("fired", redact(next));
        if (next.status === "pending") this.#wakeAt(next.due_at * 1000);
      }
    } catch (error) {
      // The claim stays executing until its lease runs out; then the job is re-queued.
      this.#report(error);
    }
  }

  #run(job: ScheduleJob, signal: AbortSignal): Promise<FiringResult> {
    if (job.workload) {
      if (!this.#kernel) return Promise.reject(new Error("no kernel to start workloads with"));
      return startWorkload(this.#kernel, job);
    }
    return this.#dispatch(job.request!, {
      jobId: job.job_id,
      firing: job.execute_at,
      attempt: job.retry.attempt + 1,
      idempotencyKey: idempotencyKeyOf(job),
      signal,
    });
  }

  // ── the timers ─────────────────────────────────────────────────────────────

  /** Arms the due timer for the next due job (unless every slot is taken: a finishing firing pumps then). */
  async #arm(): Promise<void> {
    if (this.#saturated) return;
    const next = await this.store.nextDue();
    // Only ever earlier: a schedule() during the store call may have armed a sooner wake.
    if (next !== undefined) this.#wakeAt(Math.min(next, this.#clock.now() + MAX_SLEEP_MS));
  }

  #wakeAt(at: number): void {
    if (this.#closing || at >= this.#dueAt) return;
    if (this.#dueTimer !== undefined) this.#clock.clearTimeout(this.#dueTimer);
    this.#dueAt = at;
    this.#dueTimer = this.#clock.setTimeout(
      () => {
        this.#dueTimer = undefined;
        this.#dueAt = Number.POSITIVE_INFINITY;
        void this.#pump();
      },
      Math.max(0, at - this.#clock.now()),
    );
  }

  /**
   * Arms the housekeeping timer while there is housekeeping to do: renewing the leases of
   * firings in flight, and polling a shared store (for jobs other processes added and
   * claims they left behind).
   */
  #armHousekeeping(): void {
    if (this.#houseTimer !== undefined || this.#closing) return;
    const renew = this.#firings.size > 0 ? this.#leaseMs / 3 : Number.POSITIVE_INFINITY;
    const period = Math.min(renew, this.store.shared ? this.#pollMs : Number.POSITIVE_INFINITY);
    if (!Number.isFinite(period)) return;
    this.#houseTimer = this.#clock.setTimeout(() => {
      this.#houseTimer = undefined;
      void this.#housekeep().finally(() => {
        if (this.store.shared) void this.#pump();
        this.#armHousekeeping();
      });
    }, period);
  }

  async #housekeep(): Promise<void> {
    const now = this.#clock.now();
    try {
      if (this.#firings.size > 0 && now >= this.#lastRenew + this.#leaseMs / 3) {
        this.#lastRenew = now;
        const claims = [...this.#firings.values()].map((f) => f.claim);
        await this.store.renew(claims, now + this.#leaseMs);
      }
      if (this.store.shared && now >= this.#lastPoll + this.#pollMs) {
        this.#lastPoll = now;
        await this.store.requeueExpired(now);
      }
    } catch (error) {
      this.#report(error);
    }
  }

  #disarm(): void {
    if (this.#dueTimer !== undefined) this.#clock.clearTimeout(this.#dueTimer);
    if (this.#houseTimer !== undefined) this.#clock.clearTimeout(this.#houseTimer);
    this.#dueTimer = undefined;
    this.#houseTimer = undefined;
    this.#dueAt = Number.POSITIVE_INFINITY;
  }

  #report(error: unknown): void {
    this.emit("error", error instanceof Error ? error : new Error(String(error)));
  }
}

/**
 * Creates a scheduler over `store`. It starts at once: jobs left executing by a process that
 * died are re-queued (`ready` says how many), and due jobs fire.
 *
 * @example
 * ```ts
 * import { createScheduler, openJournalStore } from "runtime-kernel/schedule";
 *
 * const scheduler = createScheduler({ store: await openJournalStore({ path: "/var/lib/my-app/schedule.journal" }) });
 * await scheduler.schedule({ cron: "0 9 * * 1", request: { url: "http://digest.internal/weekly" } });
 * ```
 */
export function createScheduler(options: SchedulerOptions): Scheduler {
  return new JobScheduler(options);
}
