/**
 * Options of the Kubernetes backend.
 * @module
 */
import type { V1PodSecurityContext, V1SecurityContext, V1Toleration, V1Volume } from "./models.js";

/** Where a run's workspace (`StartRequest.workspace`) is mounted from. */
export type KubernetesWorkspace = {
  /** Path inside the container. */
  mountPath: string;
  readOnly?: boolean;
} & (
  | {
      /** A PersistentVolumeClaim shared by the profile's workloads; each workspace is a `subPath` of it. */
      claimName: string;
    }
  | {
      /** Any other volume source (its `name` is set by the backend); the workspace is a `subPath` of it. */
      volume: Omit<V1Volume, "name">;
    }
);

/** Pod settings of one kernel profile (matched on `StartRequest.profile`). */
export interface KubernetesProfile {
  nodeSelector?: Record<string, string>;
  tolerations?: V1Toleration[];
  /**
   * Merged over the safe default: `runAsNonRoot: true`, `runAsUser: 65532`, `runAsGroup: 65532`,
   * `allowPrivilegeEscalation: false`, `capabilities.drop: ["ALL"]`, `seccompProfile: RuntimeDefault`.
   * An image that needs root sets `{ runAsNonRoot: false, runAsUser: 0 }` here.
   */
  securityContext?: V1SecurityContext;
  /** Pod-level security context (fsGroup, supplementalGroups, ...). */
  podSecurityContext?: V1PodSecurityContext;
  /** Defaults to none: the Pod gets no service account token unless this profile asks. */
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  /** Defaults to `IfNotPresent`. */
  imagePullPolicy?: "Always" | "IfNotPresent" | "Never";
  imagePullSecrets?: string[];
  runtimeClassName?: string;
  priorityClassName?: string;
  /** A scheduler other than the default one. */
  schedulerName?: string;
  /** The workspace volume; required when a spec sets `workspace`. */
  workspace?: KubernetesWorkspace;
  /**
   * The volume behind each mount root (`StartRequest.mounts[].root`, a kernel profile's
   * `mountRoots`), keyed by the root's path; each mount is a `subPath` of its root's volume.
   * A root not named here is the node's directory at that path (`hostPath`, type `Directory`).
   */
  mountRoots?: Record<string, Omit<V1Volume, "name">>;
  /** Extra labels and annotations on the Pod. */
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  /** Extended resource name for `resources.gpu` (default `nvidia.com/gpu`). */
  gpuResource?: string;
  /** The Pod's own `terminationGracePeriodSeconds` (a kernel `terminate` overrides it per call). */
  terminationGracePeriodSeconds?: number;
}

/**
 * A loaded `KubeConfig` of @kubernetes/client-node (`new KubeConfig()`, then `loadFrom...`), as
 * the public types name it: by shape, since the client's own declaration of the class brings
 * in WebSocket types (`ws`) that the client does not ship, which would fail a strict build.
 */
export interface LoadedKubeConfig {
  getCurrentContext(): string;
  getCurrentCluster(): { readonly server: string } | null;
}

/** Options of {@link KubernetesBackend}. */
export interface KubernetesBackendOptions {
  /**
   * A loaded `KubeConfig` or the path of a kubeconfig file. Default: the files in `KUBECONFIG`,
   * else `~/.kube/config`, else the Pod's service account (in a cluster); with none of these
   * the constructor throws `BACKEND_UNAVAILABLE`, naming where it looked.
   */
  kubeConfig?: LoadedKubeConfig | string;
  /** Namespace of every Pod. Default: `POD_NAMESPACE`, else the kubeconfig context's, else `default`. */
  namespace?: string;
  /** First part of every Pod and Secret name (default `rk`). */
  namePrefix?: string;
  /** Pod settings applied to every profile, under the profile's own. */
  defaults?: KubernetesProfile;
  /** Pod settings per kernel profile name. */
  profiles?: Record<string, KubernetesProfile>;
  /** How long a Pod may stay Pending (unschedulable, image missing, ...) before its start fails. Default 120 s. */
  startTimeoutMs?: number;
  /** How long `cleanup` waits for the Pod to be gone. Default 60 s. */
  cleanupTimeoutMs?: number;
  /** Period of the safety relist that catches anything the watch missed. Default 5 min. */
  resyncMs?: number;
  /** Server-side timeout of each watch request, after which it resumes from its resourceVersion. Default 300 s. */
  watchTimeoutSeconds?: number;
  /** Backoff bounds for reconnecting a dropped watch. Default 200 ms to 10 s. */
  reconnectMs?: { initial?: number; max?: number };
  /**
   * Let `discover` (and so `kernel.recover()`) delete this kernel's Secrets that no Pod goes
   * with: those of a kernel killed between creating a run's Secret and its Pod. Needs `list` on
   * Secrets in the namespace, which lets the kernel read every Secret there; so it is off by
   * default, and the Role in the docs does not grant it. Default `false`.
   */
  reapOrphanSecrets?: boolean;
}
