/**
 * The configuration of `runtime-kernel serve`: a YAML or JSON file (YAML is a superset of
 * JSON, so one parser reads both), validated by zod with messages that name the field,
 * then overridden by flags. Profiles are validated by the kernel's own `profileSchema`, so
 * a profile that `serve` accepts is one the kernel accepts.
 * @module
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { InvalidSpecError, type Profile, profileSchema } from "../index.js";
import { HOST_PATTERN, HOST_PATTERN_MESSAGE } from "../name-rules.js";
import { issuesOf } from "../zod-issues.js";

/** The backends `serve` can drive. */
export const BACKEND_TYPES = ["process", "docker", "kubernetes", "fake"] as const;

/** A backend's name. */
export type BackendType = (typeof BACKEND_TYPES)[number];

const duration = z.number().int("must be an integer number of milliseconds").nonnegative("must be >= 0");

const backendSchema = z.union([
  z.enum(BACKEND_TYPES, { error: `must be one of ${BACKEND_TYPES.join(", ")}` }),
  z.strictObject({
    type: z.enum(BACKEND_TYPES, { error: `must be one of ${BACKEND_TYPES.join(", ")}` }),
    /** Passed to the backend's constructor as they are (the backend validates them). */
    options: z.record(z.string(), z.unknown()).optional(),
  }),
]);

/** The zod schema of a `serve` config file. */
export const serveConfigSchema = z.strictObject({
  /** Names the kernel; the same id after a restart re-adopts the same workloads. */
  kernelId: z.string().min(1, "must not be empty").optional(),
  /** `unix:PATH` or `HOST:PORT`. */
  address: z.string().min(1, "must not be empty").optional(),
  backend: backendSchema.optional(),
  profiles: z
    .record(z.string().regex(/^[A-Za-z0-9._-]+$/, "must be a simple name"), profileSchema)
    .optional(),
  ownerQuota: z.number().int("must be an integer").nonnegative("must be >= 0").optional(),
  maxConcurrentStarts: z.number().int("must be an integer").positive("must be > 0").optional(),
  reapAfterMs: duration.optional(),
  pollIntervalMs: z.number().int("must be an integer").positive("must be > 0").optional(),
  eventRetention: z.number().int("must be an integer").nonnegative("must be >= 0").optional(),
  /** At shutdown: stop every workload, or leave them running for the next `serve` to recover. */
  onShutdown: z.enum(["stop-workloads", "leave-running"]).optional(),
  /** Re-adopt this kernel's workloads at start (default true). */
  recover: z.boolean().optional(),
  /** A file holding the bearer token every call must carry (never the token itself in the config). */
  tokenFile: z.string().min(1, "must not be empty").optional(),
  tls: z
    .strictObject({
      certFile: z.string().min(1, "must not be empty"),
      keyFile: z.string().min(1, "must not be empty"),
      /** Enables mutual TLS: clients must present a certificate signed by this CA. */
      caFile: z.string().min(1, "must not be empty").optional(),
    })
    .optional(),
  /** Allow a plaintext listener reachable from other machines (off: such an address needs tls). */
  allowInsecureRemote: z.boolean().optional(),
  /** runtime.v1 over HTTP/JSON beside the gRPC service, on the same kernel (same token, tls and rules). */
  http: z
    .strictObject({
      /** `HOST:PORT` or `unix:PATH`. */
      address: z.string().min(1, "must not be empty"),
      /** The contract's name for the backend (`process`, `docker`, `k8s`), when it has none of its own. */
      backend: z.enum(["process", "docker", "k8s"]).optional(),
      /** The spec env variable that names a workload's owner, or false. Default VEXA_OWNER. */
      ownerEnv: z.union([z.string().min(1, "must not be empty"), z.literal(false)]).optional(),
      maxBodyBytes: z.number().int("must be an integer").positive("must be > 0").optional(),
      callbacks: z
        .strictObject({
          /** Default: `<state dir of the kernel>/callbacks/outbox.jsonl`. */
          outboxPath: z.string().min(1, "must not be empty").optional(),
          /** A file holding the secret that signs every callback (never the secret itself). */
          signingSecretFile: z.string().min(1, "must not be empty").optional(),
          maxAttempts: z.number().int("must be an integer").nonnegative("must be >= 0").optional(),
          maxAgeMs: z.number().int("must be an integer").positive("must be > 0").optional(),
          initialBackoffMs: z.number().int("must be an integer").positive("must be > 0").optional(),
          maxBackoffMs: z.number().int("must be an integer").positive("must be > 0").optional(),
          timeoutMs: z.number().int("must be an integer").positive("must be > 0").optional(),
          /** The only hosts callbacks go to (exact, or `*.suffix`); default: any host. */
          allowedHosts: z.array(z.string().regex(HOST_PATTERN, HOST_PATTERN_MESSAGE)).optional(),
        })
        .optional(),
    })
    .optional(),
  /** schedule.v1 jobs, fired by this serve, with `/schedule` on the HTTP surface. */
  schedule: z
    .strictObject({
      /** `journal` (in the kernel's state dir), `{ journal: PATH }`, or `{ redis: URL }` shared with other serves. */
      store: z.union(
        [
          z.literal("journal"),
          z.strictObject({ journal: z.string().min(1, "must not be empty") }),
          z.strictObject({
            redis: z.string().regex(/^rediss?:\/\//, "must be a redis:// or rediss:// URL"),
            prefix: z.string().min(1, "must not be empty").optional(),
          }),
        ],
        { error: 'must be "journal", { journal: PATH } or { redis: URL }' },
      ),
      /** The IANA time zone cron expressions are read in. Default UTC. */
      timeZone: z.string().min(1, "must not be empty").optional(),
    })
    .optional(),
});

/** A parsed `serve` config file. */
export type ServeConfig = Omit<z.infer<typeof serveConfigSchema>, "profiles"> & {
  profiles?: Record<string, Profile>;
};

/** The profiles `serve` offers when the config names none: `default`, which runs whatever the caller asks. */
export const DEFAULT_PROFILES: Record<string, Profile> = { default: { runnable: {} } };

/** Validates a config object; throws {@link InvalidSpecError} naming each bad field. */
export function parseServeConfig(input: unknown, source = "config"): ServeConfig {
  const result = serveConfigSchema.safeParse(input ?? {});
  if (!result.success) {
    throw new InvalidSpecError(issuesOf(result.error, { unknownKey: false }), { subject: source });
  }
  return result.data as ServeConfig;
}

/** Reads and validates a YAML or JSON config file. */
export function loadServeConfig(path: string): ServeConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new InvalidSpecError([{ path: "", message: `cannot read ${path}: ${(error as Error).message}` }], {
      subject: "config file",
    });
  }
  let data: unknown;
  try {
    data = parseYaml(text);
  } catch (error) {
    throw new InvalidSpecError(
      [{ path: "", message: `${path} is not valid YAML or JSON: ${(error as Error).message}` }],
      {
        subject: "config file",
      },
    );
  }
  const config = parseServeConfig(data, `config file ${path}`);
  // Files named in a config are relative to the config, not to wherever serve was started.
  const base = dirname(resolve(path));
  const at = (file: string) => resolve(base, file);
  if (config.tokenFile) config.tokenFile = at(config.tokenFile);
  const callbacks = config.http?.callbacks;
  if (callbacks?.outboxPath) callbacks.outboxPath = at(callbacks.outboxPath);
  if (callbacks?.signingSecretFile) callbacks.signingSecretFile = at(callbacks.signingSecretFile);
  const store = config.schedule?.store;
  if (typeof store === "object" && "journal" in store) store.journal = at(store.journal);
  if (config.tls) {
    config.tls = {
      certFile: at(config.tls.certFile),
      keyFile: at(config.tls.keyFile),
      ...(config.tls.caFile ? { caFile: at(config.tls.caFile) } : {}),
    };
  }
  return config;
}

/** The backend type and options a config names. */
export function backendOf(config: ServeConfig): { type: BackendType; options: Record<string, unknown> } {
  const b = config.backend;
  if (b === undefined) return { type: "process", options: {} };
  if (typeof b === "string") return { type: b, options: {} };
  return { type: b.type, options: b.options ?? {} };
}
