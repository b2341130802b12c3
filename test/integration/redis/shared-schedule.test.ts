import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, inject, it } from "vitest";
import { openRedisStore } from "../../../src/schedule/index.js";
import { buildJob } from "../../../src/schedule/job.js";
import { type Home, makeHome, type Serve, startServe } from "../http/support.js";
import { type Receiver, startReceiver } from "../schedule/receiver.js";

const url = inject("redisUrl");
const homes: Home[] = [];
const serves: Serve[] = [];
let receiver: Receiver | undefined;

afterEach(async () => {
  for (const serve of serves.splice(0)) if (serve.child.exitCode === null) await serve.stop();
  for (const home of homes.splice(0)) await home.cleanup();
  await receiver?.close();
});

/** A `runtime-kernel serve --http` on the shared Redis store. */
async function serveOn(prefix: string): Promise<Serve> {
  const home = makeHome({ schedule: { store: { redis: url, prefix } } });
  homes.push(home);
  const serve = await startServe(home);
  serves.push(serve);
  expect(serve.stderr()).toMatch(/firing schedule\.v1 jobs from redis redis:\/\/127\.0\.0\.1:\d+/);
  expect(serve.stderr()).not.toContain(new URL(url).password);
  return serve;
}

describe("openRedisStore: several processes share one schedule", () => {
  it("two serve processes fire each of 1,000 due jobs exactly once between them", async () => {
    receiver = await startReceiver();
    const prefix = `rk-test:${randomBytes(6).toString("hex")}:`;
    await Promise.all([serveOn(prefix), serveOn(prefix)]);

    const store = await openRedisStore({ url, prefix });
    const due = Date.now() / 1000 + 1;
    const ids = new Set<string>();
    await Promise.all(
      Array.from({ length: 1_000 }, async (_, i) => {
        const job = buildJob(
          { execute_at: due, request: { url: `${receiver!.url}/job/${i}` } },
          { now: Date.now(), timeZone: "UTC" },
        );
        ids.add(job.job_id);
        await store.add(job);
      }),
    );
    const calls = await receiver.received(1_000);
    // Every job's final state is recorded before its scheduler moves on: wait for all to complete.
    for (;;) {
      const left = await store.list({ limit: 10 });
      if (left.length === 0) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const keys = calls.map((c) => c.headers["idempotency-key"] as string);
    expect(keys).toHaveLength(1_000);
    expect(new Set(keys).size).toBe(1_000);
    expect(new Set(keys.map((k) => k.split(":")[0]))).toEqual(ids);
    expect(await store.list({ status: "completed", limit: 10_000 })).toHaveLength(1_000);
    await store.close();
  });
});
