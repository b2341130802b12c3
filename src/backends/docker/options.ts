/**
 * Options of the Docker backend, and the per-profile container settings (`DockerProfile`),
 * validated by zod at the boundary so that a typo names its field instead of being ignored.
 * @module
 */
import type Dockerode from "dockerode";
import { z } from "zod";
import { InvalidSpecError } from "../../errors.js";
import { issuesOf } from "../../zod-issues.js";
import { isNamePrefix } from "./names.js";

/**
 * A dockerode client, as the public types of this entry name it: by shape rather than by
 * `@types/dockerode`, so that a consumer's strict build needs no types of an optional peer.
 * Any `new Dockerode(...)` fits; with `@types/dockerode` installed, cast
 * `backend.docker as Dockerode` for its full API.
 */
export interface DockerClient {
  /** dockerode's connection to the engine (docker-modem). */
  readonly modem: object;
}

/** When the backend may pull an image. */
export type PullPolicy = "never" | "if-not-present" | "always";

/** Registry credentials for pulls, in the format of `~/.docker/config.json`. */
export interface ImagePullAuth {
  /** A Docker config JSON document: `{"auths": {"registry.example.com": {"auth": "base64(user:pass)"}}}`. */
  dockerConfigJson: string;
}

/**
 * Container settings of one kernel profile. Every field has a safe default; a profile loosens
 * only what it names. Set them in `DockerBackendOptions.defaults` (every profile),
 * `DockerBackendOptions.profiles[name]`, or a profile's `runnable.docker` (later ones win, field
 * by field).
 */
export interface DockerProfile {
  /** Network mode: `none` (the default: no egress at all), `bridge`, `host`, or a network's name. */
  network?: string;
  /** `uid[:gid]` or a user name of the image. Default: the image's user. */
  user?: string;
  /** Mount the image's filesystem read-only (pair it with `tmpfs` for scratch space). Default false. */
  readOnlyRootfs?: boolean;
  /** tmpfs mounts: path inside the container to mount options, e.g. `{ "/tmp": "rw,size=64m" }`. */
  tmpfs?: Record<string, string>;
  /** Capabilities to drop. Default `["ALL"]`. */
  capDrop?: string[];
  /** Capabilities to add back (after the drop). Default none. */
  capAdd?: string[];
  /** Forbid gaining privileges through setuid binaries (`no-new-privileges`). Default true. */
  noNewPrivileges?: boolean;
  /**
   * Run a tiny init (docker-init) as PID 1, so that the workload gets the stop signal with its
   * default disposition and zombies are reaped. Default true.
   */
  init?: boolean;
  /** Maximum number of processes and threads, when the spec's `resources.pids` is absent. Default 1024. */
  pidsLimit?: number;
  /** Where the spec's `workspace` is bind-mounted. Default `/workspace`. */
  workspaceMountPath?: string;
  /** Mount the workspace read-only. Default false. */
  workspaceReadOnly?: boolean;
  /** When the image may be pulled. Default `never`: a missing image fails the start at once. */
  pullPolicy?: PullPolicy;
  /** Credentials for pulls. Never stored on the container, never in errors. */
  imagePullAuth?: ImagePullAuth;
  /** Overrides the image's entrypoint (argv). */
  entrypoint?: string[];
  /** The graceful stop signal `terminate` sends. Default `SIGTERM`. */
  stopSignal?: string;
  /** OCI runtime, e.g. `runsc` for gVisor. Default: the engine's. */
  runtime?: string;
  /** Size of /dev/shm in MiB. Default: the engine's (64). */
  shmSizeMb?: number;
  /**
   * Cap of the container's log (json-file driver, one file) in MiB, so a chatty workload cannot
   * fill the disk. Default 16. 0 keeps the engine's own log configuration.
   */
  logMaxSizeMb?: number;
  /** Extra container labels (the kernel's own labels win on conflict). */
  labels?: Record<string, string>;
}

/** Options of {@link DockerBackend}. */
export interface DockerBackendOptions {
  /** A ready dockerode client (`new Dockerode(...)`). Wins over `socketPath` and `host`. */
  docker?: DockerClient;
  /** Path of the engine's unix socket. */
  socketPath?: string;
  /**
   * The engine's address in `DOCKER_HOST` syntax: `unix:///path/docker.sock`, `tcp://host:2375`.
   * Default: the `DOCKER_HOST` environment variable, else `/var/run/docker.sock`.
   */
  host?: string;
  /** First part of every container name (a DNS-1123 label, at most 20 characters). Default `rk`. */
  namePrefix?: string;
  /** Container settings for every profile, under the profile's own. */
  defaults?: DockerProfile;
  /** Container settings per kernel profile name (matched on `StartRequest.profile`). */
  profiles?: Record<string, DockerProfile>;
  /** How long `cleanup` waits for a removal already in progress elsewhere. Default 30 s. */
  cleanupTimeoutMs?: number;
  /** Backoff bounds for reconnecting the engine's event stream. Default 100 ms to 5 s. */
  reconnectMs?: { initial?: number; max?: number };
}

/** A {@link DockerProfile} with every default applied. */
export type ResolvedDockerProfile = Required<
  Omit<DockerProfile, "user" | "imagePullAuth" | "entrypoint" | "runtime" | "shmSizeMb" | "tmpfs" | "labels">
> &
  Pick<DockerProfile, "user" | "imagePullAuth" | "entrypoint" | "runtime" | "shmSizeMb" | "tmpfs" | "labels">;

/** The safe defaults every profile starts from. */
export const PROFILE_DEFAULTS: Readonly<Omit<ResolvedDockerProfile, "user" | "imagePullAuth">> =
  Object.freeze({
    network: "none",
    readOnlyRootfs: false,
    capDrop: ["ALL"],
    capAdd: [],
    noNewPrivileges: true,
    init: true,
    pidsLimit: 1024,
    workspaceMountPath: "/workspace",
    workspaceReadOnly: false,
    pullPolicy: "never",
    stopSignal: "SIGTERM",
    logMaxSizeMb: 16,
  });

const nonEmpty = z.string().min(1, "must not be empty");
const absolutePath = z
  .string()
  .regex(/^\/[^:\0]*$/, "must be an absolute path inside the container (without ':')");
const capability = z
  .string()
  .regex(/^(ALL|(CAP_)?[A-Z_]+)$/, "must be a capability name such as NET_BIND_SERVICE, or ALL");

/** zod schema of {@link DockerProfile}: strict, so an unknown key is reported rather than ignored. */
export const dockerProfileSchema = z.strictObject({
  network: nonEmpty.optional(),
  user: z
    .string()
    .regex(
      /^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$/,
      "must be uid[:gid] or name[:group]",
    )
    .optional(),
  readOnlyRootfs: z.boolean().optional(),
  tmpfs: z.record(absolutePath, z.string()).optional(),
  capDrop: z.array(capability).optional(),
  capAdd: z.array(capability).optional(),
  noNewPrivileges: z.boolean().optional(),
  init: z.boolean().optional(),
  pidsLimit: z.number().int().positive().optional(),
  workspaceMountPath: absolutePath.optional(),
  workspaceReadOnly: z.boolean().optional(),
  pullPolicy: z.enum(["never", "if-not-present", "always"]).optional(),
  imagePullAuth: z
    .strictObject({
      dockerConfigJson: z
        .string()
        .refine(isDockerConfigJson, "must be a Docker config JSON document with `auths`"),
    })
    .optional(),
  entrypoint: z.array(z.string()).optional(),
  stopSignal: z
    .string()
    .regex(/^(SIG[A-Z0-9+-]+|[0-9]+)$/, "must be a signal name such as SIGTERM, or a number")
    .optional(),
  runtime: nonEmpty.optional(),
  shmSizeMb: z.number().positive().optional(),
  logMaxSizeMb: z.number().int().nonnegative().optional(),
  labels: z.record(nonEmpty, z.string()).optional(),
});

function isDockerConfigJson(text: string): boolean {
  try {
    const doc: unknown = JSON.parse(text);
    return typeof doc === "object" && doc !== null && typeof (doc as { auths?: unknown }).auths === "object";
  } catch {
    return false;
  }
}

const backendOptionsSchema = z.strictObject({
  docker: z
    .custom<DockerClient>((v) => typeof v === "object" && v !== null, "must be a dockerode client")
    .optional(),
  socketPath: nonEmpty.optional(),
  host: z
    .string()
    .regex(
      /^(unix:\/\/\/.+|(tcp|http|https):\/\/[^/]+\/?)$/,
      "must look like unix:///path or tcp://host:port",
    )
    .optional(),
  namePrefix: z
    .string()
    .refine(isNamePrefix, "must be a DNS-1123 label of at most 20 characters (a-z, 0-9, '-')")
    .optional(),
  defaults: dockerProfileSchema.optional(),
  profiles: z.record(z.string(), dockerProfileSchema).optional(),
  cleanupTimeoutMs: z.number().int().positive().optional(),
  reconnectMs: z
    .strictObject({ initial: z.number().positive().optional(), max: z.number().positive().optional() })
    .optional(),
});

/** Validates the backend's options; throws {@link InvalidSpecError} naming each bad field. */
export function parseBackendOptions(options: unknown): DockerBackendOptions {
  const result = backendOptionsSchema.safeParse(options ?? {});
  if (!result.success)
    throw new InvalidSpecError(issuesOf(result.error, { unknownKey: false }), {
      subject: "DockerBackend options",
    });
  return result.data as DockerBackendOptions;
}

/** Validates a profile's `runnable.docker`; throws {@link InvalidSpecError} naming `runnable.docker.<field>`. */
export function parseRunnableDocker(value: unknown, workloadId?: string): DockerProfile {
  if (value === undefined) return {};
  const result = dockerProfileSchema.safeParse(value);
  if (!result.success) {
    throw new InvalidSpecError(issuesOf(result.error, { prefix: "runnable.docker", unknownKey: false }), {
      subject: "docker runnable",
      workloadId,
    });
  }
  return result.data as DockerProfile;
}

/** Merges profile layers field by field over the safe defaults (later layers win). */
export function resolveProfile(...layers: Array<DockerProfile | undefined>): ResolvedDockerProfile {
  const resolved: ResolvedDockerProfile = { ...PROFILE_DEFAULTS } as ResolvedDockerProfile;
  for (const layer of layers) {
    if (!layer) continue;
    for (const [key, value] of Object.entries(layer)) {
      if (value !== undefined) (resolved as unknown as Record<string, unknown>)[key] = value;
    }
  }
  return resolved;
}

/**
 * dockerode connection options for `host` in `DOCKER_HOST` syntax. `unix:///p` becomes a socket
 * path; `tcp://h:p` plain HTTP (TLS engines: pass a configured `docker` client instead).
 */
export function connectionFor(host: string): Dockerode.DockerOptions {
  if (host.startsWith("unix://")) return { socketPath: host.slice("unix://".length) };
  const url = new URL(host.replace(/^tcp:/, "http:"));
  const protocol = url.protocol === "https:" ? "https" : "http";
  return { host: url.hostname, port: url.port || (protocol === "https" ? 2376 : 2375), protocol };
}
