/**
 * Jobs in memory, indexed for the scheduler's questions: by id, by idempotency key, and the
 * pending ones in a min-heap by due time (entries that changed since they were pushed are
 * skipped when they surface, so no update ever searches the heap). The journal store keeps
 * its state here and writes each change to its file.
 * @module
 */
import { MinHeap } from "../min-heap.js";
import type { JobStatus, ScheduleJob } from "./job.js";
import type { JobClaim, JobFilter } from "./store.js";

interface Entry {
  job: ScheduleJob;
  /** Bumped at every change; a heap node of an older version is stale. */
  version: number;
  token?: string;
  leaseUntil?: number;
}

interface HeapNode {
  due: number;
  order: number;
  id: string;
  version: number;
}

const FINAL: ReadonlySet<JobStatus> = new Set(["completed", "failed", "cancelled"]);

/** When a final job ended, epoch ms. */
function endedAt(job: ScheduleJob): number {
  return ((job.completed_at ?? job.failed_at ?? job.cancelled_at ?? job.due_at) as number) * 1000;
}

/** The jobs of one store, in memory. Every method is synchronous and atomic. */
export class JobTable {
  readonly #entries = new Map<string, Entry>();
  readonly #byKey = new Map<string, string>();
  readonly #executing = new Set<string>();
  readonly #heap = new MinHeap<HeapNode>((a, b) => a.due < b.due || (a.due === b.due && a.order < b.order));
  #order = 0;
  #claims = 0;

  /** How many jobs are held, final ones included. */
  get size(): number {
    return this.#entries.size;
  }

  /** Every job, for writing a snapshot. */
  jobs(): IterableIterator<ScheduleJob> {
    return (function* (entries) {
      for (const entry of entries) yield entry.job;
    })(this.#entries.values());
  }

  /** The job holding `key`, if any. */
  byIdempotencyKey(key: string): ScheduleJob | undefined {
    const id = this.#byKey.get(key);
    return id === undefined ? undefined : this.#entries.get(id)?.job;
  }

  get(jobId: string): ScheduleJob | undefined {
    return this.#entries.get(jobId)?.job;
  }

  /** Puts a job as it is (new, or replacing one with the same id). An executing job's lease is already over. */
  put(job: ScheduleJob): void {
    const previous = this.#entries.get(job.job_id);
    const entry: Entry = { job, version: (previous?.version ?? 0) + 1 };
    this.#entries.set(job.job_id, entry);
    if (job.idempotency_key !== null) this.#byKey.set(job.idempotency_key, job.job_id);
    if (job.status === "executing") {
      entry.leaseUntil = 0;
      this.#executing.add(job.job_id);
    } else this.#executing.delete(job.job_id);
    if (job.status === "pending") this.#push(entry);
  }

  list(filter: JobFilter): ScheduleJob[] {
    const wanted = (status: JobStatus) =>
      filter.status === undefined ? status === "pending" || status === "executing" : status === filter.status;
    const jobs: ScheduleJob[] = [];
    for (const { job } of this.#entries.values()) if (wanted(job.status)) jobs.push(job);
    return jobs.sort((a, b) => a.due_at - b.due_at).slice(0, filter.limit);
  }

  /** Takes up to `limit` pending jobs due at `now`, in due order, and marks them executing. */
  claim(now: number, limit: number, leaseUntil: number): JobClaim[] {
    const claims: JobClaim[] = [];
    while (claims.length < limit) {
      const top = this.#top();
      if (!top || top.due > now) break;
      this.#heap.pop();
      const entry = this.#entries.get(top.id) as Entry;
      // Only this process's table sees the token: a counter is as good as a random one.
      const token = String(++this.#claims);
      entry.job = { ...entry.job, status: "executing" };
      entry.version++;
      entry.token = token;
      entry.leaseUntil = leaseUntil;
      this.#executing.add(top.id);
      claims.push({ job: entry.job, token });
    }
    return claims;
  }

  /** Whether `claim` still holds: the job is executing under its token. */
  holds(claim: JobClaim): boolean {
    const entry = this.#entries.get(claim.job.job_id);
    return entry?.job.status === "executing" && entry.token === claim.token;
  }

  renew(claims: readonly JobClaim[], leaseUntil: number): void {
    for (const claim of claims) {
      if (this.holds(claim)) (this.#entries.get(claim.job.job_id) as Entry).leaseUntil = leaseUntil;
    }
  }

  /** Pending or executing: the job marked cancelled at `now`; otherwise `undefined`. */
  cancel(jobId: string, now: number): ScheduleJob | undefined {
    const entry = this.#entries.get(jobId);
    if (!entry || FINAL.has(entry.job.status)) return undefined;
    const job: ScheduleJob = { ...entry.job, status: "cancelled", cancelled_at: now / 1000 };
    this.put(job);
    return job;
  }

  /** Executing jobs whose lease ran out by `now`, put back to pending, due at `now`. */
  requeueExpired(now: number): ScheduleJob[] {
    const requeued: ScheduleJob[] = [];
    for (const id of this.#executing) {
      const entry = this.#entries.get(id) as Entry;
      if ((entry.leaseUntil ?? 0) > now) continue;
      const job: ScheduleJob = { ...entry.job, status: "pending", due_at: now / 1000 };
      this.put(job);
      requeued.push(job);
    }
    return requeued;
  }

  /** When the earliest pending job is due, epoch ms. */
  nextDue(): number | undefined {
    return this.#top()?.due;
  }

  /** Forgets final jobs that ended before `before` (epoch ms), and their idempotency keys. */
  sweep(before: number): void {
    for (const [id, { job }] of this.#entries) {
      if (!FINAL.has(job.status) || endedAt(job) >= before) continue;
      this.#entries.delete(id);
      if (job.idempotency_key !== null && this.#byKey.get(job.idempotency_key) === id) {
        this.#byKey.delete(job.idempotency_key);
      }
    }
  }

  // ── the heap of pending jobs ───────────────────────────────────────────────

  #live(node: HeapNode): boolean {
    const entry = this.#entries.get(node.id);
    return entry !== undefined && entry.version === node.version && entry.job.status === "pending";
  }

  #top(): HeapNode | undefined {
    let top = this.#heap.peek();
    while (top && !this.#live(top)) {
      this.#heap.pop();
      top = this.#heap.peek();
    }
    return top;
  }

  #push(entry: Entry): void {
    this.#heap.push({
      due: entry.job.due_at * 1000,
      order: this.#order++,
      id: entry.job.job_id,
      version: entry.version,
    });
  }
}
