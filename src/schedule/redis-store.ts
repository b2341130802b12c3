/**
 * The shared store: jobs in Redis, so that several processes (on several machines) share one
 * schedule and each due job fires in one of them. Every state change is one Lua script, so it
 * is atomic: a claim moves due jobs from the `pending` sorted set (scored by due time) to
 * `executing` (scored by lease expiry) and stamps each with a fresh token; only the holder of
 * that token can record the outcome. Claims not renewed in time are re-queued by whichever
 * process polls next.
 *
 * Keys, under the prefix (default `rk:schedule:`): `job:<id>` a hash (`job` JSON, `status`,
 * `due` ms, `token`, `idem`, `cancelled_at`), `idem:<key>` the job id holding an idempotency
 * key, and sorted sets `pending`, `executing`, `completed`, `failed`, `cancelled`. Final jobs
 * and their keys expire after the history time. One Redis server (or a primary), not Cluster:
 * the scripts build key names themselves.
 *
 * `ioredis`, an optional peer dependency, is loaded only here, when {@link openRedisStore}
 * runs without a client of yours.
 * @module
 */
import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import { requirePeer } from "../backends/optional-peer.js";
import { isRuntimeKernelError } from "../index.js";
import { StoreUnavailableError } from "./errors.js";
import type { JobStatus, ScheduleJob } from "./job.js";
import type { JobClaim, JobFilter, ScheduleStore } from "./store.js";
import { parseOrRefuse } from "./validate.js";

/** What the store needs of a Redis client: an ioredis `Redis` has it. */
export interface RedisClient {
  call(command: string, ...args: (string | number)[]): Promise<unknown>;
}

/** Options of {@link openRedisStore}: a `url`, or a `client` of your own. */
export interface RedisStoreOptions {
  /** `redis://[[user]:password@]host[:port][/db]` or `rediss://...` (TLS). */
  url?: string;
  /** A connected client (an ioredis `Redis`) to use instead; `close()` leaves it open. */
  client?: RedisClient;
  /** Prepended to every key. Default `rk:schedule:`. Stores with different prefixes do not see each other. */
  prefix?: string;
  /** How long completed, failed and cancelled jobs (and their idempotency keys) are kept. Default 7 days. */
  historyMs?: number;
}

const DAY_MS = 86_400_000;
/** Executing jobs listed at most (they are bounded by the processes' concurrency). */
const EXECUTING_LIST_LIMIT = 10_000;

const SCRIPTS = {
  add: `
local p = ARGV[1]
local idem = ARGV[5]
if idem ~= "" then
  local holder = redis.call("GET", p .. "idem:" .. idem)
  if holder then
    local h = redis.call("HMGET", p .. "job:" .. holder, "job", "status", "due", "cancelled_at")
    if h[1] then return {holder, h[1], h[2], h[3], h[4]} end
  end
  redis.call("SET", p .. "idem:" .. idem, ARGV[2])
end
redis.call("HSET", p .. "job:" .. ARGV[2], "job", ARGV[3], "status", "pending", "due", ARGV[4], "idem", idem)
redis.call("ZADD", p .. "pending", ARGV[4], ARGV[2])
return 1`,
  claim: `
local p = ARGV[1]
local ids = redis.call("ZRANGEBYSCORE", p .. "pending", "-inf", ARGV[2], "LIMIT", 0, tonumber(ARGV[3]))
local out = {}
for i, id in ipairs(ids) do
  local key = p .. "job:" .. id
  local token = ARGV[5] .. "." .. i
  redis.call("ZREM", p .. "pending", id)
  redis.call("ZADD", p .. "executing", ARGV[4], id)
  redis.call("HSET", key, "status", "executing", "token", token)
  local h = redis.call("HMGET", key, "job", "due")
  out[#out + 1] = token
  out[#out + 1] = h[1]
  out[#out + 1] = h[2]
end
return out`,
  record: `
local p = ARGV[1]
local id = ARGV[2]
local key = p .. "job:" .. id
if redis.call("HGET", key, "token") ~= ARGV[3] then return 0 end
redis.call("ZREM", p .. "executing", id)
redis.call("HDEL", key, "token")
redis.call("HSET", key, "job", ARGV[4], "status", ARGV[5], "due", ARGV[6])
if ARGV[5] == "pending" then
  redis.call("ZADD", p .. "pending", ARGV[6], id)
else
  redis.call("ZADD", p .. ARGV[5], ARGV[6], id)
  redis.call("EXPIRE", key, ARGV[7])
  local idem = redis.call("HGET", key, "idem")
  if idem and idem ~= "" then redis.call("EXPIRE", p .. "idem:" .. idem, ARGV[7]) end
end
return 1`,
  cancel: `
local p = ARGV[1]
local id = ARGV[2]
local key = p .. "job:" .. id
local status = redis.call("HGET", key, "status")
if status == "pending" then
  redis.call("ZREM", p .. "pending", id)
elseif status == "executing" then
  redis.call("ZREM", p .. "executing", id)
  redis.call("HDEL", key, "token")
else
  return false
end
redis.call("HSET", key, "status", "cancelled", "cancelled_at", ARGV[3])
local h = redis.call("HMGET", key, "job", "due", "idem")
redis.call("ZADD", p .. "cancelled", h[2], id)
redis.call("EXPIRE", key, ARGV[4])
if h[3] and h[3] ~= "" then redis.call("EXPIRE", p .. "idem:" .. h[3], ARGV[4]) end
return {h[1], h[2]}`,
  renew: `
local p = ARGV[1]
for i = 3, #ARGV, 2 do
  if redis.call("HGET", p .. "job:" .. ARGV[i], "token") == ARGV[i + 1] then
    redis.call("ZADD", p .. "executing", "XX", ARGV[2], ARGV[i])
  end
end
return 1`,
  requeue: `
local p = ARGV[1]
local ids = redis.call("ZRANGEBYSCORE", p .. "executing", "-inf", ARGV[2], "LIMIT", 0, tonumber(ARGV[3]))
for _, id in ipairs(ids) do
  local key = p .. "job:" .. id
  redis.call("ZREM", p .. "executing", id)
  redis.call("HDEL", key, "token")
  redis.call("HSET", key, "status", "pending", "due", ARGV[2])
  redis.call("ZADD", p .. "pending", ARGV[2], id)
end
for _, status in ipairs({"completed", "failed", "cancelled"}) do
  redis.call("ZREMRANGEBYSCORE", p .. status, "-inf", ARGV[4])
end
return #ids`,
} as const;

type ScriptName = keyof typeof SCRIPTS;

const SHAS = Object.fromEntries(
  Object.entries(SCRIPTS).map(([name, lua]) => [name, createHash("sha1").update(lua).digest("hex")]),
) as Record<ScriptName, string>;

const optionsSchema = z
  .strictObject({
    url: z
      .string()
      .refine((u) => /^rediss?:\/\//.test(u), "must be a redis:// or rediss:// URL")
      .optional(),
    client: z
      .custom<RedisClient>(
        (c) => typeof c === "object" && c !== null && typeof (c as RedisClient).call === "function",
        "must be a Redis client (an ioredis Redis)",
      )
      .optional(),
    prefix: z.string().min(1, "must not be empty").optional(),
    historyMs: z.number().int().positive().optional(),
  })
  .refine((o) => (o.url === undefined) !== (o.client === undefined), {
    message: "give url or client (exactly one)",
    path: ["url"],
  });

/** A URL fit for messages: scheme, host and port, never a password. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname === "/" ? "" : u.pathname}`;
  } catch {
    return "the given URL";
  }
}

/** A job read back: the JSON, with what the scripts change in place laid over it. */
function jobOf(json: string, status: string, due: string, cancelledAt?: string | null): ScheduleJob {
  const job = JSON.parse(json) as ScheduleJob;
  job.status = status as JobStatus;
  job.due_at = Number(due) / 1000;
  if (cancelledAt) job.cancelled_at = Number(cancelledAt);
  return job;
}

/** What a closable client we made looks like. */
interface OwnedClient extends RedisClient {
  quit(): Promise<unknown>;
  disconnect(): void;
}

class RedisStore implements ScheduleStore {
  readonly name = "redis";
  readonly shared = true;
  readonly #client: RedisClient;
  readonly #owned: OwnedClient | undefined;
  readonly #prefix: string;
  readonly #historyMs: number;
  readonly #where: string;

  constructor(
    client: RedisClient,
    owned: OwnedClient | undefined,
    prefix: string,
    historyMs: number,
    where: string,
  ) {
    this.#client = client;
    this.#owned = owned;
    this.#prefix = prefix;
    this.#historyMs = historyMs;
    this.#where = where;
  }

  async #command<T>(command: string, ...args: (string | number)[]): Promise<T> {
    try {
      return (await this.#client.call(command, ...args)) as T;
    } catch (error) {
      throw new StoreUnavailableError(`Redis at ${this.#where}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }

  /** Runs a script by its hash, loading it on a server that does not have it yet. */
  async #script<T>(name: ScriptName, ...args: (string | number)[]): Promise<T> {
    try {
      return (await this.#client.call("EVALSHA", SHAS[name], 0, this.#prefix, ...args)) as T;
    } catch (error) {
      if (!String((error as Error).message).startsWith("NOSCRIPT")) {
        throw new StoreUnavailableError(`Redis at ${this.#where}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      return this.#command<T>("EVAL", SCRIPTS[name], 0, this.#prefix, ...args);
    }
  }

  get #ttlSeconds(): number {
    return Math.max(1, Math.ceil(this.#historyMs / 1000));
  }

  async add(job: ScheduleJob): Promise<{ job: ScheduleJob; created: boolean }> {
    const reply = await this.#script<1 | [string, string, string, string, string | null]>(
      "add",
      job.job_id,
      JSON.stringify(job),
      Math.round(job.due_at * 1000),
      job.idempotency_key ?? "",
    );
    if (reply === 1) return { job, created: true };
    const [, json, status, due, cancelledAt] = reply;
    return { job: jobOf(json, status, due, cancelledAt), created: false };
  }

  async get(jobId: string): Promise<ScheduleJob | undefined> {
    const [json, status, due, cancelledAt] = await this.#command<(string | null)[]>(
      "HMGET",
      `${this.#prefix}job:${jobId}`,
      "job",
      "status",
      "due",
      "cancelled_at",
    );
    return json && status && due ? jobOf(json, status, due, cancelledAt) : undefined;
  }

  /** The jobs of `ids` that still exist, in the given order. */
  async #load(ids: readonly string[]): Promise<ScheduleJob[]> {
    const jobs = await Promise.all(ids.map((id) => this.get(id)));
    return jobs.filter((j): j is ScheduleJob => j !== undefined);
  }

  async list(filter: JobFilter): Promise<ScheduleJob[]> {
    const byDue = (a: ScheduleJob, b: ScheduleJob) => a.due_at - b.due_at;
    const executing = async () =>
      (
        await this.#load(
          await this.#command<string[]>("ZRANGE", `${this.#prefix}executing`, 0, EXECUTING_LIST_LIMIT - 1),
        )
      ).sort(byDue);
    const ranked = async (set: string) =>
      this.#load(await this.#command<string[]>("ZRANGE", `${this.#prefix}${set}`, 0, filter.limit - 1));
    if (filter.status === "executing") return (await executing()).slice(0, filter.limit);
    if (filter.status !== undefined) return ranked(filter.status);
    const [pending, running] = await Promise.all([ranked("pending"), executing()]);
    return [...pending, ...running].sort(byDue).slice(0, filter.limit);
  }

  async cancel(jobId: string, now: number): Promise<ScheduleJob | undefined> {
    const reply = await this.#script<[string, string] | null>("cancel", jobId, now / 1000, this.#ttlSeconds);
    return reply ? jobOf(reply[0], "cancelled", reply[1], String(now / 1000)) : undefined;
  }

  async claim(now: number, limit: number, leaseUntil: number): Promise<JobClaim[]> {
    const reply = await this.#script<string[]>(
      "claim",
      now,
      limit,
      leaseUntil,
      randomBytes(8).toString("hex"),
    );
    const claims: JobClaim[] = [];
    for (let i = 0; i < reply.length; i += 3) {
      claims.push({
        token: reply[i] as string,
        job: jobOf(reply[i + 1] as string, "executing", reply[i + 2] as string),
      });
    }
    return claims;
  }

  async record(claim: JobClaim, next: ScheduleJob): Promise<boolean> {
    const reply = await this.#script<number>(
      "record",
      next.job_id,
      claim.token,
      JSON.stringify(next),
      next.status,
      Math.round(next.due_at * 1000),
      this.#ttlSeconds,
    );
    return reply === 1;
  }

  async renew(claims: readonly JobClaim[], leaseUntil: number): Promise<void> {
    if (claims.length === 0) return;
    await this.#script("renew", leaseUntil, ...claims.flatMap((c) => [c.job.job_id, c.token]));
  }

  /** Also trims the indexes of final jobs past their history (their hashes expire by themselves). */
  async requeueExpired(now: number): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.#script<number>("requeue", now, 1_000, now - this.#historyMs);
      total += n;
      if (n < 1_000) return total;
    }
  }

  async nextDue(): Promise<number | undefined> {
    const reply = await this.#command<string[]>("ZRANGE", `${this.#prefix}pending`, 0, 0, "WITHSCORES");
    return reply.length >= 2 ? Number(reply[1]) : undefined;
  }

  async close(): Promise<void> {
    if (!this.#owned) return;
    await this.#owned.quit().catch(() => this.#owned?.disconnect());
  }
}

/** Loads ioredis, the optional peer, or says plainly that it is missing. */
function loadIoredis(): typeof import("ioredis") {
  try {
    return requirePeer<typeof import("ioredis")>("ioredis", "openRedisStore (runtime-kernel/schedule)");
  } catch (error) {
    if (!isRuntimeKernelError(error, "BACKEND_UNAVAILABLE")) throw error;
    throw new StoreUnavailableError(error.message, { cause: error, retryable: false });
  }
}

/**
 * Opens a Redis store. With `url`, it connects with a bounded connect timeout (5 s), command
 * timeout (10 s) and TCP keep-alive, so that a Redis that goes away makes calls fail (and
 * the scheduler retry at its next poll) instead of hanging; it throws `STORE_UNAVAILABLE`
 * when the server does not answer. Needs the `ioredis` package unless you pass a `client`.
 */
export async function openRedisStore(options: RedisStoreOptions): Promise<ScheduleStore> {
  parseOrRefuse(optionsSchema, options, "Redis store options");
  const prefix = options.prefix ?? "rk:schedule:";
  const historyMs = options.historyMs ?? 7 * DAY_MS;
  if (options.client) return new RedisStore(options.client, undefined, prefix, historyMs, "the given client");

  const url = options.url as string;
  const where = safeUrl(url);
  const { Redis } = loadIoredis();
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 5_000,
    commandTimeout: 10_000,
    keepAlive: 30_000,
    maxRetriesPerRequest: 2,
    enableAutoPipelining: true,
  });
  // ioredis reports connection errors as events; calls fail on their own and say why.
  client.on("error", () => {});
  try {
    await client.connect();
    await client.call("PING");
  } catch (error) {
    client.disconnect();
    throw new StoreUnavailableError(`Cannot reach Redis at ${where}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return new RedisStore(client, client, prefix, historyMs, where);
}
