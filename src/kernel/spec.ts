/**
 * Validation at the boundary. Every input from a host (kernel options, profiles,
 * workload specs, and the arguments and options of every public kernel method) is parsed
 * here with zod; a refusal is an {@link InvalidSpecError} that names each offending field,
 * and nothing has been started or changed.
 * @module
 */
import { z } from "zod";
import type { Backend, WorkloadMount } from "../backends/backend.js";
import type { Clock } from "../clock.js";
import { InvalidSpecError } from "../errors.js";
import { DNS1123_LABEL, ENV_NAME, ENV_NAME_MESSAGE } from "../name-rules.js";
import { issuesOf } from "../zod-issues.js";
import type { CredentialBroker } from "./credentials.js";
import { resolveMounts } from "./mounts.js";
import { type Profile, WORKLOAD_STATES, type WorkloadSpec } from "./types.js";

/** What a trace id may hold: it travels in HTTP headers and log lines, so printable ASCII only. */
const TRACE_ID = /^[\x21-\x7e]{1,128}$/;

/** Whether `value` is a trace id a spec may carry (1 to 128 printable ASCII, no spaces). */
export function isTraceId(value: string): boolean {
  return TRACE_ID.test(value);
}
const RESERVED_LABEL_PREFIX = "runtime-kernel.dev/";

/**
 * The longest duration the kernel takes (grace, timeouts, lifetimes, backoffs, reaping):
 * 365 days. Anything longer is a mistake (`2**53 - 1`, a value in µs) rather than a wish,
 * and would be a deadline no timer can hold.
 */
export const MAX_DURATION_MS = 365 * 24 * 3_600_000;

const duration = z
  .number({ error: "must be an integer number of milliseconds" })
  .int("must be an integer number of milliseconds")
  .nonnegative("must be >= 0")
  .max(MAX_DURATION_MS, `must be at most ${MAX_DURATION_MS} (365 days)`);

/** A count (a seq, a number of lines): a non-negative safe integer. */
const count = z.number({ error: "must be an integer" }).int("must be an integer").nonnegative("must be >= 0");

const envSchema = z
  .unknown()
  // A valid name that zod's records skip without a word (no plain object can hold it as a key).
  .superRefine((env, ctx) => {
    if (typeof env === "object" && env !== null && Object.hasOwn(env, "__proto__"))
      ctx.addIssue({
        code: "custom",
        path: ["__proto__"],
        message: "is not a name a workload's env can carry",
      });
  })
  .pipe(
    z.record(
      z.string().regex(ENV_NAME, ENV_NAME_MESSAGE),
      z
        .string({ error: "must be a string" })
        .refine((v) => !v.includes("\0"), "must not contain NUL characters"),
    ),
  );

const runnableSchema = z.looseObject({
  command: z
    .array(z.string().refine((v) => !v.includes("\0"), "must not contain NUL characters"))
    .min(1, "must hold at least the program")
    .refine((argv) => argv[0] !== "", "must start with a program, not an empty string")
    .optional(),
  image: z.string().min(1, "must not be empty").optional(),
  cwd: z.string().min(1, "must not be empty").optional(),
});

const resourcesSchema = z.strictObject({
  cpu: z.number().positive("must be > 0").optional(),
  memoryMb: z.number().int("must be an integer").positive("must be > 0").optional(),
  gpu: z.number().int("must be an integer").nonnegative("must be >= 0").optional(),
  pids: z.number().int("must be an integer").positive("must be > 0").optional(),
});

const restartSchema = z.strictObject({
  policy: z.enum(["never", "on-failure"]),
  maxRestarts: z.number().int().nonnegative().optional(),
  backoffMs: duration.optional(),
  maxBackoffMs: duration.optional(),
});

const hostPath = z
  .string({ error: "must be a string" })
  .min(1, "must not be empty")
  .refine((v) => !v.includes("\0"), "must not contain NUL characters");

const mountSchema = z.strictObject({
  source: hostPath,
  target: hostPath,
  readOnly: z.boolean({ error: "must be a boolean" }).optional(),
});

/** The zod schema of a {@link Profile}. */
export const profileSchema = z.strictObject({
  runnable: runnableSchema,
  env: envSchema.optional(),
  resources: resourcesSchema.optional(),
  idleTimeoutMs: duration.optional(),
  maxLifetimeMs: duration.optional(),
  graceMs: duration.optional(),
  startTimeoutMs: duration.optional(),
  restart: restartSchema.optional(),
  allowSpecRunnableKeys: z.array(z.string().min(1)).optional(),
  mountRoots: z.array(hostPath.refine((v) => v.startsWith("/"), "must be an absolute host path")).optional(),
  mounts: z.array(mountSchema).optional(),
});

/** The zod schema of a {@link WorkloadSpec} (the profile's existence is checked separately). */
export const workloadSpecSchema = z.strictObject({
  workloadId: z
    .string({ error: "is required and must be a string" })
    .regex(
      DNS1123_LABEL,
      "must be a DNS-1123 label: lowercase letters, digits and '-', at most 63 characters",
    ),
  profile: z.string({ error: "is required and must be a string" }).min(1, "must not be empty"),
  owner: z.string().min(1, "must not be empty").max(253, "must be at most 253 characters").optional(),
  env: envSchema.optional(),
  runnable: runnableSchema.partial().optional(),
  resources: resourcesSchema.optional(),
  workspace: z.string().min(1, "must not be empty").optional(),
  mounts: z.array(mountSchema, { error: "must be a list of { source, target, readOnly }" }).optional(),
  idleTimeoutMs: duration.optional(),
  maxLifetimeMs: duration.optional(),
  graceMs: duration.optional(),
  labels: z
    .record(
      z
        .string()
        .refine((k) => !k.startsWith(RESERVED_LABEL_PREFIX), `must not start with ${RESERVED_LABEL_PREFIX}`),
      z.string(),
    )
    .optional(),
  traceId: z
    .string()
    .regex(TRACE_ID, "must be 1 to 128 printable ASCII characters, without spaces")
    .optional(),
});

/** Options of `createRuntimeKernel()`. */
export interface RuntimeKernelOptions {
  /** The substrate. */
  backend: Backend;
  /** Names the kernel; a kernel restarted with the same id and backend settings is the same kernel. Default `"default"`. */
  kernelId?: string;
  /** Named defaults that specs refer to. */
  profiles?: Record<string, Profile>;
  /** At most this many live (non-terminal) workloads per owner; a number, or a function of the owner. */
  ownerQuota?: number | ((owner: string) => number);
  /** At most this many `backend.start` calls at once; further starts queue fairly across owners. Default 32. */
  maxConcurrentStarts?: number;
  /** Stopped workloads are cleaned up this long after stopping. Default 60,000 ms; 0 reaps at once. */
  reapAfterMs?: number;
  /** Interval of the shared exit poll for backends without `watchExit`. Default 1,000 ms. */
  pollIntervalMs?: number;
  /** Source of time and timers; inject `ManualClock` in tests. */
  clock?: Clock;
  /** Supplies secrets at start time; they reach the backend and nothing else. */
  credentials?: CredentialBroker;
  /** How many recent events `events({ sinceSeq })` can replay. Default 1,000. */
  eventRetention?: number;
}

const kernelIdSchema = z
  .string()
  .regex(DNS1123_LABEL, "must be a DNS-1123 label: lowercase letters, digits and '-', at most 63 characters");

const optionsSchema = z.strictObject({
  backend: z.custom<Backend>(
    (b) =>
      typeof b === "object" &&
      b !== null &&
      ["start", "exitCode", "terminate", "kill", "cleanup"].every(
        (m) => typeof (b as Record<string, unknown>)[m] === "function",
      ),
    "must implement the Backend port (start, exitCode, terminate, kill, cleanup)",
  ),
  kernelId: kernelIdSchema.optional(),
  profiles: z
    .record(z.string().regex(/^[A-Za-z0-9._-]+$/, "must be a simple name"), profileSchema)
    .optional(),
  ownerQuota: z.union([z.number().int().nonnegative(), z.function()]).optional(),
  maxConcurrentStarts: z.number().int().positive().optional(),
  reapAfterMs: duration.optional(),
  pollIntervalMs: duration.min(1, "must be > 0").optional(),
  eventRetention: z.number().int().nonnegative().optional(),
  clock: z
    .custom<Clock>(
      (c) => typeof c === "object" && c !== null && "now" in c && "setTimeout" in c && "clearTimeout" in c,
      "must implement Clock (now, setTimeout, clearTimeout)",
    )
    .optional(),
  credentials: z
    .custom<CredentialBroker>(
      (c) => typeof c === "object" && c !== null && "credentials" in c,
      "must implement CredentialBroker (credentials)",
    )
    .optional(),
});

/** Parses kernel options; throws {@link InvalidSpecError} naming each bad field. */
export function parseKernelOptions(options: RuntimeKernelOptions): RuntimeKernelOptions {
  const result = optionsSchema.safeParse(options);
  if (!result.success) throw new InvalidSpecError(issuesOf(result.error), { subject: "kernel options" });
  return options;
}

/**
 * Parses a spec against the configured profiles; throws {@link InvalidSpecError} naming each
 * bad field. The returned spec's `mounts` is the run's whole checked set (each a
 * {@link WorkloadMount}: the profile's, then the spec's, sources resolved).
 */
export function parseWorkloadSpec(input: unknown, profiles: Record<string, Profile>): WorkloadSpec {
  const result = workloadSpecSchema.safeParse(input);
  if (!result.success) throw new InvalidSpecError(issuesOf(result.error));
  const spec = result.data as WorkloadSpec;
  if (!Object.hasOwn(profiles, spec.profile)) {
    const known = Object.keys(profiles);
    throw new InvalidSpecError([
      {
        path: "profile",
        message: `unknown profile "${spec.profile}" (configured: ${known.length ? known.join(", ") : "none"})`,
      },
    ]);
  }
  const profile = profiles[spec.profile] as Profile;
  const allowed = new Set([...SPEC_RUNNABLE_KEYS, ...(profile.allowSpecRunnableKeys ?? [])]);
  const refused = Object.keys(spec.runnable ?? {}).filter((key) => !allowed.has(key));
  if (refused.length > 0) {
    throw new InvalidSpecError(
      refused.map((key) => ({
        path: `runnable.${key}`,
        message: `may not be set by a spec of profile "${spec.profile}" (allowed: ${[...allowed].join(", ")}; a profile opts in with allowSpecRunnableKeys)`,
      })),
    );
  }
  const { mounts, workspace } = resolveMounts(spec, profile);
  // The resolved set replaces what the spec said, so a restart mounts what was checked.
  return {
    ...spec,
    workspace,
    ...(mounts.length > 0 ? { mounts } : {}),
  };
}

/**
 * What a spec may set in `runnable` by default. Backend settings (a Docker network, extra
 * capabilities, a Pod's security context) belong to the profile: a spec that could set
 * them could loosen the sandbox the host chose.
 */
const SPEC_RUNNABLE_KEYS = ["command", "image", "cwd"];

// ── arguments of the kernel's methods ─────────────────────────────────────────

const workloadIdArgument = z.string({ error: "must be a string" });
const stateArgument = z.enum(WORKLOAD_STATES, { error: `must be one of ${WORKLOAD_STATES.join(", ")}` });
const REQUESTED_REASONS = ["requested", "idle_timeout", "max_lifetime", "shutdown"] as const;
const abortSignal = z.custom<AbortSignal>((s) => s instanceof AbortSignal, "must be an AbortSignal");
const options = <T extends z.core.$ZodLooseShape>(shape: T) =>
  z.strictObject(shape, { error: "must be an object" }).optional();

/** The schema of each public method's arguments, by method name. */
const ARGUMENTS = {
  get: z.tuple([workloadIdArgument]),
  touch: z.tuple([workloadIdArgument]),
  list: z.tuple([
    options({
      owner: z.string({ error: "must be a string" }).optional(),
      profile: z.string({ error: "must be a string" }).optional(),
      state: z
        .union([stateArgument, z.array(stateArgument)], { error: "must be a state or a list of states" })
        .optional(),
    }),
  ]),
  stop: z.tuple([
    workloadIdArgument,
    options({
      reason: z
        .enum(REQUESTED_REASONS, { error: `must be one of ${REQUESTED_REASONS.join(", ")}` })
        .optional(),
      graceMs: duration.optional(),
    }),
  ]),
  destroy: z.tuple([workloadIdArgument, options({ graceMs: duration.optional() })]),
  waitFor: z.tuple([workloadIdArgument, stateArgument, options({ signal: abortSignal.optional() })]),
  events: z.tuple([
    options({
      workloadId: workloadIdArgument.optional(),
      sinceSeq: count.optional(),
      signal: abortSignal.optional(),
      highWaterMark: count.min(1, "must be > 0").optional(),
    }),
  ]),
  logs: z.tuple([
    workloadIdArgument,
    options({
      follow: z.boolean({ error: "must be a boolean" }).optional(),
      tail: count.optional(),
      signal: abortSignal.optional(),
    }),
  ]),
  shutdown: z.tuple([
    options({
      leaveRunning: z.boolean({ error: "must be a boolean" }).optional(),
      graceMs: duration.optional(),
    }),
  ]),
} as const;

/** The methods whose arguments are a workload id and, optionally, options. */
const ID_METHODS: ReadonlySet<ValidatedMethod> = new Set(["get", "touch", "stop", "destroy", "logs"]);

/**
 * Whether the call is an id and no option at all (absent or `{}`): valid for every method
 * in {@link ID_METHODS} whatever the schema's rules for options, so the schema is spared
 * for the calls a burst of stops or destroys is made of.
 */
function isPlainIdCall(method: ValidatedMethod, args: readonly unknown[]): boolean {
  if (!ID_METHODS.has(method) || typeof args[0] !== "string") return false;
  for (let i = 1; i < args.length; i++) {
    const arg = args[i];
    if (arg === undefined) continue;
    if (typeof arg !== "object" || arg === null || Object.getPrototypeOf(arg) !== Object.prototype)
      return false;
    for (const _ in arg) return false;
  }
  return true;
}

/** The public kernel methods whose arguments are validated. */
export type ValidatedMethod = keyof typeof ARGUMENTS;

/** The names of each method's arguments, so an issue names `graceMs`, not `1.graceMs`. */
const ARGUMENT_NAMES: Record<ValidatedMethod, readonly string[]> = {
  get: ["workloadId"],
  touch: ["workloadId"],
  list: ["filter"],
  stop: ["workloadId", "options"],
  destroy: ["workloadId", "options"],
  waitFor: ["workloadId", "state", "options"],
  events: ["options"],
  logs: ["workloadId", "options"],
  shutdown: ["options"],
};

/**
 * Checks the arguments of a public kernel method as strictly as a spec: finite integers
 * within what the kernel's timers hold, known enum values, no unknown option. Throws
 * {@link InvalidSpecError} naming each bad field (`graceMs`, `reason`, `workloadId`, ...).
 */
export function checkArguments(method: ValidatedMethod, args: readonly unknown[]): void {
  if (isPlainIdCall(method, args)) return;
  // Trailing undefined arguments are absent ones (`stop(id)` and `stop(id, undefined)` alike).
  const given = [...args];
  while (given.length > 0 && given[given.length - 1] === undefined) given.pop();
  const result = ARGUMENTS[method].safeParse(given);
  if (result.success) return;
  const names = ARGUMENT_NAMES[method];
  const issues = issuesOf(result.error).map((issue) => {
    const [index, ...rest] = issue.path.split(".");
    const name = names[Number(index)];
    // Options are named by their field; the other arguments by their own name.
    const path = name === undefined ? issue.path : rest.length > 0 ? rest.join(".") : name;
    return { path, message: issue.message };
  });
  throw new InvalidSpecError(issues, { subject: `${method}() arguments` });
}
