/**
 * `runtime-kernel/schedule`: schedule.v1 jobs (one-shot and cron HTTP calls, and scheduled
 * workloads) fired when due, with retries, idempotency and recovery of firings interrupted
 * by a crash. {@link createScheduler} over a store: {@link openJournalStore} (one process,
 * no server) or {@link openRedisStore} (shared by several processes; loads `ioredis` only
 * when called).
 * @module
 */

export type { Dispatch, FiringContext } from "./dispatch.js";
export { httpDispatch, IDEMPOTENCY_HEADER, workloadIdOf } from "./dispatch.js";
export { DispatchFailedError, StoreUnavailableError } from "./errors.js";
export type {
  FiringResult,
  HttpCall,
  HttpCallInput,
  JobStatus,
  RetryInput,
  RetryPolicy,
  ScheduledWorkloadSpec,
  ScheduleJob,
  ScheduleJobInput,
} from "./job.js";
export { JOB_STATUSES, MAX_BODY_BYTES, PAST_TOLERANCE_MS, REDACTED } from "./job.js";
export type { JournalStoreOptions } from "./journal-store.js";
export { openJournalStore } from "./journal-store.js";
export type { RedisClient, RedisStoreOptions } from "./redis-store.js";
export { openRedisStore } from "./redis-store.js";
export type { ListJobsOptions, Scheduler, SchedulerEventMap, SchedulerOptions } from "./scheduler.js";
export { createScheduler } from "./scheduler.js";
export type { JobClaim, JobFilter, ScheduleStore } from "./store.js";
