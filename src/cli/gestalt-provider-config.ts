/**
 * The configuration `runtime-kernel gestalt-provider` receives from gestaltd in
 * ConfigureProvider (`runtime.providers.<name>.config` of gestaltd's config, as a
 * google.protobuf.Struct): which backend to run plugins on, the kernel profiles, and how the
 * plugins' sockets and session folders reach the host. Validated with zod; every refusal
 * names the field (`backend.type`, `profiles.gestalt-plugin.runnable`, ...).
 * @module
 */
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { z } from "zod";
import { InvalidSpecError, type Profile, profileSchema } from "../index.js";
import { issuesOf } from "../zod-issues.js";
import { BACKEND_TYPES, type BackendType } from "./config.js";

/** The backends a gestalt provider can run plugins on (the fake one is for tests of `serve` only). */
export const PROVIDER_BACKENDS = BACKEND_TYPES.filter((b) => b !== "fake") as Exclude<BackendType, "fake">[];

const absolutePath = z
  .string({ error: "must be a string" })
  .refine((p) => isAbsolute(p), "must be an absolute path");
const millis = z
  .number({ error: "must be a number" })
  .int("must be an integer number of milliseconds")
  .positive("must be > 0");
const backendType = z.enum(PROVIDER_BACKENDS, { error: `must be one of ${PROVIDER_BACKENDS.join(", ")}` });

const configSchema = z.strictObject({
  /** `process`, `docker` or `kubernetes`, or `{ type, options }` (the backend's constructor options). */
  backend: z
    .preprocess(
      (v) => (typeof v === "string" ? { type: v } : v),
      z.strictObject({
        type: backendType,
        options: z.record(z.string(), z.unknown(), { error: "must be a mapping" }).optional(),
      }),
    )
    .default({ type: "process" }),
  /** The kernel's identity (default `gestalt-<provider name>`): its workloads are found again by it. */
  kernelId: z.string().min(1, "must not be empty").optional(),
  /** Kernel profiles; default `{ "gestalt-plugin": { runnable: {} } }`. */
  profiles: z
    .record(z.string().regex(/^[A-Za-z0-9._-]+$/, "must be a simple name"), profileSchema)
    .optional(),
  /** The profile of a session that names no template. Default `gestalt-plugin`. */
  profile: z.string().min(1, "must not be empty").optional(),
  /** Where session folders go (created 0700 if missing). Default `$TMPDIR/runtime-kernel-gestalt/<name>`. */
  sessionRoot: absolutePath.optional(),
  /** Where the session folder appears inside a plugin's workload. Default per backend (see the docs). */
  mountPath: absolutePath.optional(),
  /** How the plugin's endpoint reaches the host. Default: its unix socket in the shared session folder. */
  socket: z
    .discriminatedUnion(
      "kind",
      [
        z.strictObject({ kind: z.literal("shared-folder") }),
        z.strictObject({
          kind: z.literal("port"),
          port: z
            .number()
            .int("must be an integer")
            .min(1, "must be 1 to 65535")
            .max(65535, "must be 1 to 65535"),
          name: z.string().min(1, "must not be empty").optional(),
        }),
      ],
      { error: 'must be { kind: "shared-folder" } or { kind: "port", port }' },
    )
    .optional(),
  /** The egress policy plugins are held to. `hostname` needs the process backend (a local proxy). Default `none`. */
  egressMode: z
    .enum(["none", "cidr", "hostname"], { error: 'must be "none", "cidr" or "hostname"' })
    .optional(),
  /** Offer PrepareWorkspace. Default: when the system git runs. */
  prepareWorkspace: z.boolean({ error: "must be true or false" }).optional(),
  /** GESTALT_PLUGIN_PARENT_PID for plugins: a pid, or false for unset. Default per backend (see the docs). */
  pluginParentPid: z
    .union([z.number().int().positive(), z.literal(false)], { error: "must be a pid or false" })
    .optional(),
  /** How long StartPlugin waits for the plugin to listen. Default 30,000. */
  readyTimeoutMs: millis.optional(),
  /** Grace between SIGTERM and SIGKILL when a session stops. Default 2,000. */
  graceMs: millis.optional(),
});

/** A validated provider configuration, with every default applied. */
export interface GestaltProviderConfig {
  backend: { type: Exclude<BackendType, "fake">; options: Record<string, unknown> };
  kernelId: string;
  profiles: Record<string, Profile>;
  profile: string;
  sessionRoot: string;
  mountPath?: string;
  socket: { kind: "shared-folder" } | { kind: "port"; port: number; name?: string };
  egressMode: "none" | "cidr" | "hostname";
  prepareWorkspace?: boolean;
  pluginParentPid?: number | false;
  readyTimeoutMs?: number;
  graceMs: number;
}

const PLUGIN_PROFILE = "gestalt-plugin";

function refuse(path: string, message: string): InvalidSpecError {
  return new InvalidSpecError([{ path, message }], { subject: "runtime provider config" });
}

/** What the backend's own options say a plugin sees: where its workspace is mounted, and its parent. */
function backendDefaults(
  type: Exclude<BackendType, "fake">,
  options: Record<string, unknown>,
  profile: string,
): { mountPath?: string; pluginParentPid?: number | false } {
  if (type === "docker") {
    const o = options as {
      defaults?: Record<string, unknown>;
      profiles?: Record<string, Record<string, unknown>>;
    };
    const resolved = { ...o.defaults, ...o.profiles?.[profile] };
    // The Docker backend mounts the workspace at /workspace and runs an init as PID 1,
    // which is then the plugin's parent.
    return {
      mountPath: typeof resolved.workspaceMountPath === "string" ? resolved.workspaceMountPath : "/workspace",
      pluginParentPid: resolved.init === false ? false : 1,
    };
  }
  if (type === "kubernetes") {
    const o = options as { profiles?: Record<string, { workspace?: { mountPath?: unknown } }> };
    const mountPath = o.profiles?.[profile]?.workspace?.mountPath;
    // The plugin is PID 1 of its container: its parent is outside its PID namespace (getppid() is 0).
    return { ...(typeof mountPath === "string" ? { mountPath } : {}), pluginParentPid: false };
  }
  return {};
}

/**
 * Validates ConfigureProvider's config for the provider `name`; throws an `INVALID_SPEC`
 * error whose issues name each field.
 */
export function parseGestaltProviderConfig(input: unknown, name: string): GestaltProviderConfig {
  const result = configSchema.safeParse(input ?? {});
  if (!result.success) {
    throw new InvalidSpecError(issuesOf(result.error, { unknownKey: false }), {
      subject: "runtime provider config",
    });
  }
  const c = result.data;
  const backend = { type: c.backend.type, options: c.backend.options ?? {} };
  const profile = c.profile ?? PLUGIN_PROFILE;
  const profiles = (c.profiles as Record<string, Profile> | undefined) ?? {
    [PLUGIN_PROFILE]: { runnable: {} },
  };
  if (!Object.hasOwn(profiles, profile)) {
    throw refuse(
      "profile",
      `names no profile of profiles (has: ${Object.keys(profiles).join(", ") || "none"})`,
    );
  }
  if (c.egressMode === "hostname" && backend.type !== "process") {
    throw refuse(
      "egressMode",
      `hostname egress is enforced by a local proxy, which only the process backend's plugins can reach (backend is ${backend.type})`,
    );
  }
  const defaults = backendDefaults(backend.type, backend.options, profile);
  const mountPath = c.mountPath ?? defaults.mountPath;
  if (backend.type === "kubernetes" && mountPath === undefined) {
    throw refuse(
      "mountPath",
      `is required on kubernetes unless backend.options.profiles.${profile}.workspace names the volume's mountPath`,
    );
  }
  const pluginParentPid = c.pluginParentPid ?? defaults.pluginParentPid;
  return {
    backend,
    kernelId: c.kernelId ?? `gestalt-${name.replace(/[^A-Za-z0-9._-]+/g, "-") || "provider"}`,
    profiles,
    profile,
    sessionRoot:
      c.sessionRoot ??
      join(tmpdir(), "runtime-kernel-gestalt", name.replace(/[^A-Za-z0-9._-]+/g, "-") || "provider"),
    mountPath,
    socket: c.socket ?? { kind: "shared-folder" },
    egressMode: c.egressMode ?? "none",
    prepareWorkspace: c.prepareWorkspace,
    pluginParentPid,
    readyTimeoutMs: c.readyTimeoutMs,
    graceMs: c.graceMs ?? 2_000,
  };
}
