/**
 * The `/schedule` routes of the HTTP surface, as Vexa's runtime serves them: `POST /schedule`
 * (201 with the job), `GET /schedule?status=&limit=` (jobs in due order, 50 by default),
 * `DELETE /schedule/{job_id}` (the cancelled job, or 404), and 503 while no scheduler is
 * wired; plus `GET /schedule/{job_id}`. Bad input is a 400 whose `issues` name each field.
 * @module
 */
import { z } from "zod";
import { type RouteGroup, route } from "../http/router.js";
import { InvalidSpecError, RuntimeKernelError } from "../index.js";
import { JOB_STATUSES, type JobStatus, scheduleJobInputSchema } from "./job.js";
import type { Scheduler } from "./scheduler.js";

const jobList = z.array(z.looseObject({ job_id: z.string(), status: z.enum(JOB_STATUSES) }));
const job = z.looseObject({ job_id: z.string(), status: z.enum(JOB_STATUSES) });
const problem = z.looseObject({ detail: z.string() });

/** The answer while no scheduler is wired (not configured, or still starting). */
class NotWiredError extends RuntimeKernelError {
  constructor() {
    super("STORE_UNAVAILABLE", "scheduler not wired", { retryable: true });
  }
}

function notFound(jobId: string) {
  return { status: 404, body: { detail: "unknown job", code: "JOB_NOT_FOUND", job_id: jobId } };
}

/** Reads `?limit=` as the integer it must be, naming it when it is not. */
function limitOf(query: URLSearchParams): number | undefined {
  const text = query.get("limit");
  if (text === null) return undefined;
  const limit = /^\d{1,6}$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(limit)) {
    throw new InvalidSpecError([{ path: "limit", message: `must be an integer (got "${text}")` }], {
      subject: "job listing",
    });
  }
  return limit;
}

/** The `/schedule` routes over the scheduler `current()` returns (none: 503). */
export function scheduleRoutes(current: () => Scheduler | undefined): RouteGroup {
  const wired = (): Scheduler => {
    const scheduler = current();
    if (!scheduler) throw new NotWiredError();
    return scheduler;
  };
  return [
    route({
      method: "POST",
      path: "/schedule",
      operationId: "scheduleJob",
      summary:
        "Register a schedule.v1 job: an HTTP call (or a workload) at execute_at, or at every slot of cron. A duplicate idempotency_key returns the existing job.",
      body: { schema: scheduleJobInputSchema, required: true },
      responses: {
        201: { description: "The job, as stored (header values redacted).", schema: job },
        400: {
          description: "The job is refused; `issues` names each field. Nothing was stored.",
          schema: problem,
        },
        503: { description: "No scheduler is wired.", schema: problem },
      },
      handle: async ({ body }) => ({ status: 201, body: await wired().schedule(body as never) }),
    }),
    route({
      method: "GET",
      path: "/schedule",
      operationId: "listJobs",
      summary:
        "Jobs in due order: pending and executing ones, or those of ?status= (pending, executing, completed, failed, cancelled); at most ?limit= (default 50).",
      responses: {
        200: { description: "The jobs.", schema: jobList },
        400: { description: "An unknown status or a bad limit.", schema: problem },
        503: { description: "No scheduler is wired.", schema: problem },
      },
      handle: async ({ query }) => {
        const status = query.get("status") ?? undefined;
        const limit = limitOf(query);
        const jobs = await wired().list({ status: status as JobStatus | undefined, limit });
        return { status: 200, body: jobs };
      },
    }),
    route({
      method: "GET",
      path: "/schedule/{job_id}",
      operationId: "getJob",
      summary: "One job (runtime-kernel's addition: Vexa's runtime has no such route).",
      responses: {
        200: { description: "The job.", schema: job },
        404: { description: "No such job (or past its history).", schema: problem },
        503: { description: "No scheduler is wired.", schema: problem },
      },
      handle: async ({ params }) => {
        const found = await wired().get(params.job_id as string);
        return found ? { status: 200, body: found } : notFound(params.job_id as string);
      },
    }),
    route({
      method: "DELETE",
      path: "/schedule/{job_id}",
      operationId: "cancelJob",
      summary: "Cancel a pending or executing job.",
      responses: {
        200: { description: "The cancelled job.", schema: job },
        404: { description: "No such job, or it already ended.", schema: problem },
        503: { description: "No scheduler is wired.", schema: problem },
      },
      handle: async ({ params }) => {
        const cancelled = await wired().cancel(params.job_id as string);
        return cancelled ? { status: 200, body: cancelled } : notFound(params.job_id as string);
      },
    }),
  ];
}
