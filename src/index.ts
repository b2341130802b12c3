/**
 * runtime-kernel: spawn, observe, stop and reap isolated workloads.
 *
 * This entry stays light: it never loads dockerode, the Kubernetes client or gRPC.
 * Those live behind `runtime-kernel/docker`, `runtime-kernel/kubernetes`,
 * `runtime-kernel/gestalt` and `runtime-kernel/server`.
 * @module
 */

export type {
  Backend,
  DiscoveredWorkload,
  ExitStatus,
  LogEntry,
  LogOptions,
  Resources,
  Runnable,
  StartRequest,
  WorkloadHandle,
  WorkloadMount,
} from "./backends/backend.js";
export { exitCodeForSignal, LABELS, signalForExitCode } from "./backends/backend.js";
export type {
  ProcessBackendOptions,
  ProcessHandle,
  ProcessLimits,
  ProcessSandboxOptions,
  SupervisorStats,
} from "./backends/process/index.js";
export {
  DEFAULT_INHERITED_ENV,
  DEFAULT_SYSTEM_PATHS,
  ProcessBackend,
  sandboxIdentity,
  UnsafeStateDirError,
} from "./backends/process/index.js";
export type { Clock } from "./clock.js";
export { systemClock } from "./clock.js";
export * from "./errors.js";
export type { RuntimeKernel, ShutdownOptions, StopOptions } from "./kernel/api.js";
export type { CredentialBroker, CredentialRequest } from "./kernel/credentials.js";
export type { EventStreamOptions, KernelEventMap } from "./kernel/events.js";
export { createRuntimeKernel } from "./kernel/kernel.js";
export type {
  LifecycleContext,
  LifecycleEvent,
  LifecycleInput,
  LifecycleMachine,
  LifecycleStateValue,
} from "./kernel/machine.js";
export { lifecycleMachine, visibleState } from "./kernel/machine.js";
export type { RuntimeKernelOptions } from "./kernel/spec.js";
export { profileSchema, workloadSpecSchema } from "./kernel/spec.js";
export type {
  ListFilter,
  Mount,
  Profile,
  RecoveryReport,
  RequestedStopReason,
  RestartPolicy,
  StopReason,
  TransitionEvent,
  WorkloadSpec,
  WorkloadState,
  WorkloadStatus,
} from "./kernel/types.js";
export { WORKLOAD_STATES } from "./kernel/types.js";
