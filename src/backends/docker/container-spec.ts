/**
 * Turns a {@link StartRequest} and a resolved {@link DockerProfile} into the engine's
 * container-create body. Pure: no engine call, so every sandbox default is unit-tested here.
 * @module
 */
import { isAbsolute } from "node:path";
import { InvalidSpecError, type ValidationIssue } from "../../errors.js";
import { LABELS, type StartRequest } from "../backend.js";
import { containerName, hostnameFor } from "./names.js";
import type { ResolvedDockerProfile } from "./options.js";

/** The label that marks a container as created by this backend (with `LABELS.kernelId`, what `discover` selects on). */
export const BACKEND_LABEL = "runtime-kernel.dev/backend";

/** The value of {@link BACKEND_LABEL}. */
export const BACKEND_NAME = "docker";

/** The profile's graceful stop signal when it is not SIGTERM, so a recovered handle still knows it. */
export const STOP_SIGNAL_LABEL = "runtime-kernel.dev/stop-signal";

const MIB = 1024 * 1024;

/** The container's labels: the profile's extras, the request's labels, then the identity labels. */
export function containerLabels(
  request: StartRequest,
  profile: ResolvedDockerProfile,
): Record<string, string> {
  const labels: Record<string, string> = { ...profile.labels, ...request.labels };
  labels[LABELS.kernelId] = request.kernelId;
  labels[LABELS.workloadId] = request.workloadId;
  labels[LABELS.runId] = request.runId;
  labels[LABELS.profile] = request.profile;
  if (request.owner !== undefined) labels[LABELS.owner] = request.owner;
  labels[BACKEND_LABEL] = BACKEND_NAME;
  if (profile.stopSignal !== "SIGTERM") labels[STOP_SIGNAL_LABEL] = profile.stopSignal;
  return labels;
}

/** `KEY=value` pairs for the engine. Names are checked; values (secrets among them) never reach an error. */
export function envList(env: Record<string, string>, issues: ValidationIssue[]): string[] {
  const list: string[] = [];
  for (const [key, value] of Object.entries(env)) {
    if (key.length === 0 || key.includes("=") || key.includes("\0")) {
      issues.push({
        path: `env.${key}`,
        message: "an environment variable name must be non-empty, without '=' or NUL",
      });
      continue;
    }
    if (typeof value !== "string" || value.includes("\0")) {
      issues.push({ path: `env.${key}`, message: "the value must be a string without NUL" });
      continue;
    }
    list.push(`${key}=${value}`);
  }
  return list;
}

/**
 * The body of the engine's `POST /containers/create`, in the Engine API's own field names.
 * Declared here rather than taken from `@types/dockerode`, so that a consumer's strict build
 * needs no types of the optional dockerode peer.
 */
export interface ContainerCreateBody {
  name: string;
  Image: string;
  Cmd?: string[];
  Entrypoint?: string[];
  Env: string[];
  Labels: Record<string, string>;
  Hostname: string;
  StopSignal: string;
  User?: string;
  WorkingDir?: string;
  HostConfig: ContainerHostConfig;
  [field: string]: unknown;
}

/** The `HostConfig` of a {@link ContainerCreateBody}: network, capabilities, limits, mounts, log driver. */
export interface ContainerHostConfig {
  NetworkMode?: string;
  CapDrop?: string[];
  CapAdd?: string[];
  SecurityOpt?: string[];
  ReadonlyRootfs?: boolean;
  Init?: boolean;
  PidsLimit?: number;
  RestartPolicy?: { Name: string; MaximumRetryCount?: number };
  AutoRemove?: boolean;
  Memory?: number;
  MemorySwap?: number;
  NanoCpus?: number;
  DeviceRequests?: Array<{ Driver?: string; Count?: number; Capabilities?: string[][] }>;
  Tmpfs?: Record<string, string>;
  Runtime?: string;
  ShmSize?: number;
  LogConfig?: { Type: string; Config: Record<string, string> };
  Mounts?: Array<{ Type: "bind" | "volume" | "tmpfs"; Source: string; Target: string; ReadOnly?: boolean }>;
  [field: string]: unknown;
}

/** What {@link buildContainerSpec} produces. */
export interface ContainerSpec {
  name: string;
  image: string;
  /** The body of `POST /containers/create` (with `name`). */
  options: ContainerCreateBody;
}

/**
 * The create body of one run. Sandboxed unless the profile loosens it: no network, every
 * capability dropped, no-new-privileges, an init as PID 1, a pids limit, a capped log; memory
 * and CPU limits from `resources`; the workspace bind-mounted at `/workspace` and each of
 * `mounts` at its target, read-only where asked (one bind per mount, nothing else of the
 * host's files). Throws
 * {@link InvalidSpecError} naming the field when the request cannot become a container.
 */
export function buildContainerSpec(
  request: StartRequest,
  profile: ResolvedDockerProfile,
  namePrefix: string,
): ContainerSpec {
  const issues: ValidationIssue[] = [];
  const { runnable, resources } = request;
  const image = runnable.image;
  if (typeof image !== "string" || image.length === 0) {
    issues.push({ path: "runnable.image", message: "the Docker backend needs an image" });
  }
  const command = runnable.command;
  if (command !== undefined && (!Array.isArray(command) || command.some((a) => typeof a !== "string"))) {
    issues.push({ path: "runnable.command", message: "must be an argv array of strings" });
  }
  if (runnable.cwd !== undefined && (typeof runnable.cwd !== "string" || !runnable.cwd.startsWith("/"))) {
    issues.push({ path: "runnable.cwd", message: "must be an absolute path inside the container" });
  }
  if (
    request.workspace !== undefined &&
    (!isAbsolute(request.workspace) || request.workspace.includes("\0"))
  ) {
    issues.push({ path: "workspace", message: "must be an absolute host path" });
  }
  const mounts = mountSet(request, profile, issues);
  const env = envList(request.env, issues);
  if (resources?.cpu !== undefined && !(resources.cpu > 0)) {
    issues.push({ path: "resources.cpu", message: "must be a positive number of cores" });
  }
  if (resources?.memoryMb !== undefined && !(resources.memoryMb >= 6)) {
    issues.push({ path: "resources.memoryMb", message: "must be at least 6 (the engine's minimum)" });
  }
  if (resources?.pids !== undefined && !(Number.isInteger(resources.pids) && resources.pids > 0)) {
    issues.push({ path: "resources.pids", message: "must be a positive integer" });
  }
  if (resources?.gpu !== undefined && !(Number.isInteger(resources.gpu) && resources.gpu >= 0)) {
    issues.push({ path: "resources.gpu", message: "must be a non-negative integer" });
  }
  if (issues.length > 0) throw new InvalidSpecError(issues, { workloadId: request.workloadId });

  const name = containerName(namePrefix, request.workloadId, request.runId);
  const hostConfig: ContainerHostConfig = {
    NetworkMode: profile.network,
    CapDrop: profile.capDrop,
    CapAdd: profile.capAdd,
    SecurityOpt: profile.noNewPrivileges ? ["no-new-privileges:true"] : [],
    ReadonlyRootfs: profile.readOnlyRootfs,
    Init: profile.init,
    PidsLimit: resources?.pids ?? profile.pidsLimit,
    // The kernel decides about restarts; the engine must never restart or remove on its own.
    RestartPolicy: { Name: "no", MaximumRetryCount: 0 },
    AutoRemove: false,
  };
  if (resources?.memoryMb !== undefined) {
    hostConfig.Memory = Math.round(resources.memoryMb * MIB);
    // Equal to Memory: no swap beyond the limit, so the limit is the limit.
    hostConfig.MemorySwap = hostConfig.Memory;
  }
  if (resources?.cpu !== undefined) hostConfig.NanoCpus = Math.round(resources.cpu * 1e9);
  if (resources?.gpu) {
    hostConfig.DeviceRequests = [{ Driver: "", Count: resources.gpu, Capabilities: [["gpu"]] }];
  }
  if (profile.tmpfs) hostConfig.Tmpfs = profile.tmpfs;
  if (profile.runtime) hostConfig.Runtime = profile.runtime;
  if (profile.shmSizeMb !== undefined) hostConfig.ShmSize = Math.round(profile.shmSizeMb * MIB);
  if (profile.logMaxSizeMb > 0) {
    hostConfig.LogConfig = {
      Type: "json-file",
      Config: { "max-size": `${profile.logMaxSizeMb}m`, "max-file": "1" },
    };
  }
  // Mounts, not Bind strings: a source must exist (no root-owned directory is created for a
  // typo) and a path with ':' cannot be misparsed.
  if (mounts.length > 0) hostConfig.Mounts = mounts;

  const options: ContainerCreateBody = {
    name,
    Image: image as string,
    Hostname: hostnameFor(request.workloadId),
    Env: env,
    Labels: containerLabels(request, profile),
    StopSignal: profile.stopSignal,
    AttachStdin: false,
    AttachStdout: false,
    AttachStderr: false,
    OpenStdin: false,
    Tty: false,
    HostConfig: hostConfig,
  };
  if (command !== undefined) options.Cmd = command;
  if (profile.entrypoint) options.Entrypoint = profile.entrypoint;
  if (profile.user !== undefined) options.User = profile.user;
  const cwd = runnable.cwd ?? (request.workspace !== undefined ? profile.workspaceMountPath : undefined);
  if (cwd !== undefined) options.WorkingDir = cwd;
  return { name, image: image as string, options };
}

/**
 * One bind per mount: the workspace (a one-entry set at the profile's mount path), then the
 * request's mounts. Two mounts at one target are refused, naming the later one.
 */
function mountSet(
  request: StartRequest,
  profile: ResolvedDockerProfile,
  issues: ValidationIssue[],
): NonNullable<ContainerHostConfig["Mounts"]> {
  const binds: NonNullable<ContainerHostConfig["Mounts"]> = [];
  if (request.workspace !== undefined) {
    binds.push({
      Type: "bind",
      Source: request.workspace,
      Target: profile.workspaceMountPath,
      ReadOnly: profile.workspaceReadOnly,
    });
  }
  for (const [i, mount] of (request.mounts ?? []).entries()) {
    if (!isAbsolute(mount.source) || mount.source.includes("\0")) {
      issues.push({ path: `mounts.${i}.source`, message: "must be an absolute host path" });
    } else if (!mount.target.startsWith("/")) {
      issues.push({ path: `mounts.${i}.target`, message: "must be an absolute path inside the container" });
    } else if (binds.some((b) => b.Target === mount.target)) {
      issues.push({
        path: `mounts.${i}.target`,
        message: `${mount.target} is already mounted (the workspace?)`,
      });
    } else {
      binds.push({ Type: "bind", Source: mount.source, Target: mount.target, ReadOnly: mount.readOnly });
    }
  }
  return binds;
}
