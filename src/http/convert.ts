/**
 * The kernel's vocabulary and the contract's, and the mapping between them. The kernel's
 * own types stay as they are; the contract's narrower words are produced only here.
 *
 * | kernel `stopReason` | contract `stopReason` | note |
 * |---|---|---|
 * | `requested`, `shutdown` | `stopped` | |
 * | `idle_timeout`, `max_lifetime`, `completed`, `failed`, `oom`, `start_failed` | the same | |
 * | `lost` | `failed` | without an `exitCode`: none was observed |
 * @module
 */
import {
  InvalidSpecError,
  type RequestedStopReason,
  type StopReason,
  type TransitionEvent,
  type WorkloadSpec,
  type WorkloadStatus,
} from "../index.js";
import type {
  BackendKind,
  WireRuntimeEvent,
  WireStopReason,
  WireWorkloadSpec,
  WireWorkloadStatus,
} from "./contract.js";

/** Each kernel stop reason as the contract names it. */
export const STOP_REASON_TO_WIRE: Readonly<Record<StopReason, WireStopReason>> = {
  requested: "stopped",
  shutdown: "stopped",
  idle_timeout: "idle_timeout",
  max_lifetime: "max_lifetime",
  completed: "completed",
  failed: "failed",
  oom: "oom",
  lost: "failed",
  start_failed: "start_failed",
};

/** The contract's stop reasons a caller may ask for, as the kernel names them. */
const REQUESTABLE: Partial<Record<WireStopReason, RequestedStopReason>> = {
  stopped: "requested",
  idle_timeout: "idle_timeout",
  max_lifetime: "max_lifetime",
};

/** The contract's name for a kernel backend (`kubernetes` is `k8s` there), or undefined. */
export function backendKindOf(backendName: string): BackendKind | undefined {
  if (backendName === "kubernetes") return "k8s";
  return backendName === "process" || backendName === "docker" ? backendName : undefined;
}

/** How a wire spec becomes a kernel spec on this server. */
export interface SpecContext {
  /** This kernel's backend, as the contract names it. */
  backend: BackendKind;
  /** The env variable whose value is the workload's owner (for quotas), or false. */
  ownerEnv: string | false;
  traceId?: string;
}

/** A validated `POST /workloads` body as the kernel's spec. */
export function specFromWire(spec: WireWorkloadSpec, context: SpecContext): WorkloadSpec {
  if (spec.backend !== undefined && spec.backend !== context.backend) {
    throw new InvalidSpecError([
      {
        path: "backend",
        message: `this kernel runs workloads on "${context.backend}", not "${spec.backend}" (a workload is never run elsewhere than asked)`,
      },
    ]);
  }
  const owner = context.ownerEnv === false ? undefined : spec.env[context.ownerEnv];
  // The contract's 0 is "no limit"; the kernel's resources are limits when present.
  const resources: WorkloadSpec["resources"] = {};
  if (spec.resources?.cpu) resources.cpu = spec.resources.cpu;
  if (spec.resources?.memoryMb) resources.memoryMb = spec.resources.memoryMb;
  if (spec.resources?.gpu) resources.gpu = spec.resources.gpu;
  return {
    workloadId: spec.workloadId,
    profile: spec.profile,
    env: spec.env,
    ...(owner ? { owner } : {}),
    ...(Object.keys(resources).length > 0 ? { resources } : {}),
    ...(spec.idleTimeoutSec !== undefined ? { idleTimeoutMs: spec.idleTimeoutSec * 1000 } : {}),
    ...(spec.maxLifetimeSec !== undefined ? { maxLifetimeMs: spec.maxLifetimeSec * 1000 } : {}),
    traceId: context.traceId,
  };
}

/** The kernel's stop reason for a requested one, or an error naming `reason`. */
export function stopReasonFromWire(reason: WireStopReason | undefined): RequestedStopReason {
  if (reason === undefined) return "requested";
  const mapped = REQUESTABLE[reason];
  if (mapped === undefined) {
    throw new InvalidSpecError(
      [
        {
          path: "reason",
          message: `"${reason}" says how a workload ended by itself; a stop can ask for stopped, idle_timeout or max_lifetime`,
        },
      ],
      { subject: "stop request" },
    );
  }
  return mapped;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The contract's ports are integers: a kernel port `"8080"` or `"host:8080"` is 8080; others are left out. */
function portsToWire(ports: Record<string, string> | undefined): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(ports ?? {})) {
    const match = /(?:^|:)(\d{1,5})$/.exec(value);
    if (match) out[name] = Number(match[1]);
  }
  return out;
}

/** The exit facts of a stopped run: `lost` becomes `failed`, with no exit code (none was seen). */
function ending(from: { stopReason?: StopReason; exitCode?: number }): {
  stopReason?: WireStopReason;
  exitCode?: number;
} {
  return {
    ...(from.exitCode !== undefined && from.stopReason !== "lost" ? { exitCode: from.exitCode } : {}),
    ...(from.stopReason !== undefined ? { stopReason: STOP_REASON_TO_WIRE[from.stopReason] } : {}),
  };
}

/** A kernel status as the contract's WorkloadStatus. */
export function statusToWire(
  status: WorkloadStatus,
  context: { backend: BackendKind; node?: string },
): WireWorkloadStatus {
  return {
    workloadId: status.workloadId,
    profile: status.profile,
    state: status.state,
    backend: context.backend,
    ...(status.state === "running" ? { ports: portsToWire(status.ports) } : {}),
    ...(status.startedAt !== undefined ? { startedAt: iso(status.startedAt) } : {}),
    ...(status.stoppedAt !== undefined ? { stoppedAt: iso(status.stoppedAt) } : {}),
    ...ending(status),
    ...(context.node !== undefined && status.state !== "destroyed" ? { node: context.node } : {}),
  };
}

/** A kernel transition as the contract's RuntimeEvent (the body of a callback). */
export function eventToWire(event: TransitionEvent): WireRuntimeEvent {
  return {
    workloadId: event.workloadId,
    state: event.state,
    at: iso(event.at),
    ...(event.state === "running" ? { ports: portsToWire(event.ports) } : {}),
    ...ending(event),
  };
}
