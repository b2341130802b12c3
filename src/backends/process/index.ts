/**
 * The process backend: real child processes, supervised by one long-lived process per
 * state dir so that workloads and their exit codes survive the kernel. Exported from the
 * main `runtime-kernel` entry; it loads execa only when it launches a supervisor.
 * @module
 */

export { DEFAULT_INHERITED_ENV, type ProcessLimits } from "./launch-spec.js";
export { ProcessBackend, type ProcessBackendOptions, type ProcessHandle } from "./process-backend.js";
export type { SupervisorStats } from "./protocol.js";
export { DEFAULT_SYSTEM_PATHS, type ProcessSandboxOptions, sandboxIdentity } from "./sandbox.js";
export { UnsafeStateDirError } from "./state-dir.js";
