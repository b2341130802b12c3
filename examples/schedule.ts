/**
 * Scheduled HTTP calls with runtime-kernel/schedule: a one-shot job, a job whose receiver
 * fails once and is retried, a cancelled job and a cron job, against a receiver on
 * loopback, with the jobs kept in a journal file. Runs in about two seconds.
 *
 *   npx tsx examples/schedule.ts
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createScheduler, openJournalStore } from "runtime-kernel/schedule";

// A receiver that answers 503 to the first call to /flaky, and 200 to everything else.
let flakyCalls = 0;
const receiver = createServer((req, res) => {
  const key = req.headers["idempotency-key"];
  const status = req.url === "/flaky" && ++flakyCalls === 1 ? 503 : 200;
  console.log(`receiver: ${req.method} ${req.url} (Idempotency-Key ${key}) -> ${status}`);
  req.resume();
  res.writeHead(status).end();
});
await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

const dir = mkdtempSync(join(tmpdir(), "rk-schedule-example-"));
const scheduler = createScheduler({ store: await openJournalStore({ path: join(dir, "schedule.journal") }) });
scheduler.on("fired", (job) => console.log(`fired: ${job.job_id} ${job.request?.url} -> ${job.status}`));

const inOneSecond = Date.now() / 1000 + 1;
const once = await scheduler.schedule({
  execute_at: inOneSecond,
  request: { url: `${base}/digest`, body: { week: 23 }, headers: { Authorization: "Bearer not-shown" } },
  idempotency_key: "digest-week-23",
});
console.log(`scheduled ${once.job_id}, headers as stored: ${JSON.stringify(once.request?.headers)}`);
const again = await scheduler.schedule({
  execute_at: inOneSecond,
  request: { url: `${base}/digest` },
  idempotency_key: "digest-week-23",
});
console.log(`same idempotency key, same job: ${again.job_id === once.job_id}`);

const flaky = await scheduler.schedule({
  execute_at: inOneSecond,
  request: { url: `${base}/flaky` },
  retry: { max_attempts: 3, backoff: [0.5] },
});
const cancelled = await scheduler.schedule({ execute_at: inOneSecond, request: { url: `${base}/never` } });
await scheduler.cancel(cancelled.job_id);
const weekly = await scheduler.schedule({ cron: "0 9 * * 1", request: { url: `${base}/weekly` } });
console.log(`cron job first fires at ${new Date(weekly.execute_at * 1000).toISOString()}`);

try {
  await scheduler.schedule({ cron: "0 9 * * 8", request: { url: "ftp://example.test/" } });
} catch (error) {
  console.log(`refused: ${(error as Error).message}`);
}

// Wait until the retried job is done, then show where every job ended.
while ((await scheduler.get(flaky.job_id))?.status !== "completed") {
  await new Promise((resolve) => setTimeout(resolve, 100));
}
for (const job of [once, flaky, cancelled, weekly]) {
  const now = await scheduler.get(job.job_id);
  console.log(
    `${job.request?.url}: ${now?.status}${now?.retry.attempt ? ` after ${now.retry.attempt} failed attempt(s)` : ""}`,
  );
}

await scheduler.close();
receiver.close();
rmSync(dir, { recursive: true, force: true });
