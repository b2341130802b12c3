/**
 * `runtime-kernel/kubernetes`: the Kubernetes backend. Loads `@kubernetes/client-node`, so it
 * lives in its own entry point and `import "runtime-kernel"` stays light.
 * @module
 */

export type { RequestCounts } from "./api.js";
export {
  KubernetesBackend,
  type KubernetesBackendStats,
  type KubernetesHandle,
} from "./kubernetes-backend.js";
export { podName } from "./names.js";
export type { KubernetesBackendOptions, KubernetesProfile, KubernetesWorkspace } from "./options.js";
export {
  buildPodManifests,
  DEFAULT_SECURITY_CONTEXT,
  kernelSelector,
  type PodManifests,
} from "./pod-spec.js";
