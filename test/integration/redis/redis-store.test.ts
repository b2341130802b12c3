import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { describe, expect, inject, it } from "vitest";
import { isRuntimeKernelError } from "../../../src/index.js";
import { openRedisStore } from "../../../src/schedule/index.js";
import { describeScheduleStore, job } from "../../unit/schedule/store-spec.js";

const url = inject("redisUrl");
/** A prefix of its own per store, so that tests never see each other's jobs. */
const prefix = () => `rk-test:${randomBytes(6).toString("hex")}:`;
const NOW = Date.UTC(2026, 0, 1);

describeScheduleStore("openRedisStore", () => openRedisStore({ url, prefix: prefix() }));

describe("openRedisStore: the connection", () => {
  it("refuses a server it cannot reach or log in to, without showing the password", async () => {
    const password = new URL(url).password;
    const wrong = url.replace(password, "not-the-password");
    const refused = await openRedisStore({ url: wrong }).catch((e: Error) => e);
    expect(isRuntimeKernelError(refused, "STORE_UNAVAILABLE")).toBe(true);
    expect((refused as Error).message).toMatch(/Cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+/);
    expect((refused as Error).message).not.toContain("not-the-password");

    const closed = await openRedisStore({ url: "redis://:s3cret@127.0.0.1:1" }).catch((e: Error) => e);
    expect(isRuntimeKernelError(closed, "STORE_UNAVAILABLE")).toBe(true);
    expect((closed as Error).message).not.toContain("s3cret");
  });

  it("refuses options it does not understand, naming them", async () => {
    await expect(openRedisStore({ url: "http://127.0.0.1:6379" })).rejects.toThrow(/url: must be a redis/);
    await expect(openRedisStore({})).rejects.toThrow(/url: give url or client/);
  });

  it("uses a client of yours, and leaves it open when closed", async () => {
    const client = new Redis(url);
    try {
      const store = await openRedisStore({ client, prefix: prefix() });
      const j = job(0);
      await store.add(j);
      expect((await store.get(j.job_id))?.job_id).toBe(j.job_id);
      await store.close();
      expect(await client.ping()).toBe("PONG");
    } finally {
      client.disconnect();
    }
  });

  it("lets final jobs and their idempotency keys expire after the history time", async () => {
    const p = prefix();
    const store = await openRedisStore({ url, prefix: p, historyMs: 30_000 });
    const client = new Redis(url);
    try {
      const j = job(0, { idempotency_key: "once" });
      await store.add(j);
      expect(await client.ttl(`${p}job:${j.job_id}`)).toBe(-1);
      const [claim] = await store.claim(NOW, 1, NOW + 60_000);
      await store.record(claim!, { ...claim!.job, status: "completed" });
      for (const key of [`${p}job:${j.job_id}`, `${p}idem:once`]) {
        const ttl = await client.ttl(key);
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(30);
      }
    } finally {
      client.disconnect();
      await store.close();
    }
  });
});
