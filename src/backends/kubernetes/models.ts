/**
 * The Kubernetes object types this backend names, taken from the client's generated models
 * alone: the client's main declarations also declare its WebSocket helpers, whose `ws` types
 * the client does not ship, so a consumer's strict build that reached them would fail.
 * @module
 */
export type {
  V1Container,
  V1ContainerStatus,
  V1EnvVar,
  V1Pod,
  V1PodSecurityContext,
  V1ResourceRequirements,
  V1Secret,
  V1SecurityContext,
  V1Toleration,
  V1Volume,
  V1VolumeMount,
} from "@kubernetes/client-node/dist/gen/models/all.js";
