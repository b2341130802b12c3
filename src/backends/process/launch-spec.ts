/**
 * Turning a {@link StartRequest} into what the supervisor spawns: argv, environment,
 * working directory and log paths. Pure functions; bad input is refused with an
 * {@link InvalidSpecError} naming the field (and never quoting an env value).
 * @module
 */
import { createHash } from "node:crypto";
import { isAbsolute, join, resolve } from "node:path";
import { InvalidSpecError, type ValidationIssue } from "../../errors.js";
import type { StartRequest } from "../backend.js";

/** The host variables a workload gets unless `inheritEnv` says otherwise. */
export const DEFAULT_INHERITED_ENV: readonly string[] = ["PATH", "HOME", "LANG", "TZ", "TMPDIR"];

/** The argv of a request, checked: a non-empty array of strings without NUL bytes. */
export function commandOf(request: StartRequest): string[] {
  const command = request.runnable.command;
  const issues: ValidationIssue[] = [];
  if (!Array.isArray(command) || command.length === 0) {
    issues.push({ path: "runnable.command", message: "the process backend needs a non-empty argv array" });
  } else {
    command.forEach((arg, i) => {
      if (typeof arg !== "string")
        issues.push({ path: `runnable.command[${i}]`, message: "must be a string" });
      else if (arg.includes("\0"))
        issues.push({ path: `runnable.command[${i}]`, message: "must not contain NUL" });
    });
    if (command[0] === "") issues.push({ path: "runnable.command[0]", message: "must not be empty" });
  }
  if (issues.length > 0)
    throw new InvalidSpecError(issues, { workloadId: request.workloadId, subject: "start request" });
  return command as string[];
}

/**
 * The workload's whole environment: the allowlisted host variables that are set, then the
 * request's env (profile env, spec env and brokered credentials, already merged by the
 * kernel) over them. Nothing else of the host leaks in.
 */
export function environmentOf(
  request: StartRequest,
  inherit: readonly string[],
  host: NodeJS.ProcessEnv,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of inherit) {
    const value = host[name];
    if (value !== undefined) env[name] = value;
  }
  const issues: ValidationIssue[] = [];
  for (const [name, value] of Object.entries(request.env)) {
    if (name === "" || name.includes("=") || name.includes("\0")) {
      issues.push({ path: `env.${name}`, message: "a variable name must be non-empty without '=' or NUL" });
    } else if (typeof value !== "string" || value.includes("\0")) {
      // Never quote the value: it may be a secret.
      issues.push({ path: `env.${name}`, message: "the value must be a string without NUL" });
    } else {
      env[name] = value;
    }
  }
  if (issues.length > 0)
    throw new InvalidSpecError(issues, { workloadId: request.workloadId, subject: "start request" });
  return env;
}

/** The working directory: `runnable.cwd` (relative ones against the workspace), else the workspace, else `fallback`. */
export function workingDirectoryOf(request: StartRequest, fallback: string): string {
  const base = request.workspace ?? fallback;
  const cwd = request.runnable.cwd;
  if (cwd === undefined) return resolve(base);
  if (typeof cwd !== "string" || cwd === "") {
    throw new InvalidSpecError([{ path: "runnable.cwd", message: "must be a non-empty string" }], {
      workloadId: request.workloadId,
      subject: "start request",
    });
  }
  return isAbsolute(cwd) ? cwd : resolve(base, cwd);
}

/** A file-name-safe form of an id; ids that needed changes get a short hash so two never collide. */
function safe(id: string): string {
  const cleaned = id.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 80);
  if (cleaned === id && !id.startsWith(".")) return id;
  return `${cleaned.replace(/^\./, "_")}-${createHash("sha256").update(id).digest("hex").slice(0, 8)}`;
}

/** The two log files of one run under `logDir`. */
export function logPathsOf(
  logDir: string,
  workloadId: string,
  runId: string,
): { stdout: string; stderr: string } {
  const base = join(logDir, `${safe(workloadId)}.${safe(runId)}`);
  return { stdout: `${base}.stdout.log`, stderr: `${base}.stderr.log` };
}

/**
 * POSIX resource limits for a workload, applied by util-linux `prlimit`, which sets them
 * on itself and then execs the command (same pid, same process group). Each is set as
 * both the soft and the hard limit.
 */
export interface ProcessLimits {
  /** Open file descriptors (RLIMIT_NOFILE). */
  nofile?: number;
  /** Processes of the whole user, not of the workload (RLIMIT_NPROC): a weak fence. */
  nproc?: number;
  /** Core file size in bytes (RLIMIT_CORE); 0 disables core dumps. */
  core?: number;
  /** CPU time in seconds (RLIMIT_CPU): SIGXCPU, then SIGKILL. */
  cpuSeconds?: number;
  /** Largest file it may write, in bytes (RLIMIT_FSIZE): SIGXFSZ beyond. */
  fileSizeBytes?: number;
  /** Data segment and private writable mappings, in bytes (RLIMIT_DATA). */
  dataBytes?: number;
  /** Virtual address space, in bytes (RLIMIT_AS); runtimes that reserve big heaps fail under it. */
  addressSpaceBytes?: number;
}

const PRLIMIT_FLAGS: Record<keyof ProcessLimits, string> = {
  nofile: "--nofile",
  nproc: "--nproc",
  core: "--core",
  cpuSeconds: "--cpu",
  fileSizeBytes: "--fsize",
  dataBytes: "--data",
  addressSpaceBytes: "--as",
};

/**
 * The argv that runs `command` under `limits` (the backend's, with the runnable's
 * `rlimits` over them), or `command` itself when there are none.
 */
export function withLimits(
  command: string[],
  limits: ProcessLimits | undefined,
  prlimit: string,
  request: StartRequest,
): string[] {
  const own = request.runnable.rlimits as ProcessLimits | undefined;
  const merged: ProcessLimits = { ...limits, ...own };
  const flags: string[] = [];
  const issues: ValidationIssue[] = [];
  for (const [key, value] of Object.entries(merged)) {
    const flag = PRLIMIT_FLAGS[key as keyof ProcessLimits];
    const path = own && key in own ? `runnable.rlimits.${key}` : `rlimits.${key}`;
    if (!flag)
      issues.push({ path, message: `unknown limit (known: ${Object.keys(PRLIMIT_FLAGS).join(", ")})` });
    else if (value === undefined) continue;
    else if (!Number.isSafeInteger(value) || value < 0)
      issues.push({ path, message: "must be a non-negative integer" });
    else flags.push(`${flag}=${value}:${value}`);
  }
  if (issues.length > 0)
    throw new InvalidSpecError(issues, { workloadId: request.workloadId, subject: "start request" });
  return flags.length === 0 ? command : [prlimit, ...flags, "--", ...command];
}
