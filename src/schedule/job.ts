/**
 * The schedule.v1 job: what a caller may ask for, what a stored job looks like, and the
 * validation at the boundary. Field names, defaults and rules follow Vexa's published
 * schedule.v1 contract (`ScheduleJob`, `Request`, `Retry`), so a job written for Vexa's
 * runtime is accepted here as it is; `workload` is this library's one addition.
 * Every refusal is an {@link InvalidSpecError} whose issues name the field; nothing is stored.
 * @module
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { InvalidSpecError, type ValidationIssue, type WorkloadSpec, workloadSpecSchema } from "../index.js";
import { issuesOf } from "../zod-issues.js";
import { validateCron } from "./cron.js";

/** The states of a job, in the order a one-shot job passes through them. */
export const JOB_STATUSES = ["pending", "executing", "completed", "failed", "cancelled"] as const;

/** A job's state: `pending` (waiting for its time, or for a retry), `executing` (claimed, firing), then one final state. */
export type JobStatus = (typeof JOB_STATUSES)[number];

/** The HTTP call a job makes, as a caller writes it (schedule.v1 `Request`). */
export interface HttpCallInput {
  /** Default `POST`. */
  method?: string;
  /** An `http:` or `https:` URL, without user name or password. */
  url: string;
  headers?: Record<string, string>;
  /** An object (or any JSON value) is sent as JSON; a string is sent as it is. At most 1 MiB. */
  body?: unknown;
  /** Seconds before the call is abandoned (and retried). Default 30. */
  timeout?: number;
}

/** How a failed firing is retried (schedule.v1 `Retry`). */
export interface RetryInput {
  /** Firings attempted at most, the first included. Default 3. */
  max_attempts?: number;
  /** Seconds to wait before each retry; the last entry is reused past the end. Default `[30, 120, 300]`. */
  backoff?: number[];
  /** Attempts already made. Default 0. */
  attempt?: number;
}

/** A workload to start at each firing: a {@link WorkloadSpec} without its id, which each firing derives. */
export type ScheduledWorkloadSpec = Omit<WorkloadSpec, "workloadId">;

/**
 * What `schedule()` and `POST /schedule` accept: exactly one of `execute_at` and `cron`, and
 * exactly one of `request` and `workload`. No other fields.
 */
export interface ScheduleJobInput {
  /** The one firing: epoch seconds, or an ISO 8601 date-time with a zone (`Z` or `±hh:mm`). */
  execute_at?: number | string;
  /** A 5-field cron expression, read in the scheduler's time zone; the job re-arms after each successful firing. */
  cron?: string;
  /** The HTTP call to make. */
  request?: HttpCallInput;
  /** Or: the workload to start (runtime-kernel's addition to schedule.v1). */
  workload?: ScheduledWorkloadSpec;
  retry?: RetryInput;
  /** A second `schedule()` with the same key returns the first job and stores nothing. */
  idempotency_key?: string;
  /** The caller's own tags, stored and returned as they are. */
  metadata?: Record<string, unknown>;
}

/** A stored job's HTTP call, with its defaults filled in. */
export interface HttpCall {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
  timeout: number;
}

/** A stored job's retry policy, with its defaults filled in. `attempt` counts the failed attempts of the current firing. */
export interface RetryPolicy {
  max_attempts: number;
  backoff: number[];
  attempt: number;
}

/** What a firing returned: the HTTP status, or the workload it started. */
export type FiringResult = { status_code: number; error?: string } | { workload_id: string; run_id: string };

/**
 * A stored job, as `get`, `list`, `cancel` and `schedule` return it. Times are epoch seconds.
 * Header values and workload env values are shown as `[redacted]`: they may hold secrets.
 */
export interface ScheduleJob {
  /** `job_` and 16 hex digits. */
  job_id: string;
  status: JobStatus;
  /** The current firing's time; a cron job's moves on to the next slot after each success. */
  execute_at: number;
  /** When the next attempt is due: `execute_at`, or later while a retry waits. Jobs are listed in this order. */
  due_at: number;
  created_at: number;
  request?: HttpCall;
  workload?: ScheduledWorkloadSpec;
  retry: RetryPolicy;
  metadata: Record<string, unknown>;
  cron: string | null;
  idempotency_key: string | null;
  /** The last successful firing's result (a cron job keeps it while it waits for the next slot). */
  result?: FiringResult;
  /** When the last successful firing ended. */
  completed_at?: number;
  /** The last failed attempt's error. */
  error?: string;
  failed_at?: number;
  cancelled_at?: number;
}

/** Bodies larger than this (serialized) are refused. */
export const MAX_BODY_BYTES = 1024 * 1024;
/** How far in the past an `execute_at` may lie and still be accepted (clock skew between caller and scheduler). */
export const PAST_TOLERANCE_MS = 60_000;
/** Shown in place of header values and workload env values. */
export const REDACTED = "[redacted]";

const DEFAULT_RETRY: RetryPolicy = { max_attempts: 3, backoff: [30, 120, 300], attempt: 0 };
const DEFAULT_TIMEOUT_S = 30;
/** The longest timeout a call may have: a day (timers overflow past 24.8 days). */
const MAX_TIMEOUT_S = 86_400;
/** The last epoch second a Date can represent in every zone, rounded down to 9999-12-31. */
const MAX_EPOCH_S = 253_402_300_799;
/** An HTTP token (RFC 9110): what method and header names may contain. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Methods fetch refuses to send. */
const FORBIDDEN_METHODS = new Set(["CONNECT", "TRACE", "TRACK"]);
/** Hop-by-hop and framing headers: the HTTP client sets them, a job may not. */
const FORBIDDEN_HEADERS = new Set([
  "connection",
  "content-length",
  "expect",
  "host",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);
/** An ISO 8601 date-time that carries its zone, so that it names one instant. */
const ISO_WITH_ZONE = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:?\d{2})$/;

const requestSchema = z.strictObject({
  method: z
    .string({ error: "must be a string" })
    .regex(TOKEN, "must be an HTTP method name")
    .refine((m) => !FORBIDDEN_METHODS.has(m.toUpperCase()), "may not be CONNECT, TRACE or TRACK")
    .optional(),
  url: z.string({ error: "is required and must be a string" }).superRefine((url, ctx) => {
    const problem = urlProblem(url);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  }),
  headers: z
    .record(
      z
        .string()
        .regex(TOKEN, "must be an HTTP header name")
        .refine((name) => !FORBIDDEN_HEADERS.has(name.toLowerCase()), "is set by the HTTP client, not a job"),
      z
        .string({ error: "must be a string" })
        .refine((v) => !/[\r\n\0]/.test(v), "must not contain CR, LF or NUL characters"),
    )
    .optional(),
  body: z.unknown().optional(),
  timeout: z
    .number({ error: "must be a number of seconds" })
    .int("must be an integer number of seconds")
    .min(1, "must be at least 1 second")
    .max(MAX_TIMEOUT_S, `must be at most ${MAX_TIMEOUT_S} seconds`)
    .optional(),
});

const retrySchema = z.strictObject({
  max_attempts: z.number().int("must be an integer").min(1, "must be at least 1").optional(),
  backoff: z
    .array(z.number({ error: "must be a number of seconds" }).min(0, "must be >= 0").max(MAX_TIMEOUT_S))
    .optional(),
  attempt: z.number().int("must be an integer").min(0, "must be >= 0").optional(),
});

const workloadSchema = workloadSpecSchema.omit({ workloadId: true });

/** The zod schema of a {@link ScheduleJobInput}: types and fields (the scheduler checks `cron` and `execute_at` against its clock). */
export const scheduleJobInputSchema = z.strictObject({
  execute_at: z
    .union([z.number(), z.string()], { error: "must be epoch seconds (a number) or an ISO 8601 string" })
    .optional(),
  cron: z.string({ error: "must be a string" }).optional(),
  request: requestSchema.optional(),
  workload: workloadSchema.optional(),
  retry: retrySchema.optional(),
  idempotency_key: z
    .string({ error: "must be a string" })
    .min(1, "must not be empty")
    .max(1024, "must be at most 1024 characters")
    .optional(),
  metadata: z.record(z.string(), z.unknown(), { error: "must be an object" }).optional(),
});

function urlProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "must be an absolute http(s) URL";
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    return `must be an http(s) URL (got ${parsed.protocol.replace(/:$/, "")})`;
  }
  if (parsed.username || parsed.password) {
    return "must not carry a user name or password (send credentials in request.headers)";
  }
  return undefined;
}

function refuse(issues: ValidationIssue[]): never {
  throw new InvalidSpecError(issues, { subject: "schedule job" });
}

/** Reads `execute_at` as epoch seconds, or says what is wrong with it. */
function epochSeconds(value: number | string): number | string {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0 || value > MAX_EPOCH_S) {
      return "must be epoch seconds between 0 and the end of year 9999";
    }
    return value;
  }
  if (!ISO_WITH_ZONE.test(value)) {
    return "must be epoch seconds or an ISO 8601 date-time with a zone, such as 2026-05-01T09:00:00Z";
  }
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) return "is not a valid date-time";
  return ms / 1000;
}

/** The serialized size of a body, or a reason it cannot be sent. */
function bodyProblem(body: unknown, method: string): string | undefined {
  if (body === undefined || body === null) return undefined;
  if (method === "GET" || method === "HEAD") return `a ${method} request cannot carry a body`;
  let text: string | undefined;
  try {
    text = typeof body === "string" ? body : JSON.stringify(body);
  } catch (error) {
    return `must be a string or JSON-serializable (${(error as Error).message})`;
  }
  if (text === undefined) return "must be a string or JSON-serializable";
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes > MAX_BODY_BYTES) return `is ${bytes} bytes; at most ${MAX_BODY_BYTES} (1 MiB) may be sent`;
  return undefined;
}

/**
 * The first firing (epoch seconds) of a raw input, from its `execute_at` or `cron`, or the
 * problems with them. Values of the wrong type are left to the schema, which names them.
 */
function firstFiring(input: unknown, context: BuildContext): { at?: number; issues: ValidationIssue[] } {
  if (typeof input !== "object" || input === null) return { issues: [] };
  const { execute_at: executeAt, cron } = input as Record<string, unknown>;
  if ((executeAt === undefined) === (cron === undefined)) {
    const message = cron === undefined ? "is required (or cron)" : "give execute_at or cron, not both";
    return { issues: [{ path: "execute_at", message }] };
  }
  if (typeof cron === "string") {
    const next = validateCron(cron, context.timeZone, context.now);
    return typeof next === "string"
      ? { issues: [{ path: "cron", message: next }] }
      : { at: next / 1000, issues: [] };
  }
  if (typeof executeAt !== "number" && typeof executeAt !== "string") return { issues: [] };
  const at = epochSeconds(executeAt);
  if (typeof at === "string") return { issues: [{ path: "execute_at", message: at }] };
  if (at * 1000 < context.now - PAST_TOLERANCE_MS) {
    const message = `is in the past (${new Date(at * 1000).toISOString()}, now ${new Date(context.now).toISOString()})`;
    return { issues: [{ path: "execute_at", message }] };
  }
  return { at, issues: [] };
}

/** What {@link buildJob} needs besides the input. */
export interface BuildContext {
  /** Epoch ms. */
  now: number;
  /** IANA zone cron expressions are read in. */
  timeZone: string;
  /** When given, a workload's profile must be one of these. */
  profiles?: readonly string[];
}

/** A new job id: `job_` and 16 random hex digits. */
export function newJobId(): string {
  return `job_${randomBytes(8).toString("hex")}`;
}

/**
 * Validates a schedule.v1 input and builds the stored job (status `pending`).
 * Throws {@link InvalidSpecError} naming every bad field; nothing else happens.
 */
export function buildJob(input: unknown, context: BuildContext): ScheduleJob {
  const parsed = scheduleJobInputSchema.safeParse(input);
  // Checked even when the rest is malformed, so that one refusal names every problem.
  const firing = firstFiring(input, context);
  if (!parsed.success) refuse([...issuesOf(parsed.error), ...firing.issues]);
  const spec = parsed.data;
  const issues: ValidationIssue[] = [];

  if ((spec.request === undefined) === (spec.workload === undefined)) {
    issues.push({
      path: "request",
      message:
        spec.request === undefined
          ? "is required (or workload, to start a workload)"
          : "give request or workload, not both",
    });
  }
  const method = (spec.request?.method ?? "POST").toUpperCase();
  const bodyIssue = spec.request ? bodyProblem(spec.request.body, method) : undefined;
  if (bodyIssue) issues.push({ path: "request.body", message: bodyIssue });
  if (spec.workload && context.profiles && !context.profiles.includes(spec.workload.profile)) {
    issues.push({
      path: "workload.profile",
      message: `unknown profile "${spec.workload.profile}" (configured: ${context.profiles.join(", ") || "none"})`,
    });
  }

  issues.push(...firing.issues);
  const executeAt = firing.at;
  if (issues.length > 0 || executeAt === undefined) refuse(issues);

  const job: ScheduleJob = {
    job_id: newJobId(),
    status: "pending",
    execute_at: executeAt,
    due_at: executeAt,
    created_at: context.now / 1000,
    retry: { ...DEFAULT_RETRY, ...spec.retry },
    metadata: spec.metadata ?? {},
    cron: spec.cron ?? null,
    idempotency_key: spec.idempotency_key ?? null,
  };
  if (spec.request) {
    job.request = {
      method,
      url: spec.request.url,
      headers: spec.request.headers ?? {},
      body: spec.request.body ?? null,
      timeout: spec.request.timeout ?? DEFAULT_TIMEOUT_S,
    };
  }
  if (spec.workload) job.workload = spec.workload as ScheduledWorkloadSpec;
  return job;
}

/** The job as callers see it: header values and workload env values replaced by {@link REDACTED}. */
export function redact(job: ScheduleJob): ScheduleJob {
  const view: ScheduleJob = { ...job };
  if (job.request) {
    view.request = {
      ...job.request,
      headers: Object.fromEntries(Object.keys(job.request.headers).map((name) => [name, REDACTED])),
    };
  }
  if (job.workload?.env) {
    view.workload = {
      ...job.workload,
      env: Object.fromEntries(Object.keys(job.workload.env).map((name) => [name, REDACTED])),
    };
  }
  return view;
}
