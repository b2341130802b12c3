import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createRuntimeKernel, isRuntimeKernelError, type RuntimeKernel } from "../../../src/index.js";
import {
  DispatchFailedError,
  IDEMPOTENCY_HEADER,
  openJournalStore,
  REDACTED,
  type ScheduleJob,
  workloadIdOf,
} from "../../../src/schedule/index.js";
import { FakeBackend, ManualClock, settle } from "../../../src/testing/index.js";
import { at, hang, harness, T0, tempDir } from "./helpers.js";
import { job } from "./store-spec.js";

const url = "http://svc.test/dispatch";
const fail =
  (message = "500 from receiver") =>
  async () => {
    throw new DispatchFailedError(message);
  };

describe("createScheduler: one-shot jobs", () => {
  it("fires a job only when its execute_at is reached, with its request", async () => {
    const { clock, scheduler, calls } = await harness();
    const job = await scheduler.schedule({
      execute_at: at(300),
      request: { url, body: { x: 1 }, headers: { "X-Internal-Secret": "s3cret" } },
    });
    expect(job).toMatchObject({ status: "pending", execute_at: at(300), due_at: at(300), cron: null });
    expect(job.job_id).toMatch(/^job_[0-9a-f]{16}$/);

    await clock.advance(299_000);
    expect(calls).toHaveLength(0);
    await clock.advance(1_000);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.at).toBe(T0 + 300_000);
    expect(calls[0]!.request).toEqual({
      method: "POST",
      url,
      headers: { "X-Internal-Secret": "s3cret" },
      body: { x: 1 },
      timeout: 30,
    });
    expect(await scheduler.get(job.job_id)).toMatchObject({
      status: "completed",
      result: { status_code: 200 },
      completed_at: at(300),
    });
    expect(clock.pending).toBe(0);
  });

  it("fills in the contract's defaults: POST, no headers, null body, 30 s, retry 3 x [30, 120, 300], empty metadata", async () => {
    const { scheduler } = await harness();
    const job = await scheduler.schedule({ execute_at: at(60), request: { url } });
    expect(job).toMatchObject({
      request: { method: "POST", url, headers: {}, body: null, timeout: 30 },
      retry: { max_attempts: 3, backoff: [30, 120, 300], attempt: 0 },
      metadata: {},
      idempotency_key: null,
      created_at: T0 / 1000,
    });
  });

  it("reads execute_at as epoch seconds or as an ISO 8601 date-time with a zone", async () => {
    const { scheduler } = await harness();
    const iso = await scheduler.schedule({ execute_at: "2026-01-01T01:00:00+01:00", request: { url } });
    expect(iso.execute_at).toBe(at(0));
    const utc = await scheduler.schedule({ execute_at: "2026-01-02T00:00:00.5Z", request: { url } });
    expect(utc.execute_at).toBe(at(86_400.5));
  });

  it("fires a job scheduled for now (within the skew tolerance) at once", async () => {
    const { clock, scheduler, calls } = await harness();
    await clock.advance(30_000);
    await scheduler.schedule({ execute_at: at(0), request: { url } });
    await clock.advance(0);
    expect(calls).toHaveLength(1);
  });

  it("sends the same idempotency key (job id and firing) on every attempt of a firing", async () => {
    const { clock, scheduler, calls, answer } = await harness();
    answer(fail());
    const job = await scheduler.schedule({ execute_at: at(10), request: { url }, retry: { backoff: [5] } });
    await clock.advance(20_000);
    expect(calls.map((c) => c.context.attempt)).toEqual([1, 2, 3]);
    expect(new Set(calls.map((c) => c.context.idempotencyKey))).toEqual(new Set([`${job.job_id}:${at(10)}`]));
    expect(calls[0]!.context).toMatchObject({ jobId: job.job_id, firing: at(10) });
    expect(IDEMPOTENCY_HEADER).toBe("Idempotency-Key");
  });
});

describe("createScheduler: retries", () => {
  it("retries a failing dispatch after each backoff, then marks the job failed at max_attempts", async () => {
    const { clock, scheduler, calls, answer } = await harness();
    answer(fail());
    const job = await scheduler.schedule({
      execute_at: at(0),
      request: { url },
      retry: { max_attempts: 3, backoff: [10, 20, 30] },
    });
    await clock.advance(0);
    expect(calls).toHaveLength(1);
    expect(await scheduler.get(job.job_id)).toMatchObject({
      status: "pending",
      execute_at: at(0),
      due_at: at(10),
      retry: { attempt: 1 },
      error: "500 from receiver",
    });

    await clock.advance(9_999);
    expect(calls).toHaveLength(1);
    await clock.advance(1);
    expect(calls).toHaveLength(2);
    expect((await scheduler.get(job.job_id))?.due_at).toBe(at(30));

    await clock.advance(20_000);
    expect(calls.map((c) => c.at - T0)).toEqual([0, 10_000, 30_000]);
    expect(await scheduler.get(job.job_id)).toMatchObject({
      status: "failed",
      retry: { attempt: 3 },
      error: "500 from receiver",
      failed_at: at(30),
    });
    expect(await scheduler.list({ status: "pending" })).toEqual([]);
    await clock.advance(3_600_000);
    expect(calls).toHaveLength(3);
  });

  it("reuses the last backoff past the end of the list", async () => {
    const { clock, scheduler, calls, answer } = await harness();
    answer(fail());
    await scheduler.schedule({
      execute_at: at(0),
      request: { url },
      retry: { max_attempts: 5, backoff: [10] },
    });
    await clock.advance(3_600_000);
    expect(calls.map((c) => (c.at - T0) / 1000)).toEqual([0, 10, 20, 30, 40]);
  });

  it("uses the default backoff of 30, 120 and 300 s", async () => {
    const { clock, scheduler, calls, answer } = await harness();
    answer(fail());
    await scheduler.schedule({ execute_at: at(0), request: { url }, retry: { max_attempts: 4 } });
    await clock.advance(3_600_000);
    expect(calls.map((c) => (c.at - T0) / 1000)).toEqual([0, 30, 150, 450]);
  });

  it("counts attempts already made (retry.attempt)", async () => {
    const { clock, scheduler, calls, answer } = await harness();
    answer(fail());
    const job = await scheduler.schedule({
      execute_at: at(0),
      request: { url },
      retry: { max_attempts: 3, attempt: 2 },
    });
    await clock.advance(3_600_000);
    expect(calls).toHaveLength(1);
    expect((await scheduler.get(job.job_id))?.status).toBe("failed");
  });

  it("completes a job whose retry succeeds", async () => {
    const { clock, scheduler, calls, answer } = await harness();
    answer(async () => {
      if (calls.length < 3) throw new Error("transient");
      return { status_code: 201 };
    });
    const job = await scheduler.schedule({ execute_at: at(0), request: { url }, retry: { backoff: [10] } });
    await clock.advance(60_000);
    expect(calls).toHaveLength(3);
    const done = await scheduler.get(job.job_id);
    expect(done).toMatchObject({ status: "completed", result: { status_code: 201 }, completed_at: at(20) });
    expect(done?.error).toBeUndefined();
  });

  it("fails a job at once when the dispatch says no retry can help", async () => {
    const { clock, scheduler, calls, answer } = await harness();
    answer(async () => {
      throw new DispatchFailedError("gone for good", { retryable: false });
    });
    const job = await scheduler.schedule({ execute_at: at(0), request: { url } });
    await clock.advance(3_600_000);
    expect(calls).toHaveLength(1);
    expect(await scheduler.get(job.job_id)).toMatchObject({ status: "failed", error: "gone for good" });
  });
});

describe("createScheduler: cron jobs", () => {
  it("fires at the next slot after now, and re-arms the same job for the slot after each success", async () => {
    const { clock, scheduler, calls } = await harness();
    const job = await scheduler.schedule({ cron: "* * * * *", request: { url } });
    expect(job.execute_at).toBe(at(60));

    await clock.advance(60_000);
    expect(calls).toHaveLength(1);
    const pending = await scheduler.list({ status: "pending" });
    expect(pending).toHaveLength(1);
    expect(pending[0]).toMatchObject({
      job_id: job.job_id,
      execute_at: at(120),
      cron: "* * * * *",
      result: { status_code: 200 },
      completed_at: at(60),
    });

    await clock.advance(60_000);
    expect(calls.map((c) => c.context.idempotencyKey)).toEqual([
      `${job.job_id}:${at(60)}`,
      `${job.job_id}:${at(120)}`,
    ]);
  });

  it("re-arms a cron job with its retry policy, attempts counted afresh", async () => {
    const { clock, scheduler, calls, answer } = await harness();
    answer(async () => {
      if (calls.length === 1) throw new Error("transient");
      return { status_code: 200 };
    });
    const job = await scheduler.schedule({
      cron: "*/10 * * * *",
      request: { url },
      retry: { max_attempts: 2, backoff: [30] },
    });
    await clock.advance(600_000 + 30_000);
    expect(await scheduler.get(job.job_id)).toMatchObject({
      status: "pending",
      execute_at: at(1200),
      retry: { max_attempts: 2, backoff: [30], attempt: 0 },
    });
  });

  it("keeps a cron job failed once a firing exhausts its attempts (it re-arms only after a success)", async () => {
    const { clock, scheduler, calls, answer } = await harness();
    answer(fail());
    const job = await scheduler.schedule({
      cron: "* * * * *",
      request: { url },
      retry: { max_attempts: 2, backoff: [1] },
    });
    await clock.advance(600_000);
    expect(calls).toHaveLength(2);
    expect((await scheduler.get(job.job_id))?.status).toBe("failed");
  });

  it("reads cron in the scheduler's time zone: a fixed-time job runs once across each DST change", async () => {
    const clock = new ManualClock(Date.parse("2026-03-28T12:00:00Z"));
    const { scheduler, calls } = await harness({ clock, timeZone: "Europe/Berlin" });
    await scheduler.schedule({ cron: "30 2 * * *", request: { url } });
    // Berlin springs forward on 29 March 02:00 -> 03:00: 02:30 does not exist that day.
    await clock.advance(3 * 86_400_000);
    expect(calls.map((c) => new Date(c.at).toISOString())).toEqual([
      "2026-03-29T01:00:00.000Z", // 03:00 CEST, the first minute after the gap
      "2026-03-30T00:30:00.000Z", // 02:30 CEST
      "2026-03-31T00:30:00.000Z",
    ]);
  });

  it("runs a fixed-time job once when its local time occurs twice (autumn)", async () => {
    const clock = new ManualClock(Date.parse("2026-10-24T12:00:00Z"));
    const { scheduler, calls } = await harness({ clock, timeZone: "Europe/Berlin" });
    await scheduler.schedule({ cron: "30 2 * * *", request: { url } });
    // Berlin falls back on 25 October 03:00 -> 02:00: 02:30 happens twice.
    await clock.advance(2 * 86_400_000);
    expect(calls.map((c) => new Date(c.at).toISOString())).toEqual([
      "2026-10-25T00:30:00.000Z", // 02:30 CEST, the first of the two
      "2026-10-26T01:30:00.000Z", // 02:30 CET
    ]);
  });

  it("runs an interval job on the wall-clock slots that exist across the spring gap", async () => {
    const clock = new ManualClock(Date.parse("2026-03-28T23:30:00Z"));
    const { scheduler, calls } = await harness({ clock, timeZone: "Europe/Berlin" });
    await scheduler.schedule({ cron: "0 * * * *", request: { url } });
    await clock.advance(3 * 3_600_000);
    // 01:00 CET, then 03:00 CEST (02:00 does not exist), then 04:00 CEST: one hour apart in real time.
    expect(calls.map((c) => new Date(c.at).toISOString())).toEqual([
      "2026-03-29T00:00:00.000Z",
      "2026-03-29T01:00:00.000Z",
      "2026-03-29T02:00:00.000Z",
    ]);
  });
});

describe("createScheduler: idempotency keys", () => {
  it("returns the existing job for a duplicate key, stores nothing and fires once", async () => {
    const { clock, scheduler, calls } = await harness();
    const spec = { execute_at: at(100), request: { url }, idempotency_key: "dispatch-42" };
    const first = await scheduler.schedule(spec);
    const second = await scheduler.schedule({ ...spec, execute_at: at(200) });
    expect(second.job_id).toBe(first.job_id);
    expect(second.execute_at).toBe(at(100));
    expect(await scheduler.list()).toHaveLength(1);
    await clock.advance(300_000);
    expect(calls).toHaveLength(1);
    // A duplicate after the job completed still returns it (the key lives as long as the job's history).
    const again = await scheduler.schedule({ ...spec, execute_at: at(400) });
    expect(again).toMatchObject({ job_id: first.job_id, status: "completed" });
    await clock.advance(300_000);
    expect(calls).toHaveLength(1);
  });
});

describe("createScheduler: cancel", () => {
  it("cancels a pending job so that it never fires; unknown or final jobs give undefined", async () => {
    const { clock, scheduler, calls } = await harness();
    const job = await scheduler.schedule({ execute_at: at(100), request: { url } });
    const cancelled = await scheduler.cancel(job.job_id);
    expect(cancelled).toMatchObject({ job_id: job.job_id, status: "cancelled", cancelled_at: at(0) });
    expect(await scheduler.list({ status: "pending" })).toEqual([]);
    expect((await scheduler.get(job.job_id))?.status).toBe("cancelled");
    expect(await scheduler.list({ status: "cancelled" })).toHaveLength(1);

    await clock.advance(10_000_000);
    expect(calls).toHaveLength(0);
    expect(await scheduler.cancel("job_does_not_exist")).toBeUndefined();
    expect(await scheduler.cancel(job.job_id)).toBeUndefined();
  });

  it("cancels a job while it fires: the call is aborted and nothing is retried or re-armed", async () => {
    const { clock, scheduler, calls, answer } = await harness();
    answer(hang);
    const job = await scheduler.schedule({ cron: "* * * * *", request: { url } });
    await clock.advance(60_000);
    expect(calls).toHaveLength(1);
    expect((await scheduler.get(job.job_id))?.status).toBe("executing");

    expect((await scheduler.cancel(job.job_id))?.status).toBe("cancelled");
    await settle();
    expect(calls[0]!.context.signal.aborted).toBe(true);
    await clock.advance(600_000);
    expect(calls).toHaveLength(1);
    expect((await scheduler.get(job.job_id))?.status).toBe("cancelled");
  });
});

describe("createScheduler: recovery", () => {
  it("re-queues a job that was executing when its process died, and fires it again with the same idempotency key", async () => {
    const first = await harness();
    first.answer(hang);
    const job = await first.scheduler.schedule({ execute_at: at(10), request: { url } });
    await first.clock.advance(10_000);
    expect(first.calls).toHaveLength(1);

    const second = await first.afterCrash();
    expect(await second.scheduler.ready).toBe(1);
    await second.clock.advance(0);
    expect(second.calls).toHaveLength(1);
    expect(second.calls[0]!.context.idempotencyKey).toBe(first.calls[0]!.context.idempotencyKey);
    expect(second.calls[0]!.context.attempt).toBe(1);
    expect((await second.scheduler.get(job.job_id))?.status).toBe("completed");
  });

  it("keeps what a crash cannot touch: pending jobs stay pending, final ones final", async () => {
    const first = await harness();
    const done = await first.scheduler.schedule({ execute_at: at(0), request: { url } });
    const later = await first.scheduler.schedule({ execute_at: at(500), request: { url } });
    await first.clock.advance(0);
    const second = await first.afterCrash();
    expect(await second.scheduler.ready).toBe(0);
    expect((await second.scheduler.get(done.job_id))?.status).toBe("completed");
    expect((await second.scheduler.get(later.job_id))?.status).toBe("pending");
    await second.clock.advance(500_000);
    expect(second.calls.map((c) => c.context.jobId)).toEqual([later.job_id]);
  });

  it("close() aborts firings in flight and puts them back, to fire at the next start", async () => {
    const first = await harness();
    first.answer(hang);
    const job = await first.scheduler.schedule({ execute_at: at(0), request: { url } });
    await first.clock.advance(0);
    await first.scheduler.close();
    expect(first.calls[0]!.context.signal.aborted).toBe(true);

    const second = await first.afterCrash();
    // Put back as pending, not left executing: nothing to re-queue, and not an attempt.
    expect(await second.scheduler.ready).toBe(0);
    await second.scheduler.tick();
    expect(second.calls.map((c) => c.context.attempt)).toEqual([1]);
    expect((await second.scheduler.get(job.job_id))?.status).toBe("completed");
  });
});

describe("createScheduler: concurrency", () => {
  it("fires at most `concurrency` jobs at once and the rest as slots free up", async () => {
    const { clock, scheduler, calls, answer } = await harness({ concurrency: 2 });
    const release: Array<() => void> = [];
    answer(() => new Promise((resolve) => release.push(() => resolve({ status_code: 200 }))));
    for (let i = 0; i < 5; i++) await scheduler.schedule({ execute_at: at(0), request: { url } });
    await clock.advance(0);
    expect(calls).toHaveLength(2);
    release.shift()!();
    await settle();
    await settle();
    expect(calls).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      release.shift()!();
      await settle();
      await settle();
    }
    expect(calls).toHaveLength(5);
    for (const r of release.splice(0)) r();
    await scheduler.tick();
    expect(await scheduler.list({ status: "completed" })).toHaveLength(5);
  });

  it("lists pending jobs in due order, at most `limit`", async () => {
    const { scheduler } = await harness();
    for (const s of [300, 100, 200]) await scheduler.schedule({ execute_at: at(s), request: { url } });
    expect((await scheduler.list()).map((j) => j.execute_at)).toEqual([at(100), at(200), at(300)]);
    expect(await scheduler.list({ limit: 2 })).toHaveLength(2);
  });
});

describe("createScheduler: secrets", () => {
  it("shows header values as [redacted] everywhere a job is returned, and sends them unchanged", async () => {
    const { clock, scheduler, calls } = await harness();
    const fired: ScheduleJob[] = [];
    scheduler.on("fired", (job) => fired.push(job));
    const headers = { Authorization: "Bearer tok-123", "X-Internal-Secret": "s3cret" };
    const job = await scheduler.schedule({ execute_at: at(5), request: { url, headers } });
    const views = [job, await scheduler.get(job.job_id), ...(await scheduler.list())];
    await clock.advance(5_000);
    views.push(...fired, ...(await scheduler.list({ status: "completed" })));
    for (const view of views) {
      expect(view?.request?.headers).toEqual({ Authorization: REDACTED, "X-Internal-Secret": REDACTED });
      expect(JSON.stringify(view)).not.toMatch(/tok-123|s3cret/);
    }
    expect(calls[0]!.request.headers).toEqual(headers);
  });
});

describe("createScheduler: scheduled workloads", () => {
  const profiles = { agent: { runnable: { command: ["agent"] }, graceMs: 0 } };

  async function withKernel(behavior = {}) {
    const clock = new ManualClock(T0);
    const fake = new FakeBackend({ clock, defaults: behavior });
    const kernel: RuntimeKernel = createRuntimeKernel({ backend: fake, clock, profiles });
    const h = await harness({ clock, kernel, profiles: Object.keys(profiles) });
    return { ...h, fake, kernel };
  }

  it("starts the workload at each firing, with an id derived from the job and the firing", async () => {
    const { clock, scheduler, kernel, fake } = await withKernel();
    const job = await scheduler.schedule({
      cron: "0 * * * *",
      workload: { profile: "agent", owner: "alice", env: { TOKEN: "tok-123" } },
    });
    expect(job.workload?.env).toEqual({ TOKEN: REDACTED });
    await clock.advance(3_600_000);
    const firstId = `${job.job_id.replace("_", "-")}-${at(3600)}`;
    expect(kernel.get(firstId)).toMatchObject({ state: "running", owner: "alice", profile: "agent" });
    expect(fake.inspect(firstId)?.request.env.TOKEN).toBe("tok-123");
    const after = await scheduler.get(job.job_id);
    expect(after).toMatchObject({
      status: "pending",
      execute_at: at(7200),
      result: { workload_id: firstId, run_id: kernel.get(firstId)!.runId },
    });
    expect(workloadIdOf({ ...after!, execute_at: at(3600) })).toBe(firstId);
    await clock.advance(3_600_000);
    expect(kernel.get(`${job.job_id.replace("_", "-")}-${at(7200)}`)?.state).toBe("running");
    await kernel.shutdown({ graceMs: 0 });
  });

  it("retries a firing whose start failed with the same workload id", async () => {
    const { clock, scheduler, kernel, fake } = await withKernel();
    const job = await scheduler.schedule({
      execute_at: at(0),
      workload: { profile: "agent" },
      retry: { backoff: [10] },
    });
    const id = workloadIdOf(job);
    fake.behave(id, { startError: "image not found" });
    await clock.advance(0);
    expect(await scheduler.get(job.job_id)).toMatchObject({ status: "pending", retry: { attempt: 1 } });
    expect((await scheduler.get(job.job_id))?.error).toMatch(/image not found/);
    fake.behave(id, {});
    await clock.advance(10_000);
    expect((await scheduler.get(job.job_id))?.status).toBe("completed");
    expect(kernel.get(id)?.state).toBe("running");
    await kernel.shutdown({ graceMs: 0 });
  });

  it("does not start a firing's workload twice when the firing is re-queued after it ran", async () => {
    const first = await withKernel();
    let release!: () => void;
    const job = await first.scheduler.schedule({ execute_at: at(0), workload: { profile: "agent" } });
    // The record of the firing is held back: the process "dies" after the start, before the record.
    const gate = new Promise<void>((resolve) => (release = resolve));
    const record = first.store.record.bind(first.store);
    first.store.record = async (claim, next) => {
      await gate;
      return record(claim, next);
    };
    await first.clock.advance(0);
    expect(first.fake.started).toBe(1);

    const second = await first.afterCrash({ kernel: first.kernel });
    expect(await second.scheduler.ready).toBe(1);
    await second.scheduler.tick();
    expect(first.fake.started).toBe(1);
    expect((await second.scheduler.get(job.job_id))?.result).toMatchObject({
      workload_id: workloadIdOf(job),
    });
    release();
    await first.kernel.shutdown({ graceMs: 0 });
  });

  it("refuses a workload spec the kernel would refuse, naming the field", async () => {
    const { scheduler, kernel } = await withKernel();
    const error = await scheduler
      .schedule({ execute_at: at(0), workload: { profile: "agent", env: { "1BAD": "x" } } })
      .catch((e: unknown) => e);
    expect(isRuntimeKernelError(error, "INVALID_SPEC") && error.issues[0]?.path).toBe("workload.env.1BAD");
    expect(await scheduler.list()).toEqual([]);
    await kernel.shutdown({ graceMs: 0 });
  });

  it("fails a firing the kernel refuses (a profile it lacks), without retrying", async () => {
    const clock = new ManualClock(T0);
    const kernel = createRuntimeKernel({ backend: new FakeBackend({ clock }), clock, profiles });
    const { scheduler } = await harness({ clock, kernel });
    const job = await scheduler.schedule({ execute_at: at(0), workload: { profile: "other" } });
    await clock.advance(3_600_000);
    const failed = await scheduler.get(job.job_id);
    expect(failed).toMatchObject({ status: "failed", retry: { attempt: 1 } });
    expect(failed?.error).toMatch(/unknown profile "other"/);
    await kernel.shutdown({ graceMs: 0 });
  });

  it("refuses a workload job without a kernel, and one naming an unknown profile", async () => {
    const { scheduler } = await harness();
    await expect(scheduler.schedule({ execute_at: at(0), workload: { profile: "agent" } })).rejects.toThrow(
      /workload: this scheduler has no kernel/,
    );
    const { scheduler: withProfiles, kernel } = await withKernel();
    await expect(
      withProfiles.schedule({ execute_at: at(0), workload: { profile: "other" } }),
    ).rejects.toThrow(/workload\.profile: unknown profile "other"/);
    await kernel.shutdown({ graceMs: 0 });
  });
});

describe("createScheduler: leases and polling", () => {
  it("renews the leases of firings in flight every third of the lease, and stops when none is left", async () => {
    const clock = new ManualClock(T0);
    const { scheduler, store, calls, answer } = await harness({ clock, leaseMs: 30_000 });
    const renewals: number[] = [];
    const renew = store.renew.bind(store);
    store.renew = async (claims, leaseUntil) => {
      renewals.push(leaseUntil - clock.now());
      return renew(claims, leaseUntil);
    };
    answer(hang);
    const job = await scheduler.schedule({ execute_at: at(0), request: { url } });
    await clock.advance(0);
    expect(calls).toHaveLength(1);
    await clock.advance(35_000);
    expect(renewals).toEqual([30_000, 30_000, 30_000]);
    // Still held: nothing re-queued it, although the first lease ran out at 30 s.
    expect(await store.requeueExpired(clock.now())).toBe(0);
    await scheduler.cancel(job.job_id);
    await settle();
    expect(clock.pending).toBe(0);
  });

  it("polls a shared store for jobs other processes added, and for claims they left behind", async () => {
    const clock = new ManualClock(T0);
    const inner = await openJournalStore({ path: join(tempDir(), "schedule.journal"), clock });
    const requeues: number[] = [];
    // The journal, seen as a store other processes write too.
    const shared = new Proxy(inner, {
      get(target, name) {
        if (name === "shared") return true;
        if (name === "requeueExpired") {
          return (now: number) => {
            requeues.push(now - T0);
            return target.requeueExpired(now);
          };
        }
        const value = Reflect.get(target, name);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    const { calls } = await harness({ clock, store: shared, pollIntervalMs: 1_000 });
    // Another process adds a job due at 2.5 s: this scheduler learns of it at its next poll
    // (1 s), and fires it on time.
    await inner.add(job(2.5));
    await clock.advance(3_000);
    expect(calls.map((c) => c.at - T0)).toEqual([2_500]);
    expect(requeues).toEqual([0, 1_000, 2_000, 3_000]);
  });
});
