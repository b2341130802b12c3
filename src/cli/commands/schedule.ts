/**
 * `runtime-kernel schedule add|ls|rm`: scheduled jobs, through a serve's HTTP surface
 * (`serve --http ADDR --schedule journal`), with the same bearer token as every command.
 * @module
 */
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { RuntimeKernelError, type RuntimeKernelErrorCode } from "../../index.js";
import type { ScheduleJob, ScheduleJobInput } from "../../schedule/index.js";
import { parseAddress } from "../../server/address.js";
import { type Command, type CommandContext, listOption, stringOption, UsageError } from "../command.js";
import { failureLine, tokenFrom } from "../connect.js";
import { jobOutcome, jobTarget, parseDuration, table } from "../format.js";

/** The environment variable naming the HTTP surface when `--http` is absent. */
export const HTTP_ENV = "RUNTIME_KERNEL_HTTP";
const DEFAULT_HTTP = "127.0.0.1:8090";
const VERBS = ["add", "ls", "rm"] as const;

function httpAddress(context: CommandContext): string {
  return stringOption(context, "http") ?? (context.io.env[HTTP_ENV] || DEFAULT_HTTP);
}

/** One call to the HTTP surface; resolves with the parsed answer, throws the server's refusal as an error with its code. */
function api(context: CommandContext, method: string, path: string, body?: unknown): Promise<unknown> {
  const text = httpAddress(context);
  const address = parseAddress(text);
  const token = tokenFrom(context);
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...(address.kind === "unix"
          ? { socketPath: address.path }
          : { host: address.host, port: address.port }),
        method,
        path,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(payload ? { "content-type": "application/json", "content-length": payload.length } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          let answer: { detail?: string; code?: string } | undefined;
          try {
            answer = JSON.parse(Buffer.concat(chunks).toString("utf8"));
          } catch {}
          const status = res.statusCode ?? 0;
          if (status < 400) return resolve(answer);
          const code = (answer?.code ??
            (status === 404 ? "JOB_NOT_FOUND" : `HTTP_${status}`)) as RuntimeKernelErrorCode;
          const detail =
            status === 401
              ? `the server at ${text} refused the token: set RUNTIME_KERNEL_TOKEN or pass --token-file`
              : (answer?.detail ?? `HTTP ${status}`);
          reject(new RuntimeKernelError(code, detail));
        });
      },
    );
    req.on("error", (error) =>
      reject(
        new Error(
          `cannot reach an HTTP surface at ${text} (${error.message})\n  start one with \`runtime-kernel serve --http ${text} --schedule journal\`, or pass --http`,
        ),
      ),
    );
    req.end(payload);
  });
}

/** `--at`: an ISO date-time, epoch seconds, or `+DURATION` from now. */
function whenOf(text: string): number | string {
  if (text.startsWith("+")) {
    const ms = parseDuration(text.slice(1));
    if (ms === undefined)
      throw new UsageError(
        `--at +DURATION takes a duration such as +30s or +10m (got "${text}")`,
        "schedule",
      );
    return Math.round((Date.now() + ms) / 1000);
  }
  return /^\d+(\.\d+)?$/.test(text) ? Number(text) : text;
}

/** The job `add` asks for: from `--job FILE`, or built from the URL and options. */
function jobOf(context: CommandContext): unknown {
  const file = stringOption(context, "job");
  if (file !== undefined) {
    try {
      return JSON.parse(readFileSync(file === "-" ? 0 : file, "utf8"));
    } catch (error) {
      throw new UsageError(`--job ${file}: ${(error as Error).message}`, "schedule");
    }
  }
  const [url, ...rest] = context.positionals.slice(1);
  if (url === undefined || rest.length > 0)
    throw new UsageError("schedule add takes one URL (or --job FILE)", "schedule");
  const at = stringOption(context, "at");
  const cron = stringOption(context, "cron");
  if ((at === undefined) === (cron === undefined))
    throw new UsageError("schedule add needs --at TIME or --cron EXPR", "schedule");
  const headers: Record<string, string> = {};
  for (const header of listOption(context, "header")) {
    const colon = header.indexOf(":");
    if (colon <= 0) throw new UsageError(`--header takes NAME: VALUE (got "${header}")`, "schedule");
    headers[header.slice(0, colon).trim()] = header.slice(colon + 1).trim();
  }
  let data = stringOption(context, "data");
  if (data?.startsWith("@")) data = readFileSync(data.slice(1), "utf8");
  let body: unknown;
  if (data !== undefined) {
    try {
      body = JSON.parse(data);
    } catch {
      body = data;
    }
  }
  const number = (name: string) => {
    const value = stringOption(context, name);
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value))
      throw new UsageError(`--${name} takes a whole number (got "${value}")`, "schedule");
    return Number(value);
  };
  const timeout = number("timeout");
  const retries = number("retries");
  const backoff = stringOption(context, "backoff")?.split(",").map(Number);
  const key = stringOption(context, "key");
  const job: ScheduleJobInput = {
    ...(at !== undefined ? { execute_at: whenOf(at) } : { cron: cron as string }),
    request: {
      url,
      ...(stringOption(context, "method") ? { method: stringOption(context, "method") as string } : {}),
      ...(Object.keys(headers).length > 0 ? { headers } : {}),
      body,
      timeout,
    },
    ...(retries !== undefined || backoff
      ? {
          retry: {
            max_attempts: retries,
            ...(backoff ? { backoff } : {}),
          },
        }
      : {}),
    idempotency_key: key,
  };
  return job;
}

const iso = (epochSeconds: number | undefined) =>
  epochSeconds === undefined ? "-" : new Date(epochSeconds * 1000).toISOString().replace(/\.000Z$/, "Z");

/** `runtime-kernel schedule`. */
export const scheduleCommand: Command = {
  name: "schedule",
  summary: "add, list and cancel scheduled jobs (through serve's HTTP surface)",
  usage: "schedule add [options] URL | schedule ls [options] | schedule rm JOB...",
  description: [
    "Scheduled HTTP calls (schedule.v1 jobs), kept and fired by a `runtime-kernel serve --http ADDR",
    "--schedule journal`. add fires URL once (--at) or at each slot of a cron expression (--cron),",
    "retrying failures with backoff; --job FILE sends a whole schedule.v1 job (a workload job too).",
    "ls lists pending and executing jobs in due order (or those of --status); rm cancels jobs.",
  ].join("\n"),
  options: {
    at: {
      type: "string",
      value: "TIME",
      description: "add: fire once at TIME: ISO 8601 with a zone, epoch seconds, or +DURATION (+30s, +10m)",
    },
    cron: {
      type: "string",
      value: "EXPR",
      description: "add: fire at each slot of a 5-field cron expression (in serve's time zone)",
    },
    method: {
      type: "string",
      short: "X",
      value: "METHOD",
      description: "add: the HTTP method (default POST)",
    },
    header: {
      type: "string",
      short: "H",
      value: "NAME:VALUE",
      multiple: true,
      description: "add: a request header",
    },
    data: {
      type: "string",
      short: "d",
      value: "BODY",
      description: "add: the body, sent as JSON if it parses, else as text; @FILE reads it",
    },
    timeout: {
      type: "string",
      value: "SECONDS",
      description: "add: seconds to wait for an answer (default 30)",
    },
    retries: {
      type: "string",
      value: "N",
      description: "add: attempts at most, the first included (default 3)",
    },
    backoff: {
      type: "string",
      value: "S,S,...",
      description: "add: seconds before each retry (default 30,120,300)",
    },
    key: {
      type: "string",
      value: "KEY",
      description: "add: idempotency key: a second add with it returns the first job",
    },
    job: {
      type: "string",
      value: "FILE",
      description: "add: the whole schedule.v1 job as JSON from FILE (- for stdin)",
    },
    status: {
      type: "string",
      value: "STATUS",
      description: "ls: only jobs in STATUS: pending, executing, completed, failed, cancelled",
    },
    limit: { type: "string", value: "N", description: "ls: at most N jobs (default 50)" },
    json: { type: "boolean", description: "print jobs as JSON" },
    quiet: { type: "boolean", short: "q", description: "print job ids only" },
    http: {
      type: "string",
      value: "ADDR",
      description: `serve's HTTP surface: HOST:PORT or unix:PATH (default: $${HTTP_ENV}, else ${DEFAULT_HTTP})`,
    },
    "token-file": {
      type: "string",
      value: "FILE",
      description: "read the bearer token from FILE (default: $RUNTIME_KERNEL_TOKEN)",
    },
  },
  examples: [
    "runtime-kernel schedule add --at +10m -d '{\"meetingId\": 42}' http://meetings.internal/dispatch",
    "runtime-kernel schedule add --cron '0 9 * * 1' --key weekly-digest http://agents.internal/digest",
    "runtime-kernel schedule add --job job.json",
    "runtime-kernel schedule ls --status failed",
    "runtime-kernel schedule rm job_0f3a9c1d2b4e5f60",
  ],
  async run(context) {
    const verb = context.positionals[0];
    if (!(VERBS as readonly string[]).includes(verb ?? "")) {
      throw new UsageError(
        `schedule takes ${VERBS.join(", ")} (got ${verb === undefined ? "nothing" : `"${verb}"`})`,
        "schedule",
      );
    }
    const { out } = context;
    const json = context.values.json === true;
    const quiet = context.values.quiet === true;
    if (verb === "add") {
      const job = (await api(context, "POST", "/schedule", jobOf(context))) as ScheduleJob;
      if (json) context.print(JSON.stringify(job));
      else if (quiet) context.print(job.job_id);
      else
        context.print(
          `${out.green("✔")} ${out.bold(job.job_id)} ${jobTarget(job)} · ${job.cron ? `cron ${job.cron}, first` : "once"} at ${iso(job.execute_at)}`,
        );
      return 0;
    }
    if (verb === "ls") {
      if (context.positionals.length > 1) throw new UsageError("schedule ls takes no job ids", "schedule");
      const query = new URLSearchParams();
      const status = stringOption(context, "status");
      const limit = stringOption(context, "limit");
      if (status !== undefined) query.set("status", status);
      if (limit !== undefined) query.set("limit", limit);
      const jobs = (await api(context, "GET", `/schedule${query.size ? `?${query}` : ""}`)) as ScheduleJob[];
      if (json) context.print(JSON.stringify(jobs));
      else if (quiet) for (const job of jobs) context.print(job.job_id);
      else {
        const rows = jobs.map((job) => [
          job.job_id,
          job.status,
          iso(job.due_at),
          job.cron ?? "once",
          jobTarget(job),
          String(job.retry.attempt),
          jobOutcome(job),
        ]);
        context.print(table(["JOB", "STATUS", "DUE", "WHEN", "TARGET", "FAILED", "LAST"], rows, out));
      }
      return 0;
    }
    const ids = context.positionals.slice(1);
    if (ids.length === 0) throw new UsageError("schedule rm needs at least one job id", "schedule");
    let failures = 0;
    for (const id of ids) {
      try {
        await api(context, "DELETE", `/schedule/${encodeURIComponent(id)}`);
        context.print(`${out.green("✔")} ${out.bold(id)} cancelled`);
      } catch (error) {
        if (!(error instanceof RuntimeKernelError)) throw error;
        failures++;
        context.note(failureLine(context.err, `${error.message} [${error.code}]`, id));
      }
    }
    return failures > 0 ? 1 : 0;
  },
};
