/**
 * runtime.v1 over HTTP, as Vexa's published contract defines it (`runtime.schema.json`:
 * WorkloadSpec, WorkloadStatus, RuntimeEvent, RuntimeState, StopReason, Backend), written
 * as zod schemas. The same schemas validate requests at the boundary and produce the
 * `GET /openapi.json` document, so what is documented is what is enforced.
 *
 * Where this surface is stricter than the published schema it says so: a `workloadId` must
 * be a DNS-1123 label (the kernel's rule, so the name reaches Docker and Kubernetes
 * unmangled), env names must be portable, a `callbackUrl` must be http or https, timeouts
 * are bounded.
 * @module
 */
import { z } from "zod";
import { WORKLOAD_STATES } from "../index.js";
import { DNS1123_LABEL, ENV_NAME, ENV_NAME_MESSAGE } from "../name-rules.js";

/**
 * Ids and descriptions for the OpenAPI document. A registry of this module's own, not zod's
 * global one, so that schemas of the host application (which may share the zod instance)
 * neither collide with these ids nor leak into the document.
 */
export const contractRegistry = z.registry<{ id?: string; description?: string }>();

/** Registers `schema`'s id or description for the document. */
export function doc<S extends z.ZodType>(schema: S, meta: { id?: string; description?: string }): S {
  contractRegistry.add(schema, meta);
  return schema;
}

/** Ten years: far beyond any real timeout, and within what deadlines can hold. */
const MAX_SECONDS = 315_360_000;

/** The lifecycle states, as the contract's `RuntimeState` names them (the kernel's five). */
export const runtimeStateSchema = doc(z.enum(WORKLOAD_STATES), {
  id: "RuntimeState",
  description: "The workload's lifecycle state.",
});

/** The contract's stop reasons (the kernel's are mapped onto them: see `STOP_REASON_TO_WIRE`). */
export const WIRE_STOP_REASONS = [
  "completed",
  "stopped",
  "idle_timeout",
  "failed",
  "oom",
  "start_failed",
  "max_lifetime",
] as const;

/** A stop reason as the contract names it. */
export type WireStopReason = (typeof WIRE_STOP_REASONS)[number];

/** The zod schema of the contract's `StopReason`. */
export const stopReasonSchema = doc(z.enum(WIRE_STOP_REASONS), { id: "StopReason" });

/** The contract's backend names. */
export const BACKEND_KINDS = ["docker", "k8s", "process"] as const;

/** A backend as the contract names it. */
export type BackendKind = (typeof BACKEND_KINDS)[number];

/** The zod schema of the contract's `Backend`. */
export const backendKindSchema = doc(z.enum(BACKEND_KINDS), { id: "Backend" });

const seconds = z
  .int("must be an integer number of seconds")
  .nonnegative("must be >= 0")
  .max(MAX_SECONDS, `must be at most ${MAX_SECONDS} (ten years)`);

/** The body of `POST /workloads`. */
export const workloadSpecSchema = doc(
  z.strictObject({
    workloadId: doc(
      z
        .string({ error: "is required and must be a string" })
        .regex(
          DNS1123_LABEL,
          "must be a DNS-1123 label: lowercase letters, digits and '-', at most 63 characters",
        ),
      { description: "The caller's id for the workload, and the key that makes create idempotent." },
    ),
    profile: doc(z.string({ error: "is required and must be a string" }).min(1, "must not be empty"), {
      description: "The name of a profile configured on the kernel.",
    }),
    env: doc(
      z.record(
        z.string().regex(ENV_NAME, ENV_NAME_MESSAGE),
        z
          .string({ error: "must be a string" })
          .refine((v) => !v.includes("\0"), "must not contain NUL characters"),
        { error: "is required and must be an object of strings" },
      ),
      { description: "Environment of the workload, over the profile's." },
    ),
    callbackUrl: doc(
      z.url({ protocol: /^https?$/, error: "must be an absolute http:// or https:// URL" }).optional(),
      { description: "Where every transition is POSTed as a RuntimeEvent." },
    ),
    resources: doc(
      z
        .strictObject({
          cpu: z.number("must be a number").nonnegative("must be >= 0").optional(),
          memoryMb: z.int("must be an integer").nonnegative("must be >= 0").optional(),
          gpu: z.int("must be an integer").nonnegative("must be >= 0").optional(),
        })
        .optional(),
      { description: "Limits; 0 or absent is no limit." },
    ),
    idleTimeoutSec: doc(seconds.optional(), {
      description:
        "Stop after this long without activity (a create of the live workload is activity); 0: never.",
    }),
    maxLifetimeSec: doc(seconds.optional(), { description: "Stop this long after the start; 0: never." }),
    backend: doc(backendKindSchema.optional(), {
      description: "Must be this kernel's backend when given: a workload is never run elsewhere.",
    }),
  }),
  { id: "WorkloadSpec", description: "What to run: the body of POST /workloads." },
);

/** A parsed `POST /workloads` body. */
export type WireWorkloadSpec = z.infer<typeof workloadSpecSchema>;

const isoTime = z.iso.datetime();
const ports = doc(z.record(z.string(), z.int()), { description: "Named ports of the workload." });

/** A workload's status, as every workload route answers it. */
export const workloadStatusSchema = doc(
  z.strictObject({
    workloadId: z.string(),
    profile: z.string(),
    state: runtimeStateSchema,
    backend: backendKindSchema,
    ports: ports.optional(),
    startedAt: isoTime.optional(),
    stoppedAt: isoTime.optional(),
    exitCode: z.int().optional(),
    stopReason: stopReasonSchema.optional(),
    node: doc(z.string().optional(), { description: "The host or Pod the workload runs on." }),
  }),
  { id: "WorkloadStatus", description: "The kernel's view of a workload." },
);

/** A status on the wire. */
export type WireWorkloadStatus = z.infer<typeof workloadStatusSchema>;

/** The body POSTed to a workload's `callbackUrl` on each transition. */
export const runtimeEventSchema = doc(
  z.strictObject({
    workloadId: z.string(),
    state: runtimeStateSchema,
    at: isoTime,
    ports: ports.optional(),
    exitCode: z.int().optional(),
    stopReason: stopReasonSchema.optional(),
  }),
  { id: "RuntimeEvent", description: "A transition, POSTed to the workload's callbackUrl." },
);

/** A callback body. */
export type WireRuntimeEvent = z.infer<typeof runtimeEventSchema>;

/** The optional body of `POST /workloads/{workloadId}/stop`. */
export const stopRequestSchema = doc(
  z.strictObject({
    reason: doc(stopReasonSchema.optional(), {
      description: "stopped (the default), idle_timeout or max_lifetime.",
    }),
  }),
  { id: "StopRequest" },
);

/** The body of `GET /health`. */
export const healthSchema = doc(
  z.strictObject({
    status: z.enum(["ok", "degraded"]),
    checks: z.record(z.string(), z.boolean()),
  }),
  { id: "Health" },
);

/** Every error answer: `detail` says what went wrong (as FastAPI's `{detail}` does), `code` is the kernel's. */
export const errorSchema = doc(
  z.strictObject({
    detail: z.string(),
    code: doc(z.string(), { description: "A stable code: INVALID_SPEC, WORKLOAD_NOT_FOUND, ..." }),
    issues: doc(z.array(z.strictObject({ path: z.string(), message: z.string() })).optional(), {
      description: "Each bad field of a refused request.",
    }),
  }),
  { id: "Error" },
);

/** An error answer. */
export type WireError = z.infer<typeof errorSchema>;
