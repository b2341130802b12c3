/**
 * Firing a job: the HTTP call (the default `dispatch`), or a workload started through the
 * kernel. Every attempt of one firing carries the same idempotency key, so a receiver can
 * drop the duplicates that at-least-once delivery brings.
 * @module
 */
import http from "node:http";
import https from "node:https";
import { isRuntimeKernelError, type RuntimeKernel } from "../index.js";
import { DispatchFailedError } from "./errors.js";
import type { FiringResult, HttpCall, ScheduleJob } from "./job.js";

/** The header that carries {@link FiringContext.idempotencyKey} on every HTTP call. */
export const IDEMPOTENCY_HEADER = "Idempotency-Key";

/** What a dispatch knows about the firing it makes. */
export interface FiringContext {
  jobId: string;
  /** The firing's time, epoch seconds (the job's `execute_at`). */
  firing: number;
  /** 1 for the first attempt of this firing, 2 for the first retry, ... */
  attempt: number;
  /** `<job_id>:<firing>`: the same for every attempt of one firing, different for each cron slot. */
  idempotencyKey: string;
  /** Aborted when the scheduler closes or the job is cancelled: stop and throw. */
  signal: AbortSignal;
}

/**
 * Makes a job's HTTP call. Resolves with the result when the call is done (the job completes),
 * throws when it should be retried. Throw a {@link DispatchFailedError} with
 * `retryable: false` to fail the job without retrying.
 */
export type Dispatch = (request: HttpCall, context: FiringContext) => Promise<FiringResult>;

/** The idempotency key of a job's current firing. */
export function idempotencyKeyOf(job: ScheduleJob): string {
  return `${job.job_id}:${job.execute_at}`;
}

/** Where a call goes, for messages: method, origin and path, never the query (it may carry tokens). */
function target(request: HttpCall): string {
  const url = new URL(request.url);
  return `${request.method} ${url.origin}${url.pathname}`;
}

/** Keep-alive pools for the calls: a receiver called at 1,000 jobs/s is not reconnected each time. */
const agents = {
  "http:": new http.Agent({ keepAlive: true }),
  "https:": new https.Agent({ keepAlive: true }),
};

/**
 * The default dispatch, with the rules of Vexa's runtime: a 2xx completes the job; a 3xx or
 * 4xx completes it too, with the status and reason in its result (a malformed call does not
 * mend itself; redirects are not followed); a 5xx, a transport error or no answer within
 * `timeout` seconds is retried. The body is sent as JSON (a string as it is) with
 * `Content-Type: application/json` unless the job's headers say otherwise, and
 * {@link IDEMPOTENCY_HEADER} is set unless the job sets its own. Built on `node:http` with
 * keep-alive connections (a third of `fetch`'s CPU per call, measured in bench/schedule.bench.ts).
 */
export const httpDispatch: Dispatch = (request, context) => {
  const url = new URL(request.url);
  const headers: Record<string, string> = { ...request.headers };
  const names = new Set(Object.keys(headers).map((name) => name.toLowerCase()));
  if (!names.has(IDEMPOTENCY_HEADER.toLowerCase())) headers[IDEMPOTENCY_HEADER] = context.idempotencyKey;
  let body: Buffer | undefined;
  if (request.body !== null && request.body !== undefined) {
    body = Buffer.from(
      typeof request.body === "string" ? request.body : JSON.stringify(request.body),
      "utf8",
    );
    if (!names.has("content-type")) headers["Content-Type"] = "application/json";
  }
  if (body || !["GET", "HEAD", "DELETE", "OPTIONS"].includes(request.method)) {
    headers["Content-Length"] = String(body?.length ?? 0);
  }
  const client = url.protocol === "https:" ? https : http;
  return new Promise<FiringResult>((resolve, reject) => {
    const fail = (message: string) => reject(new DispatchFailedError(`${target(request)}${message}`));
    const req = client.request(
      url,
      {
        method: request.method,
        headers,
        agent: agents[url.protocol as "http:" | "https:"],
        signal: context.signal,
      },
      (res) => {
        clearTimeout(timer);
        // The answer's body is not kept: drained, so that the connection serves the next call.
        res.resume();
        res.on("error", () => {});
        const status = res.statusCode ?? 0;
        if (status >= 500) fail(` answered ${status}`);
        else if (status >= 300)
          resolve({ status_code: status, error: res.statusMessage || `HTTP ${status}` });
        else resolve({ status_code: status });
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      fail(`: no answer within ${request.timeout} s`);
    }, request.timeout * 1000);
    req.on("error", (error) => {
      clearTimeout(timer);
      if (context.signal.aborted) reject(context.signal.reason);
      else fail(`: ${error.message}`);
    });
    req.end(body);
  });
};

/** The workload id of a job's current firing: the job id and the firing's epoch second, DNS-1123 safe. */
export function workloadIdOf(job: ScheduleJob): string {
  return `${job.job_id.replace("_", "-")}-${Math.floor(job.execute_at)}`;
}

/**
 * Starts the workload of a job's current firing. Idempotent per firing: a workload of that id
 * that already ran (this firing's earlier attempt, or one re-adopted after a restart) counts
 * as the firing done. A refusal no retry can fix (`INVALID_SPEC`, `WORKLOAD_CONFLICT`) fails
 * the job; any other error is retried.
 */
export async function startWorkload(kernel: RuntimeKernel, job: ScheduleJob): Promise<FiringResult> {
  const workloadId = workloadIdOf(job);
  const existing = kernel.get(workloadId);
  if (existing?.startedAt !== undefined) return { workload_id: workloadId, run_id: existing.runId };
  try {
    const status = await kernel.create({ ...job.workload!, workloadId });
    return { workload_id: workloadId, run_id: status.runId };
  } catch (error) {
    const permanent =
      isRuntimeKernelError(error, "INVALID_SPEC") || isRuntimeKernelError(error, "WORKLOAD_CONFLICT");
    throw new DispatchFailedError(`workload ${workloadId}: ${(error as Error).message}`, {
      cause: error,
      retryable: !permanent,
      workloadId,
    });
  }
}
