import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, inject, it } from "vitest";
import { openRedisStore } from "../../../src/schedule/index.js";
import { buildJob } from "../../../src/schedule/job.js";
import { type Receiver, startReceiver } from "../schedule/receiver.js";

const url = inject("redisUrl");
const fixture = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "scheduler-process.ts");
const children: ChildProcess[] = [];
let receiver: Receiver | undefined;

afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null) {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  }
  await receiver?.close();
});

/** A scheduler in a process of its own, on the shared store; resolves once it says ready. */
async function schedulerProcess(prefix: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ["--import", "tsx", fixture], {
    env: { ...process.env, RK_TEST_REDIS_URL: url, RK_TEST_PREFIX: prefix },
    stdio: ["ignore", "pipe", "inherit"],
  });
  children.push(child);
  const [line] = (await Promise.race([
    once(child.stdout!, "data"),
    once(child, "exit").then(([code]) => {
      throw new Error(`scheduler process exited with ${code} before it was ready`);
    }),
  ])) as [Buffer];
  expect(line.toString()).toContain("ready");
  return child;
}

describe("openRedisStore: several processes share one schedule", () => {
  it("two processes fire each of 1,000 due jobs exactly once between them", async () => {
    receiver = await startReceiver();
    const prefix = `rk-test:${randomBytes(6).toString("hex")}:`;
    await Promise.all([schedulerProcess(prefix), schedulerProcess(prefix)]);

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
