/**
 * Global setup of the `redis` test project: a private redis-server (test/setup/redis-server.ts)
 * for the run, its URL handed to the tests as `RK_TEST_REDIS_URL`, stopped by pid afterwards.
 * If it cannot start, setup throws: the tier fails, it never skips.
 */
import type { TestProject } from "vitest/node";
import { startRedis } from "./redis-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** `redis://:<password>@127.0.0.1:<port>` of the run's private server. */
    redisUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const redis = await startRedis();
  process.env.RK_TEST_REDIS_URL = redis.url;
  project.provide("redisUrl", redis.url);
  return () => redis.stop();
}
