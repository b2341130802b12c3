/**
 * What every ScheduleStore must do, run against the journal (unit tier) and Redis (redis tier).
 */
import { describe, expect, it } from "vitest";
import type { JobClaim, ScheduleJob, ScheduleStore } from "../../../src/schedule/index.js";
import { newJobId } from "../../../src/schedule/job.js";

const NOW = Date.UTC(2026, 0, 1);

/** A pending job due `dueS` seconds after NOW. */
export function job(dueS: number, extra: Partial<ScheduleJob> = {}): ScheduleJob {
  const at = NOW / 1000 + dueS;
  return {
    job_id: newJobId(),
    status: "pending",
    execute_at: at,
    due_at: at,
    created_at: NOW / 1000,
    request: { method: "POST", url: "http://svc.test/x", headers: { A: "b" }, body: null, timeout: 30 },
    retry: { max_attempts: 3, backoff: [30, 120, 300], attempt: 0 },
    metadata: {},
    cron: null,
    idempotency_key: null,
    ...extra,
  };
}

const ids = (jobs: readonly { job_id: string }[]) => jobs.map((j) => j.job_id);
const claimIds = (claims: readonly JobClaim[]) => claims.map((c) => c.job.job_id);

/** The ScheduleStore specification. `open` gives an empty store; the spec closes it. */
export function describeScheduleStore(name: string, open: () => Promise<ScheduleStore>): void {
  async function using<T>(body: (store: ScheduleStore) => Promise<T>): Promise<T> {
    const store = await open();
    try {
      return await body(store);
    } finally {
      await store.close();
    }
  }

  describe(`${name}: a ScheduleStore`, () => {
    it("keeps a job whole and returns it by id", () =>
      using(async (store) => {
        const j = job(10, {
          request: {
            method: "PUT",
            url: "http://svc.test/x?y=1",
            headers: { "X-Secret": "s" },
            body: { big: 12345678901234567890n.toString(), n: 1.5, list: [1, "ü", null], nested: { a: {} } },
            timeout: 7,
          },
          metadata: { source: "meeting-api", n: 3 },
          cron: "0 9 * * 1",
        });
        expect(await store.add(j)).toEqual({ job: j, created: true });
        expect(await store.get(j.job_id)).toEqual(j);
        expect(await store.get("job_0000000000000000")).toBeUndefined();
      }));

    it("lists pending and executing jobs in due order, at most `limit`, or one status", () =>
      using(async (store) => {
        const [a, b, c] = [job(30), job(10), job(20)];
        for (const j of [a, b, c]) await store.add(j!);
        expect(ids(await store.list({ limit: 50 }))).toEqual(ids([b!, c!, a!]));
        expect(ids(await store.list({ limit: 2 }))).toEqual(ids([b!, c!]));
        await store.claim(NOW + 10_000, 1, NOW + 60_000);
        expect(ids(await store.list({ limit: 50, status: "executing" }))).toEqual(ids([b!]));
        expect(ids(await store.list({ limit: 50, status: "pending" }))).toEqual(ids([c!, a!]));
        expect(ids(await store.list({ limit: 50 }))).toEqual(ids([b!, c!, a!]));
        expect(await store.list({ limit: 50, status: "completed" })).toEqual([]);
      }));

    it("returns the job holding an idempotency key instead of adding a second", () =>
      using(async (store) => {
        const first = job(10, { idempotency_key: "k-1" });
        await store.add(first);
        const again = await store.add(job(20, { idempotency_key: "k-1" }));
        expect(again).toEqual({ job: first, created: false });
        expect(await store.list({ limit: 50 })).toHaveLength(1);
      }));

    it("claims due jobs in due order, up to the limit, once", () =>
      using(async (store) => {
        const jobs = [job(3), job(1), job(2), job(100)];
        for (const j of jobs) await store.add(j);
        expect(await store.nextDue()).toBe(NOW + 1_000);
        const first = await store.claim(NOW + 3_000, 2, NOW + 60_000);
        expect(claimIds(first)).toEqual(ids([jobs[1]!, jobs[2]!]));
        expect(first.every((c) => c.job.status === "executing")).toBe(true);
        expect((await store.get(jobs[1]!.job_id))?.status).toBe("executing");
        const second = await store.claim(NOW + 3_000, 10, NOW + 60_000);
        expect(claimIds(second)).toEqual(ids([jobs[0]!]));
        expect(await store.claim(NOW + 3_000, 10, NOW + 60_000)).toEqual([]);
        expect(await store.nextDue()).toBe(NOW + 100_000);
      }));

    it("gives each due job to exactly one of many concurrent claims", () =>
      using(async (store) => {
        const jobs = Array.from({ length: 40 }, (_, i) => job(i % 7));
        await Promise.all(jobs.map((j) => store.add(j)));
        const rounds = await Promise.all(
          Array.from({ length: 8 }, () => store.claim(NOW + 10_000, 7, NOW + 60_000)),
        );
        const claimed = rounds.flatMap(claimIds);
        expect(claimed).toHaveLength(40);
        expect(new Set(claimed).size).toBe(40);
      }));

    it("records a firing's outcome only while the claim holds", () =>
      using(async (store) => {
        const j = job(0);
        await store.add(j);
        const [claim] = await store.claim(NOW, 1, NOW + 60_000);
        const done: ScheduleJob = {
          ...claim!.job,
          status: "completed",
          result: { status_code: 200 },
          completed_at: NOW / 1000,
        };
        expect(await store.record(claim!, done)).toBe(true);
        expect(await store.get(j.job_id)).toEqual(done);
        expect(await store.record(claim!, { ...done, status: "failed" })).toBe(false);
        expect((await store.get(j.job_id))?.status).toBe("completed");
        expect(ids(await store.list({ limit: 50, status: "completed" }))).toEqual([j.job_id]);
      }));

    it("puts a job recorded as pending back in the queue at its new due time", () =>
      using(async (store) => {
        const j = job(0);
        await store.add(j);
        const [claim] = await store.claim(NOW, 1, NOW + 60_000);
        const retry: ScheduleJob = {
          ...claim!.job,
          status: "pending",
          due_at: NOW / 1000 + 30,
          error: "boom",
        };
        expect(await store.record(claim!, retry)).toBe(true);
        expect(await store.claim(NOW + 29_000, 10, NOW + 60_000)).toEqual([]);
        expect(await store.nextDue()).toBe(NOW + 30_000);
        const [again] = await store.claim(NOW + 30_000, 10, NOW + 90_000);
        expect(again?.job).toMatchObject({ job_id: j.job_id, status: "executing", error: "boom" });
        expect(again?.token).not.toBe(claim?.token);
      }));

    it("cancels a pending job; an executing one too, voiding its claim; a final or unknown one not", () =>
      using(async (store) => {
        const [a, b] = [job(0), job(100)];
        await store.add(a);
        await store.add(b);
        const [claim] = await store.claim(NOW, 1, NOW + 60_000);
        const cancelledB = await store.cancel(b.job_id, NOW + 5_000);
        expect(cancelledB).toMatchObject({
          job_id: b.job_id,
          status: "cancelled",
          cancelled_at: NOW / 1000 + 5,
        });
        const cancelledA = await store.cancel(a.job_id, NOW + 6_000);
        expect(cancelledA?.status).toBe("cancelled");
        expect(await store.record(claim!, { ...claim!.job, status: "completed" })).toBe(false);
        expect((await store.get(a.job_id))?.status).toBe("cancelled");
        expect(await store.cancel(a.job_id, NOW + 7_000)).toBeUndefined();
        expect(await store.cancel("job_0000000000000000", NOW)).toBeUndefined();
        expect(await store.claim(NOW + 1_000_000, 10, NOW + 2_000_000)).toEqual([]);
        expect(await store.nextDue()).toBeUndefined();
        expect(ids(await store.list({ limit: 50, status: "cancelled" })).sort()).toEqual(
          [a.job_id, b.job_id].sort(),
        );
      }));

    it("re-queues executing jobs whose lease ran out, and voids their old claims; renewed leases hold", () =>
      using(async (store) => {
        const [a, b] = [job(0), job(0)];
        await store.add(a);
        await store.add(b);
        const claims = await store.claim(NOW, 2, NOW + 10_000);
        expect(await store.requeueExpired(NOW + 5_000)).toBe(0);
        await store.renew([claims.find((c) => c.job.job_id === b.job_id)!], NOW + 30_000);
        expect(await store.requeueExpired(NOW + 10_000)).toBe(1);
        expect(await store.get(a.job_id)).toMatchObject({ status: "pending", due_at: NOW / 1000 + 10 });
        expect((await store.get(b.job_id))?.status).toBe("executing");
        const stale = claims.find((c) => c.job.job_id === a.job_id)!;
        expect(await store.record(stale, { ...stale.job, status: "completed" })).toBe(false);
        const [fresh] = await store.claim(NOW + 10_000, 10, NOW + 60_000);
        expect(fresh?.job.job_id).toBe(a.job_id);
      }));
  });
}
