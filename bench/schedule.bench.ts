/**
 * The scheduler under load, on each store: 100,000 pending jobs, then bursts of 1,000 more
 * falling due within one second while those wait.
 *
 *   flock /tmp/rk-substrate.lock node --expose-gc --import tsx bench/schedule.bench.ts
 *
 * Prints one JSON line. For the journal and for Redis (a private redis-server, started by
 * test/setup/redis-server.ts and stopped afterwards):
 * - scheduleMs: 100,000 `scheduler.schedule()` calls (1,000 at a time), jobs due tomorrow;
 *   heapMb / rssMb: what the process holds for them after a GC; journalMb / redisUsedMb: on
 *   disk, in Redis;
 * - lag, in each of `BENCH_ROUNDS` (3) rounds: 1,000 jobs due evenly over one second, fired by
 *   the real HTTP dispatch at a receiver in another process on loopback. dispatch = due -> the
 *   dispatch call starts; arrival = due -> the receiver has the request. Medians over rounds.
 * The floors, in the same run: the same 100,000 jobs written straight to a file (one append
 * per 1,000) and straight to Redis (HSET + ZADD each, 1,000 at a time, auto-pipelined); and,
 * first in each round, a plain `setTimeout` + keep-alive `node:http` POST per job at the same
 * due times to the same receiver.
 * Rounds alternate the stores' order; loadAvg is the machine's 1-minute load before and after.
 * Target: dispatch lag p99 under 1 s at 1,000 jobs/s on either store.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import {
  createScheduler,
  type Dispatch,
  httpDispatch,
  openJournalStore,
  openRedisStore,
  type ScheduleStore,
} from "../src/schedule/index.js";
import { buildJob } from "../src/schedule/job.js";
import { startRedis } from "../test/setup/redis-server.js";

const PENDING = Number(process.env.BENCH_PENDING ?? 100_000);
const DUE = Number(process.env.BENCH_DUE ?? 1_000);
const CHUNK = 1_000;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const LEAD_MS = 3_000;

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
};
const r1 = (x: number) => Math.round(x * 10) / 10;
const mb = (bytes: number) => r1(bytes / 1024 / 1024);

/** The receiver, in a process of its own: records when each call arrived, answers 200. */
const RECEIVER = `
const http = require("node:http");
const arrivals = [];
const server = http.createServer((req, res) => {
  if (req.url === "/stats") { res.end(JSON.stringify(arrivals)); arrivals.length = 0; return; }
  const at = Date.now();
  req.resume();
  req.on("end", () => { arrivals.push([req.url, at]); res.end(); });
});
server.listen(0, "127.0.0.1", () => process.stdout.write(String(server.address().port) + "\\n"));
`;

async function startReceiver(): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, ["-e", RECEIVER], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<string>((resolve) =>
    child.stdout!.once("data", (d: Buffer) => resolve(d.toString().trim())),
  );
  return { url: `http://127.0.0.1:${port}`, child };
}

/** Arrivals since the last call, by path: `/due/<due ms>`. */
async function arrivals(url: string): Promise<Array<[string, number]>> {
  return (await (await fetch(`${url}/stats`)).json()) as Array<[string, number]>;
}

interface Lag {
  dispatchP50Ms: number;
  dispatchP99Ms: number;
  dispatchMaxMs: number;
  arrivalP50Ms: number;
  arrivalP99Ms: number;
  fired: number;
}

function lagOf(dispatched: number[], arrived: Array<[string, number]>): Lag {
  const arrival = arrived.map(([path, at]) => at - Number(path.split("/")[2]));
  return {
    dispatchP50Ms: r1(pct(dispatched, 50)),
    dispatchP99Ms: r1(pct(dispatched, 99)),
    dispatchMaxMs: r1(Math.max(...dispatched)),
    arrivalP50Ms: r1(pct(arrival, 50)),
    arrivalP99Ms: r1(pct(arrival, 99)),
    fired: arrived.length,
  };
}

/** Due times of the burst: `DUE` jobs spread evenly over one second, starting `LEAD_MS` from now. */
function burst(): number[] {
  const start = Date.now() + LEAD_MS;
  return Array.from({ length: DUE }, (_, i) => start + Math.floor((i * 1000) / DUE));
}

/** The floor: one setTimeout + a plain keep-alive `node:http` POST per job, at the same due times. */
async function floorLag(receiver: string): Promise<Lag> {
  const agent = new http.Agent({ keepAlive: true });
  const dispatched: number[] = [];
  const post = (path: string) =>
    new Promise<void>((resolve, reject) => {
      const req = http.request(`${receiver}${path}`, { method: "POST", agent }, (res) => {
        res.resume();
        resolve();
      });
      req.on("error", reject);
      req.end();
    });
  await Promise.all(
    burst().map(
      (due) =>
        new Promise<void>((resolve, reject) => {
          setTimeout(() => {
            dispatched.push(Date.now() - due);
            post(`/due/${due}`).then(resolve, reject);
          }, due - Date.now());
        }),
    ),
  );
  agent.destroy();
  return lagOf(dispatched, await arrivals(receiver));
}

/** A scheduler on `store` with the real HTTP dispatch, recording each firing's dispatch lag. */
async function loaded(name: string, store: ScheduleStore, receiver: string, extra: () => Promise<object>) {
  let dispatched: number[] = [];
  const dispatch: Dispatch = (request, context) => {
    const due = Number(new URL(request.url).pathname.split("/")[2]);
    if (due) dispatched.push(Date.now() - due);
    return httpDispatch(request, context);
  };
  const scheduler = createScheduler({ store, dispatch });
  scheduler.on("error", (error) => console.error(`${name}: ${error.message}`));
  await scheduler.ready;

  globalThis.gc?.();
  const heap0 = process.memoryUsage();
  const tomorrow = Date.now() / 1000 + 86_400;
  const t0 = performance.now();
  for (let i = 0; i < PENDING; i += CHUNK) {
    await Promise.all(
      Array.from({ length: Math.min(CHUNK, PENDING - i) }, (_, j) =>
        scheduler.schedule({ execute_at: tomorrow + (i + j) / 1000, request: { url: `${receiver}/later` } }),
      ),
    );
  }
  const scheduleMs = performance.now() - t0;
  globalThis.gc?.();
  const heap1 = process.memoryUsage();
  const setup = {
    scheduleMs: Math.round(scheduleMs),
    schedulePerSec: Math.round(PENDING / (scheduleMs / 1000)),
    heapMb: mb(heap1.heapUsed - heap0.heapUsed),
    rssMb: mb(heap1.rss - heap0.rss),
    ...(await extra()),
  };

  /** One burst: `DUE` jobs due over one second, among the pending ones; resolves once all completed. */
  const burstLag = async (): Promise<Lag> => {
    dispatched = [];
    let completed = 0;
    const done = new Promise<void>((resolve) => {
      const onFired = (job: { status: string }) => {
        if (job.status === "completed" && ++completed === DUE) {
          scheduler.off("fired", onFired);
          resolve();
        }
      };
      scheduler.on("fired", onFired);
    });
    const dues = burst();
    await Promise.all(
      dues.map((due) =>
        scheduler.schedule({ execute_at: due / 1000, request: { url: `${receiver}/due/${due}` } }),
      ),
    );
    await done;
    return lagOf(dispatched, await arrivals(receiver));
  };
  return { setup, burstLag, close: () => scheduler.close() };
}

/** The same jobs written straight to a file, one append per chunk. */
function journalFloor(dir: string): number {
  const path = join(dir, "floor.ndjson");
  const now = Date.now();
  const t0 = performance.now();
  for (let i = 0; i < PENDING; i += CHUNK) {
    const lines: string[] = [];
    for (let j = 0; j < CHUNK && i + j < PENDING; j++) {
      const job = buildJob(
        { execute_at: now / 1000 + 86_400, request: { url: "http://127.0.0.1:1/x" } },
        { now, timeZone: "UTC" },
      );
      lines.push(`${JSON.stringify({ op: "put", job })}\n`);
    }
    appendFileSync(path, lines.join(""));
  }
  return Math.round(performance.now() - t0);
}

/** The same jobs written straight to Redis: HSET + ZADD each, 1,000 at a time, auto-pipelined as the store's client is. */
async function redisFloor(url: string): Promise<number> {
  const client = new Redis(url, { enableAutoPipelining: true });
  const now = Date.now();
  const t0 = performance.now();
  for (let i = 0; i < PENDING; i += CHUNK) {
    await Promise.all(
      Array.from({ length: Math.min(CHUNK, PENDING - i) }, async () => {
        const job = buildJob(
          { execute_at: now / 1000 + 86_400, request: { url: "http://127.0.0.1:1/x" } },
          { now, timeZone: "UTC" },
        );
        await client.hset(
          `floor:job:${job.job_id}`,
          "job",
          JSON.stringify(job),
          "status",
          "pending",
          "due",
          job.due_at * 1000,
        );
        await client.zadd("floor:pending", job.due_at * 1000, job.job_id);
      }),
    );
  }
  const ms = Math.round(performance.now() - t0);
  await client.flushdb();
  client.disconnect();
  return ms;
}

async function redisUsed(url: string): Promise<number> {
  const client = new Redis(url);
  const info = await client.info("memory");
  client.disconnect();
  return Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
}

const median = (xs: number[]) => pct(xs, 50);

const dir = mkdtempSync(join(tmpdir(), "rk-schedule-bench-"));
const receiver = await startReceiver();
const redis = await startRedis();
try {
  const load0 = loadavg()[0] as number;
  const journalWriteMs = journalFloor(dir);
  const redisPipelineMs = await redisFloor(redis.url);
  const path = join(dir, "schedule.journal");
  const journal = await loaded("journal", await openJournalStore({ path }), receiver.url, async () => ({
    journalMb: mb(statSync(path).size),
  }));
  const used0 = await redisUsed(redis.url);
  const redisStore = await loaded(
    "redis",
    await openRedisStore({ url: redis.url }),
    receiver.url,
    async () => ({
      redisUsedMb: mb((await redisUsed(redis.url)) - used0),
    }),
  );

  // Rounds: the floor, then each store in turn (alternating which goes first), so that a
  // noisy moment of this shared machine weighs on all three alike.
  const lags: Record<"floor" | "journal" | "redis", Lag[]> = { floor: [], journal: [], redis: [] };
  for (let r = 0; r < ROUNDS; r++) {
    lags.floor.push(await floorLag(receiver.url));
    const order = r % 2 === 0 ? (["journal", "redis"] as const) : (["redis", "journal"] as const);
    for (const name of order) lags[name].push(await (name === "journal" ? journal : redisStore).burstLag());
  }
  await journal.close();
  await redisStore.close();

  const summary = (name: keyof typeof lags) => ({
    dispatchP50Ms: median(lags[name].map((l) => l.dispatchP50Ms)),
    dispatchP99Ms: median(lags[name].map((l) => l.dispatchP99Ms)),
    arrivalP99Ms: median(lags[name].map((l) => l.arrivalP99Ms)),
    fired: lags[name].reduce((n, l) => n + l.fired, 0),
    p99PerRound: lags[name].map((l) => l.dispatchP99Ms),
  });
  const result = {
    bench: "schedule",
    node: process.version,
    pending: PENDING,
    dueInOneSecond: DUE,
    rounds: ROUNDS,
    loadAvg: [r1(load0), r1(loadavg()[0] as number)],
    journal: { ...journal.setup, lag: summary("journal") },
    redis: { ...redisStore.setup, lag: summary("redis") },
    floor: { journalWriteMs, redisPipelineMs, lag: summary("floor") },
  };
  const met = result.journal.lag.dispatchP99Ms < 1_000 && result.redis.lag.dispatchP99Ms < 1_000;
  console.log(JSON.stringify({ ...result, target: { dispatchP99Ms: 1_000, met } }));
} finally {
  receiver.child.kill();
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}
