import { spawnSync } from "node:child_process";
import { appendFileSync, chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { isRuntimeKernelError } from "../../../src/index.js";
import { openJournalStore } from "../../../src/schedule/index.js";
import { ManualClock } from "../../../src/testing/index.js";
import { tempDir } from "./helpers.js";
import { describeScheduleStore, job } from "./store-spec.js";

const NOW = Date.UTC(2026, 0, 1);

describeScheduleStore("openJournalStore", () =>
  openJournalStore({ path: join(tempDir(), "schedule.journal"), clock: new ManualClock(NOW) }),
);

async function failure(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error("expected a failure");
    },
    (error: Error) => error,
  );
}

describe("openJournalStore: the file", () => {
  it("creates the journal private to its user (0600, folder 0700)", async () => {
    const dir = join(tempDir(), "state");
    const store = await openJournalStore({ path: join(dir, "schedule.journal") });
    expect(statSync(join(dir, "schedule.journal")).mode & 0o777).toBe(0o600);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    await store.close();
  });

  it("gives back after a reopen every job as it was, idempotency keys included", async () => {
    const path = join(tempDir(), "schedule.journal");
    const clock = new ManualClock(NOW);
    const first = await openJournalStore({ path, clock });
    const [a, b, c] = [job(0), job(50, { idempotency_key: "k" }), job(0)];
    for (const j of [a!, b!, c!]) await first.add(j);
    const claims = await first.claim(NOW, 2, NOW + 60_000);
    await first.record(claims[0]!, { ...claims[0]!.job, status: "completed", completed_at: NOW / 1000 });
    await first.close();

    const second = await openJournalStore({ path, clock });
    expect((await second.get(a!.job_id))?.status).toBe("completed");
    // Executing when the journal was closed: its lease is over, and it is re-queued at once.
    expect((await second.get(c!.job_id))?.status).toBe("executing");
    expect(await second.requeueExpired(NOW + 1)).toBe(1);
    expect(await second.add(job(70, { idempotency_key: "k" }))).toMatchObject({ created: false, job: b });
    await second.close();
  });

  it("cuts off a torn last line (the process died writing it) and keeps the rest", async () => {
    const path = join(tempDir(), "schedule.journal");
    const store = await openJournalStore({ path });
    const kept = job(10);
    await store.add(kept);
    await store.close();
    appendFileSync(path, '{"op":"put","job":{"job_id":"job_torn');
    const reopened = await openJournalStore({ path });
    expect((await reopened.list({ limit: 10 })).map((j) => j.job_id)).toEqual([kept.job_id]);
    await reopened.close();
    expect(readFileSync(path, "utf8").endsWith("\n")).toBe(true);
  });

  it("refuses a journal damaged before its last line, naming the line", async () => {
    const path = join(tempDir(), "schedule.journal");
    writeFileSync(path, 'not json\n{"op":"claim","ids":[]}\n', { mode: 0o600 });
    const error = await failure(openJournalStore({ path }));
    expect(isRuntimeKernelError(error, "STORE_UNAVAILABLE")).toBe(true);
    expect(error.message).toMatch(/damaged at line 1/);
    writeFileSync(path, '{"op":"put","job":{"job_id":"x"}}\n', { mode: 0o600 });
    expect((await failure(openJournalStore({ path }))).message).toMatch(/damaged at line 1/);
  });

  it("refuses a journal that others may write", async () => {
    const path = join(tempDir(), "schedule.journal");
    writeFileSync(path, "", { mode: 0o600 });
    chmodSync(path, 0o666);
    const error = await failure(openJournalStore({ path }));
    expect(error.message).toMatch(/owned by this user and writable by no one else/);
  });

  it("is held by one process at a time; a lock left by a dead process is taken over", async () => {
    const path = join(tempDir(), "schedule.journal");
    const first = await openJournalStore({ path });
    const error = await failure(openJournalStore({ path }));
    expect(isRuntimeKernelError(error, "STORE_UNAVAILABLE")).toBe(true);
    expect(error.message).toContain(`in use by process ${process.pid}`);
    await first.close();
    // A holder that died (SIGKILL) leaves its lock behind.
    const dead = spawnSync("true").pid as number;
    writeFileSync(`${path}.lock`, `${dead} 1\n`);
    const second = await openJournalStore({ path });
    await second.close();
  });

  it("rewrites itself compactly when it has grown to twice what it holds", async () => {
    const path = join(tempDir(), "schedule.journal");
    const store = await openJournalStore({ path });
    const j = job(0);
    await store.add(j);
    for (let i = 0; i < 6_000; i++) {
      const [claim] = await store.claim(NOW + 1_000_000, 1, NOW + 2_000_000);
      await store.record(claim!, {
        ...claim!.job,
        status: "pending",
        retry: { ...claim!.job.retry, attempt: i },
      });
    }
    await store.close();
    const lines = readFileSync(path, "utf8").trim().split("\n");
    // 12,001 lines were written; the rewrite at 10,000 left one, and 2,000 came after it.
    expect(lines.length).toBeLessThan(2_100);
    const reopened = await openJournalStore({ path });
    expect(await reopened.get(j.job_id)).toMatchObject({ status: "pending", retry: { attempt: 5_999 } });
    await reopened.close();
  });

  it("forgets final jobs past their history, and frees their idempotency keys", async () => {
    const path = join(tempDir(), "schedule.journal");
    const clock = new ManualClock(NOW);
    const store = await openJournalStore({ path, clock, historyMs: 60_000 });
    const j = job(0, { idempotency_key: "once" });
    await store.add(j);
    await store.cancel(j.job_id, NOW);
    await store.close();
    await clock.advance(60_001);
    const reopened = await openJournalStore({ path, clock, historyMs: 60_000 });
    expect(await reopened.get(j.job_id)).toBeUndefined();
    expect((await reopened.add(job(0, { idempotency_key: "once" }))).created).toBe(true);
    await reopened.close();
  });

  it("refuses options it does not know, naming them", async () => {
    const error = await failure(openJournalStore({ path: "", sink: 1 } as never));
    expect(error.message).toMatch(/path: must not be empty/);
    expect(error.message).toMatch(/sink/);
  });
});
