/**
 * The Pod (and its per-run Secret) for one {@link StartRequest}: a pure function, so that what
 * reaches the API server can be read and tested without one.
 * @module
 */
import { posix } from "node:path";
import { InvalidSpecError, type ValidationIssue } from "../../errors.js";
import { LABELS, type StartRequest } from "../backend.js";
import type {
  V1Container,
  V1EnvVar,
  V1Pod,
  V1ResourceRequirements,
  V1Secret,
  V1SecurityContext,
  V1Volume,
  V1VolumeMount,
} from "./models.js";
import { isEnvName, isLabelKey, isLabelValue, labelValue, podName } from "./names.js";
import type { KubernetesProfile } from "./options.js";

/** The container every Pod runs; logs and exit codes are read from it. */
export const MAIN_CONTAINER = "main";

/** Annotation holding every label the kernel gave, in full (label values are length-limited). */
export const ANNOTATION_LABELS = "runtime-kernel.dev/labels";
/** Annotation holding the full ids (kernel, workload, run), for `discover`. */
export const ANNOTATION_IDS = "runtime-kernel.dev/ids";

/** The identity labels put on Pods and Secrets (sanitised values; full values in annotations). */
const IDENTITY_LABELS = [
  LABELS.kernelId,
  LABELS.workloadId,
  LABELS.runId,
  LABELS.owner,
  LABELS.profile,
] as const;
/** Deadlines and counters the kernel attaches, kept as annotations. */
const ANNOTATED_LABELS = [LABELS.maxLifetimeAt, LABELS.createdAt, LABELS.restart] as const;

/** Label selector of every Pod and Secret of `kernelId`. */
export function kernelSelector(kernelId: string): string {
  return `${LABELS.kernelId}=${labelValue(kernelId)}`;
}

/** The safe default: no root where the image allows, no privilege escalation, no capabilities. */
export const DEFAULT_SECURITY_CONTEXT: Readonly<V1SecurityContext> = Object.freeze({
  runAsNonRoot: true,
  runAsUser: 65532,
  runAsGroup: 65532,
  allowPrivilegeEscalation: false,
  privileged: false,
  capabilities: { drop: ["ALL"] },
  seccompProfile: { type: "RuntimeDefault" },
});

/** What {@link buildPodManifests} returns: the Pod, and the Secret to create first when there is any env. */
export interface PodManifests {
  pod: V1Pod & { metadata: { name: string; namespace: string } };
  secret?: V1Secret & { metadata: { name: string; namespace: string } };
}

/** Inputs of {@link buildPodManifests} besides the request. */
export interface PodManifestOptions {
  namespace: string;
  namePrefix: string;
  profile: KubernetesProfile;
}

/** Merges a profile over defaults (maps merge, scalars override). */
export function mergeProfiles(
  base: KubernetesProfile | undefined,
  over: KubernetesProfile | undefined,
): KubernetesProfile {
  const b = base ?? {};
  const o = over ?? {};
  return {
    ...b,
    ...o,
    nodeSelector: { ...b.nodeSelector, ...o.nodeSelector },
    tolerations: [...(b.tolerations ?? []), ...(o.tolerations ?? [])],
    securityContext: { ...b.securityContext, ...o.securityContext },
    podSecurityContext: { ...b.podSecurityContext, ...o.podSecurityContext },
    labels: { ...b.labels, ...o.labels },
    annotations: { ...b.annotations, ...o.annotations },
  };
}

function quantityCpu(cpu: number): string {
  return `${Math.max(1, Math.round(cpu * 1000))}m`;
}

function resources(request: StartRequest, profile: KubernetesProfile): V1ResourceRequirements | undefined {
  const r = request.resources;
  if (!r) return undefined;
  const q: Record<string, string> = {};
  if (r.cpu !== undefined) q.cpu = quantityCpu(r.cpu);
  if (r.memoryMb !== undefined) q.memory = `${Math.ceil(r.memoryMb)}Mi`;
  if (r.gpu !== undefined && r.gpu > 0) q[profile.gpuResource ?? "nvidia.com/gpu"] = String(Math.ceil(r.gpu));
  if (Object.keys(q).length === 0) return undefined;
  // Requests equal to limits: the Pod gets what it asked for and no more (Guaranteed QoS).
  return { requests: { ...q }, limits: { ...q } };
}

/**
 * The `subPath` of a run's workspace in the profile's workspace volume. A relative workspace
 * is the `subPath` itself. An absolute one is a host path, as the process and Docker backends take it
 * (and `kernelRuntimeProvider` passes its session folders): it must lie inside a `hostPath`
 * volume, and becomes its path relative to that volume's root ("" for the root itself).
 */
function workspaceSubPath(
  workspace: string,
  volume: NonNullable<KubernetesProfile["workspace"]>,
): string | { refused: string } {
  if (workspace.startsWith("/")) {
    const root = "volume" in volume ? volume.volume.hostPath?.path : undefined;
    if (!root)
      return {
        refused:
          "an absolute path is a host path, which needs a hostPath workspace volume; otherwise give a path relative to the volume",
      };
    const inside = posix.relative(posix.normalize(root), posix.normalize(workspace));
    if (inside === ".." || inside.startsWith("../"))
      return { refused: `must lie inside the hostPath workspace volume (${root})` };
    return inside;
  }
  const parts = workspace.split("/").filter((p) => p.length > 0 && p !== ".");
  if (parts.length === 0 || parts.includes(".."))
    return { refused: "must be a relative path inside the workspace volume, without '..'" };
  return parts.join("/");
}

/** Refuses a request the backend cannot run; returns the workspace's `subPath`, if any, and the mounts' volumes. */
function validate(
  request: StartRequest,
  profile: KubernetesProfile,
): { subPath: string | undefined; mounts: ReturnType<typeof mountVolumes> } {
  const issues: ValidationIssue[] = [];
  let subPath: string | undefined;
  if (typeof request.runnable.image !== "string" || request.runnable.image.length === 0)
    issues.push({
      path: "runnable.image",
      message: "the Kubernetes backend runs images: an image is required",
    });
  const command = request.runnable.command;
  if (command !== undefined && (!Array.isArray(command) || command.some((a) => typeof a !== "string")))
    issues.push({ path: "runnable.command", message: "must be an array of strings (argv)" });
  for (const name of Object.keys(request.env))
    if (!isEnvName(name))
      issues.push({
        path: `env.${name}`,
        message: "not a valid environment variable name for a Pod ([-._a-zA-Z][-._a-zA-Z0-9]*)",
      });
  const r = request.resources;
  if (r?.cpu !== undefined && !(r.cpu > 0))
    issues.push({ path: "resources.cpu", message: "must be greater than 0" });
  if (r?.memoryMb !== undefined && !(r.memoryMb > 0))
    issues.push({ path: "resources.memoryMb", message: "must be greater than 0" });
  if (request.workspace !== undefined) {
    if (!profile.workspace)
      issues.push({
        path: "workspace",
        message: `profile "${request.profile}" has no Kubernetes workspace volume (set profiles.${request.profile}.workspace)`,
      });
    else {
      const inside = workspaceSubPath(request.workspace, profile.workspace);
      if (typeof inside === "string") subPath = inside;
      else issues.push({ path: "workspace", message: inside.refused });
    }
  }
  const mounts = mountVolumes(request, profile, issues);
  if (issues.length > 0) throw new InvalidSpecError(issues, { subject: "Kubernetes start request" });
  return { subPath, mounts };
}

/**
 * A volume per mount root, and a `subPath` mount of it per mount (read-only where asked), so
 * the Pod holds each mounted directory and nothing else of the root.
 */
function mountVolumes(
  request: StartRequest,
  profile: KubernetesProfile,
  issues: ValidationIssue[],
): { volumes: V1Volume[]; volumeMounts: V1VolumeMount[] } {
  const volumes: V1Volume[] = [];
  const volumeMounts: V1VolumeMount[] = [];
  const byRoot = new Map<string, string>();
  const targets = new Set(
    profile.workspace && request.workspace !== undefined ? [profile.workspace.mountPath] : [],
  );
  for (const [i, mount] of (request.mounts ?? []).entries()) {
    const inside = posix.relative(posix.normalize(mount.root), posix.normalize(mount.source));
    if (
      !mount.root.startsWith("/") ||
      inside === ".." ||
      inside.startsWith("../") ||
      inside.startsWith("/")
    ) {
      issues.push({ path: `mounts.${i}.source`, message: `must lie inside its root (${mount.root})` });
      continue;
    }
    if (!mount.target.startsWith("/") || targets.has(mount.target)) {
      issues.push({ path: `mounts.${i}.target`, message: "must be an absolute path not mounted already" });
      continue;
    }
    targets.add(mount.target);
    let name = byRoot.get(mount.root);
    if (name === undefined) {
      name = `mount-${byRoot.size}`;
      byRoot.set(mount.root, name);
      const source = profile.mountRoots?.[mount.root] ?? {
        hostPath: { path: mount.root, type: "Directory" },
      };
      volumes.push({ ...source, name });
    }
    volumeMounts.push({
      name,
      mountPath: mount.target,
      ...(inside ? { subPath: inside } : {}),
      ...(mount.readOnly ? { readOnly: true } : {}),
    });
  }
  return { volumes, volumeMounts };
}

/** The labels of one run's Pod and Secret: the profile's, the kernel's that fit, and the identity (sanitised). */
function podLabels(request: StartRequest, profile: KubernetesProfile): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [key, value] of Object.entries(profile.labels ?? {})) labels[key] = value;
  for (const [key, value] of Object.entries(request.labels))
    if (!(ANNOTATED_LABELS as readonly string[]).includes(key) && isLabelKey(key) && isLabelValue(value))
      labels[key] = value;
  const identity = identityOf(request);
  for (const key of IDENTITY_LABELS) {
    const value = identity[key];
    if (value !== undefined) labels[key] = labelValue(value);
    else delete labels[key];
  }
  return labels;
}

/** The identity labels' full values, by label key (the owner may be absent). */
function identityOf(request: StartRequest): Record<string, string | undefined> {
  return {
    [LABELS.kernelId]: request.kernelId,
    [LABELS.workloadId]: request.workloadId,
    [LABELS.runId]: request.runId,
    [LABELS.owner]: request.owner,
    [LABELS.profile]: request.profile,
  };
}

/** The annotations of one run's Pod: the profile's, every label in full, the ids, and the kernel's deadlines. */
function podAnnotations(request: StartRequest, profile: KubernetesProfile): Record<string, string> {
  const annotations: Record<string, string> = { ...profile.annotations };
  const allLabels: Record<string, string> = { ...request.labels };
  const identity = identityOf(request);
  for (const key of IDENTITY_LABELS) {
    const value = identity[key];
    if (value !== undefined) allLabels[key] = value;
  }
  annotations[ANNOTATION_LABELS] = JSON.stringify(allLabels);
  annotations[ANNOTATION_IDS] = JSON.stringify({
    kernelId: request.kernelId,
    workloadId: request.workloadId,
    runId: request.runId,
  });
  for (const key of ANNOTATED_LABELS) {
    const value = request.labels[key];
    if (value !== undefined) annotations[key] = value;
  }
  return annotations;
}

/** The per-run Secret holding every env value (none without env), and the container's references to it. */
function envSecret(
  request: StartRequest,
  metadata: { name: string; namespace: string; labels: Record<string, string> },
): { secret: PodManifests["secret"]; env: V1EnvVar[] } {
  const { name, namespace, labels } = metadata;
  const envNames = Object.keys(request.env).sort();
  const secret: PodManifests["secret"] =
    envNames.length === 0
      ? undefined
      : {
          apiVersion: "v1",
          kind: "Secret",
          metadata: { name, namespace, labels: { ...labels } },
          type: "Opaque",
          immutable: true,
          stringData: { ...request.env },
        };
  const env: V1EnvVar[] = envNames.map((key) => ({
    name: key,
    valueFrom: { secretKeyRef: { name, key, optional: false } },
  }));
  return { secret, env };
}

/** The Pod's volumes and the container's mounts: the workspace (when the run has one), then the mounts'. */
function podVolumes(
  profile: KubernetesProfile,
  subPath: string | undefined,
  mounts: ReturnType<typeof mountVolumes>,
): { volumes: V1Volume[]; volumeMounts: V1VolumeMount[] } {
  const volumes: V1Volume[] = [];
  const volumeMounts: V1VolumeMount[] = [];
  if (subPath !== undefined && profile.workspace) {
    const ws = profile.workspace;
    const volume: V1Volume =
      "claimName" in ws
        ? { name: "workspace", persistentVolumeClaim: { claimName: ws.claimName } }
        : { ...ws.volume, name: "workspace" };
    volumes.push(volume);
    volumeMounts.push({
      name: "workspace",
      mountPath: ws.mountPath,
      ...(subPath ? { subPath } : {}),
      ...(ws.readOnly ? { readOnly: true } : {}),
    });
  }
  volumes.push(...mounts.volumes);
  volumeMounts.push(...mounts.volumeMounts);
  return { volumes, volumeMounts };
}

/** The one container the run is: its image, command, working directory, env, resources and mounts. */
function mainContainer(
  request: StartRequest,
  profile: KubernetesProfile,
  parts: { subPath: string | undefined; env: V1EnvVar[]; volumeMounts: V1VolumeMount[] },
): V1Container {
  const { subPath, env, volumeMounts } = parts;
  const container: V1Container = {
    name: MAIN_CONTAINER,
    image: request.runnable.image as string,
    imagePullPolicy: profile.imagePullPolicy ?? "IfNotPresent",
    securityContext: { ...DEFAULT_SECURITY_CONTEXT, ...profile.securityContext },
    terminationMessagePolicy: "FallbackToLogsOnError",
  };
  if (request.runnable.command && request.runnable.command.length > 0)
    container.command = [...request.runnable.command];
  // As on the other backends, a run with a workspace starts in it unless it says otherwise.
  if (typeof request.runnable.cwd === "string") container.workingDir = request.runnable.cwd;
  else if (subPath !== undefined && profile.workspace) container.workingDir = profile.workspace.mountPath;
  if (env.length > 0) container.env = env;
  const res = resources(request, profile);
  if (res) container.resources = res;
  if (volumeMounts.length > 0) container.volumeMounts = volumeMounts;
  return container;
}

/** The Pod spec around the container: never restarted by Kubernetes, no token, no service links, the profile's scheduling. */
function podSpec(
  profile: KubernetesProfile,
  container: V1Container,
  volumes: V1Volume[],
): NonNullable<V1Pod["spec"]> {
  const spec: NonNullable<V1Pod["spec"]> = {
    // The kernel owns restarts and reaping: a Pod never restarts its container by itself.
    restartPolicy: "Never",
    automountServiceAccountToken: profile.automountServiceAccountToken ?? false,
    // Service links would put other Services' addresses into the environment.
    enableServiceLinks: false,
    containers: [container],
  };
  if (profile.serviceAccountName) spec.serviceAccountName = profile.serviceAccountName;
  if (profile.nodeSelector && Object.keys(profile.nodeSelector).length > 0)
    spec.nodeSelector = { ...profile.nodeSelector };
  if (profile.tolerations && profile.tolerations.length > 0) spec.tolerations = [...profile.tolerations];
  if (profile.podSecurityContext && Object.keys(profile.podSecurityContext).length > 0)
    spec.securityContext = { ...profile.podSecurityContext };
  if (profile.imagePullSecrets?.length)
    spec.imagePullSecrets = profile.imagePullSecrets.map((n) => ({ name: n }));
  if (profile.runtimeClassName) spec.runtimeClassName = profile.runtimeClassName;
  if (profile.priorityClassName) spec.priorityClassName = profile.priorityClassName;
  if (profile.schedulerName) spec.schedulerName = profile.schedulerName;
  if (profile.terminationGracePeriodSeconds !== undefined)
    spec.terminationGracePeriodSeconds = profile.terminationGracePeriodSeconds;
  if (volumes.length > 0) spec.volumes = volumes;
  return spec;
}

/**
 * Builds the Pod of one run, and the Secret that carries its environment.
 *
 * Every env value goes into the per-run Secret and the Pod refers to it by `secretKeyRef`:
 * `StartRequest.env` mixes brokered credentials with plain settings and the backend cannot tell
 * them apart, so none of it is written into the Pod spec (or the events that quote it).
 */
export function buildPodManifests(request: StartRequest, options: PodManifestOptions): PodManifests {
  const { profile, namespace } = options;
  const { subPath, mounts } = validate(request, profile);
  const name = podName(options.namePrefix, request.workloadId, request.runId);
  const labels = podLabels(request, profile);
  const annotations = podAnnotations(request, profile);
  const { secret, env } = envSecret(request, { name, namespace, labels });
  const { volumes, volumeMounts } = podVolumes(profile, subPath, mounts);
  const container = mainContainer(request, profile, { subPath, env, volumeMounts });
  const pod: PodManifests["pod"] = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name, namespace, labels, annotations },
    spec: podSpec(profile, container, volumes),
  };
  return secret ? { pod, secret } : { pod };
}
