/**
 * The port between the scheduler and where jobs live. The scheduler decides (when a job is
 * due, what a failure means, when a cron job fires next); a store only keeps jobs and makes
 * each state change atomic. Two ship with the library: the journal (one process, no server)
 * and Redis (shared by every process that uses it).
 * @module
 */
import type { JobStatus, ScheduleJob } from "./job.js";

/** A job taken for firing. Only the holder of `token` can record its outcome. */
export interface JobClaim {
  /** The job as it was when claimed (status `executing`). */
  job: ScheduleJob;
  /** Proves the claim: a store refuses a record whose token is no longer the job's. */
  token: string;
}

/** What `list` returns. */
export interface JobFilter {
  /** Only jobs in this state. Without it: pending and executing jobs. */
  status?: JobStatus;
  /** At most this many, in `due_at` order. */
  limit: number;
}

/**
 * Where jobs live. Times are epoch ms. Every method may be called concurrently; each must be
 * atomic on its own. Jobs are stored whole (header values included): redaction is the
 * scheduler's job, not the store's.
 */
export interface ScheduleStore {
  /** A short name for messages: `journal`, `redis`. */
  readonly name: string;
  /**
   * Whether other processes change the store too. The scheduler then polls it for jobs they
   * added and for their expired claims; an exclusive store is only read when the scheduler's
   * own timer says something is due.
   */
  readonly shared: boolean;
  /** Stores a new pending job, unless its `idempotency_key` is taken: then the job holding it, and `created: false`. */
  add(job: ScheduleJob): Promise<{ job: ScheduleJob; created: boolean }>;
  get(jobId: string): Promise<ScheduleJob | undefined>;
  list(filter: JobFilter): Promise<ScheduleJob[]>;
  /**
   * Marks a pending or executing job `cancelled` (an executing one's claim is then void) and
   * returns it; `undefined` if the job is unknown or already final.
   */
  cancel(jobId: string, now: number): Promise<ScheduleJob | undefined>;
  /** Atomically moves up to `limit` pending jobs due at `now` to executing, leased until `leaseUntil`, in due order. */
  claim(now: number, limit: number, leaseUntil: number): Promise<JobClaim[]>;
  /**
   * Replaces a claimed job with `next` (status `pending`, `completed` or `failed`) if the claim
   * still holds. Returns false when it does not (the job was cancelled, or its lease expired
   * and it was re-queued): then nothing is written.
   */
  record(claim: JobClaim, next: ScheduleJob): Promise<boolean>;
  /** Extends the leases of claims still held. */
  renew(claims: readonly JobClaim[], leaseUntil: number): Promise<void>;
  /** Returns executing jobs whose lease ran out by `now` to pending, due at `now`. Returns how many. */
  requeueExpired(now: number): Promise<number>;
  /** When the earliest pending job is due, if any. */
  nextDue(): Promise<number | undefined>;
  /** Releases the store's resources (file handles, connections, locks). */
  close(): Promise<void>;
}
