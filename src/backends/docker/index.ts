/**
 * `runtime-kernel/docker`: the {@link DockerBackend}, which runs each workload as a sandboxed
 * Docker container through dockerode. Imported on its own subpath so that dockerode loads only
 * for hosts that use it.
 * @module
 */

export type { ContainerCreateBody, ContainerHostConfig, ContainerSpec } from "./container-spec.js";
export { BACKEND_LABEL, buildContainerSpec, STOP_SIGNAL_LABEL } from "./container-spec.js";
export type { DockerHandle } from "./docker-backend.js";
export { DockerBackend } from "./docker-backend.js";
export { splitImage } from "./image-pull.js";
export { LogDemuxer } from "./log-demux.js";
export { containerName, dns1123 } from "./names.js";
export type {
  DockerBackendOptions,
  DockerClient,
  DockerProfile,
  ImagePullAuth,
  PullPolicy,
  ResolvedDockerProfile,
} from "./options.js";
export { dockerProfileSchema, PROFILE_DEFAULTS } from "./options.js";
