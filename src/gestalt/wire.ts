/**
 * Conversions between the runtime-provider port's TypeScript types and the generated
 * `gestalt.provider.v1` messages, and between library errors and gRPC statuses (through the
 * boundary every gRPC surface of the library shares, `src/grpc/status.ts`).
 * @module
 */
import type { ServiceError } from "@grpc/grpc-js";
import * as pb from "../gen/gestalt/provider/v1/provider.js";
import { decodeStatus, GrpcStatus, toServiceStatus, trailersOf } from "../grpc/status.js";
import type {
  AgentWorkspace,
  BindHostServiceRequest,
  EgressMode,
  HostedPluginInfo,
  HostServiceBinding,
  PreparedWorkspace,
  PrepareWorkspaceRequest,
  RuntimeLogEntry,
  RuntimeLogStream,
  RuntimeSession,
  RuntimeSupport,
  StartPluginRequest,
  StartSessionRequest,
} from "./provider.js";
import { RuntimeProviderError, splitLogTail } from "./provider.js";

const ACCESS_TO_WIRE = {
  unspecified: pb.PluginRuntimeHostServiceAccess.PLUGIN_RUNTIME_HOST_SERVICE_ACCESS_UNSPECIFIED,
  none: pb.PluginRuntimeHostServiceAccess.PLUGIN_RUNTIME_HOST_SERVICE_ACCESS_NONE,
  direct: pb.PluginRuntimeHostServiceAccess.PLUGIN_RUNTIME_HOST_SERVICE_ACCESS_DIRECT,
} as const;

const EGRESS_TO_WIRE: Record<EgressMode, pb.PluginRuntimeEgressMode> = {
  unspecified: pb.PluginRuntimeEgressMode.PLUGIN_RUNTIME_EGRESS_MODE_UNSPECIFIED,
  none: pb.PluginRuntimeEgressMode.PLUGIN_RUNTIME_EGRESS_MODE_NONE,
  cidr: pb.PluginRuntimeEgressMode.PLUGIN_RUNTIME_EGRESS_MODE_CIDR,
  hostname: pb.PluginRuntimeEgressMode.PLUGIN_RUNTIME_EGRESS_MODE_HOSTNAME,
};

const STREAM_TO_WIRE: Record<RuntimeLogStream, pb.PluginRuntimeLogStream> = {
  unspecified: pb.PluginRuntimeLogStream.PLUGIN_RUNTIME_LOG_STREAM_UNSPECIFIED,
  stdout: pb.PluginRuntimeLogStream.PLUGIN_RUNTIME_LOG_STREAM_STDOUT,
  stderr: pb.PluginRuntimeLogStream.PLUGIN_RUNTIME_LOG_STREAM_STDERR,
  runtime: pb.PluginRuntimeLogStream.PLUGIN_RUNTIME_LOG_STREAM_RUNTIME,
};

function invert<K extends string, V extends number>(map: Record<K, V>): Map<number, K> {
  return new Map(Object.entries(map).map(([k, v]) => [v as number, k as K]));
}
const ACCESS_FROM_WIRE = invert(ACCESS_TO_WIRE);
const EGRESS_FROM_WIRE = invert(EGRESS_TO_WIRE);
const STREAM_FROM_WIRE = invert(STREAM_TO_WIRE);

/** `RuntimeSupport` to the wire. */
export function supportToWire(support: RuntimeSupport): pb.PluginRuntimeSupport {
  return {
    canHostPlugins: support.canHostPlugins,
    hostServiceAccess: ACCESS_TO_WIRE[support.hostServiceAccess] ?? ACCESS_TO_WIRE.unspecified,
    egressMode: EGRESS_TO_WIRE[support.egressMode] ?? EGRESS_TO_WIRE.unspecified,
    supportsPrepareWorkspace: support.supportsPrepareWorkspace ?? false,
  };
}

/** `RuntimeSupport` from the wire (unknown enum values read as `unspecified`). */
export function supportFromWire(support: pb.PluginRuntimeSupport): RuntimeSupport {
  return {
    canHostPlugins: support.canHostPlugins,
    hostServiceAccess: ACCESS_FROM_WIRE.get(support.hostServiceAccess) ?? "unspecified",
    egressMode: EGRESS_FROM_WIRE.get(support.egressMode) ?? "unspecified",
    supportsPrepareWorkspace: support.supportsPrepareWorkspace,
  };
}

function workspaceToWire(workspace: AgentWorkspace): pb.PreparePluginRuntimeWorkspaceRequest["workspace"] {
  return {
    checkouts: workspace.checkouts.map((c) => ({ url: c.url, ref: c.ref ?? "", path: c.path })),
    cwd: workspace.cwd,
  };
}

/** `PrepareWorkspace`'s request to the wire. */
export function prepareWorkspaceToWire(
  request: PrepareWorkspaceRequest,
): pb.PreparePluginRuntimeWorkspaceRequest {
  return {
    sessionId: request.sessionId,
    agentSessionId: request.agentSessionId,
    workspace: workspaceToWire(request.workspace),
  };
}

/** `PrepareWorkspace`'s request from the wire (an absent workspace reads as no checkouts and no cwd). */
export function prepareWorkspaceFromWire(
  request: pb.PreparePluginRuntimeWorkspaceRequest,
): PrepareWorkspaceRequest {
  const workspace = request.workspace ?? { checkouts: [], cwd: "" };
  return {
    sessionId: request.sessionId,
    agentSessionId: request.agentSessionId,
    workspace: {
      checkouts: workspace.checkouts.map((c) => ({
        url: c.url,
        ...(c.ref ? { ref: c.ref } : {}),
        path: c.path,
      })),
      cwd: workspace.cwd,
    },
  };
}

/** A prepared workspace to the wire. */
export function preparedWorkspaceToWire(
  prepared: PreparedWorkspace,
): pb.PreparePluginRuntimeWorkspaceResponse {
  return { workspace: { root: prepared.root, cwd: prepared.cwd } };
}

/** A prepared workspace from the wire (empty paths when the provider sent none). */
export function preparedWorkspaceFromWire(
  response: pb.PreparePluginRuntimeWorkspaceResponse,
): PreparedWorkspace {
  return { root: response.workspace?.root ?? "", cwd: response.workspace?.cwd ?? "" };
}

/** A session to the wire. */
export function sessionToWire(session: RuntimeSession): pb.PluginRuntimeSession {
  const lifecycle = session.lifecycle;
  return {
    id: session.id,
    state: session.state,
    metadata: { ...session.metadata },
    lifecycle: lifecycle
      ? {
          startedAt: lifecycle.startedAt,
          recommendedDrainAt: lifecycle.recommendedDrainAt,
          expiresAt: lifecycle.expiresAt,
        }
      : undefined,
    stateReason: session.stateReason ?? "",
    stateMessage: session.stateMessage ?? "",
  };
}

/** A session from the wire. */
export function sessionFromWire(session: pb.PluginRuntimeSession): RuntimeSession {
  const out: RuntimeSession = { id: session.id, state: session.state, metadata: { ...session.metadata } };
  if (session.lifecycle) {
    const l = session.lifecycle;
    out.lifecycle = {
      ...(l.startedAt ? { startedAt: l.startedAt } : {}),
      ...(l.recommendedDrainAt ? { recommendedDrainAt: l.recommendedDrainAt } : {}),
      ...(l.expiresAt ? { expiresAt: l.expiresAt } : {}),
    };
  }
  if (session.stateReason) out.stateReason = session.stateReason;
  if (session.stateMessage) out.stateMessage = session.stateMessage;
  return out;
}

/** `StartSession`'s request to the wire. */
export function startSessionToWire(request: StartSessionRequest): pb.StartPluginRuntimeSessionRequest {
  return {
    pluginName: request.pluginName,
    template: request.template ?? "",
    image: request.image ?? "",
    metadata: { ...request.metadata },
    imagePullAuth: request.imagePullAuth
      ? { dockerConfigJson: request.imagePullAuth.dockerConfigJson }
      : undefined,
  };
}

/** `StartSession`'s request from the wire. */
export function startSessionFromWire(request: pb.StartPluginRuntimeSessionRequest): StartSessionRequest {
  return {
    pluginName: request.pluginName,
    ...(request.template ? { template: request.template } : {}),
    ...(request.image ? { image: request.image } : {}),
    metadata: { ...request.metadata },
    ...(request.imagePullAuth?.dockerConfigJson
      ? { imagePullAuth: { dockerConfigJson: request.imagePullAuth.dockerConfigJson } }
      : {}),
  };
}

/** `BindHostService`'s request to the wire. */
export function bindToWire(request: BindHostServiceRequest): pb.BindPluginRuntimeHostServiceRequest {
  return {
    sessionId: request.sessionId,
    envVar: request.envVar,
    relay: request.relay ? { dialTarget: request.relay.dialTarget } : undefined,
  };
}

/** `BindHostService`'s request from the wire. */
export function bindFromWire(request: pb.BindPluginRuntimeHostServiceRequest): BindHostServiceRequest {
  return {
    sessionId: request.sessionId,
    envVar: request.envVar,
    ...(request.relay ? { relay: { dialTarget: request.relay.dialTarget } } : {}),
  };
}

/** A binding to the wire. */
export function bindingToWire(binding: HostServiceBinding): pb.PluginRuntimeHostServiceBinding {
  return {
    id: binding.id,
    sessionId: binding.sessionId,
    envVar: binding.envVar,
    relay: binding.relay ? { dialTarget: binding.relay.dialTarget } : undefined,
  };
}

/** A binding from the wire. */
export function bindingFromWire(binding: pb.PluginRuntimeHostServiceBinding): HostServiceBinding {
  return {
    id: binding.id,
    sessionId: binding.sessionId,
    envVar: binding.envVar,
    ...(binding.relay ? { relay: { dialTarget: binding.relay.dialTarget } } : {}),
  };
}

/** `StartPlugin`'s request to the wire. */
export function startPluginToWire(request: StartPluginRequest): pb.StartHostedPluginRequest {
  return {
    sessionId: request.sessionId,
    pluginName: request.pluginName,
    command: request.command,
    args: [...(request.args ?? [])],
    env: { ...request.env },
    allowedHosts: [...(request.allowedHosts ?? [])],
    defaultAction: request.defaultAction ?? "",
    hostBinary: request.hostBinary ?? "",
  };
}

/** `StartPlugin`'s request from the wire. */
export function startPluginFromWire(request: pb.StartHostedPluginRequest): StartPluginRequest {
  const action = request.defaultAction;
  return {
    sessionId: request.sessionId,
    pluginName: request.pluginName,
    command: request.command,
    args: [...request.args],
    env: { ...request.env },
    allowedHosts: [...request.allowedHosts],
    defaultAction: action === "allow" || action === "deny" ? action : "",
    ...(request.hostBinary ? { hostBinary: request.hostBinary } : {}),
  };
}

/** A started plugin to the wire. */
export function hostedPluginToWire(plugin: HostedPluginInfo): pb.HostedPlugin {
  return {
    id: plugin.id,
    sessionId: plugin.sessionId,
    pluginName: plugin.pluginName,
    dialTarget: plugin.dialTarget,
  };
}

/** A started plugin from the wire. */
export function hostedPluginFromWire(plugin: pb.HostedPlugin): HostedPluginInfo {
  return {
    id: plugin.id,
    sessionId: plugin.sessionId,
    pluginName: plugin.pluginName,
    dialTarget: plugin.dialTarget,
  };
}

/** A log entry to the wire. */
export function logEntryToWire(entry: RuntimeLogEntry): pb.PluginRuntimeLogEntry {
  return {
    stream: STREAM_TO_WIRE[entry.stream] ?? STREAM_TO_WIRE.unspecified,
    message: entry.message,
    observedAt: entry.observedAt,
    sourceSeq: entry.sourceSeq,
  };
}

/** A log entry from the wire. */
export function logEntryFromWire(entry: pb.PluginRuntimeLogEntry): RuntimeLogEntry {
  return {
    stream: STREAM_FROM_WIRE.get(entry.stream) ?? "unspecified",
    message: entry.message,
    ...(entry.observedAt ? { observedAt: entry.observedAt } : {}),
    sourceSeq: entry.sourceSeq,
  };
}

/**
 * A gRPC error of a provider call, as a {@link RuntimeProviderError}: the kernel code the
 * provider sent in the trailers when it is ours (see `src/grpc/status.ts`), else the one its
 * gRPC status stands for; the message is the provider's.
 */
export function errorFromStatus(method: string, error: ServiceError): RuntimeProviderError {
  const decoded = decodeStatus({
    code: error.code,
    details: error.details || error.message,
    metadata: trailersOf(error.metadata),
  });
  // The wire has no field for a log tail: a provider's start error quotes it after its message.
  const { reason, logTail } = splitLogTail(decoded.message);
  return new RuntimeProviderError(decoded.code, method, reason, {
    cause: error,
    logTail,
    grpcCode: error.code,
    unimplemented: error.code === GrpcStatus.UNIMPLEMENTED,
    retryable: decoded.retryable,
    workloadId: decoded.workloadId,
  });
}

/** What a provider's thrown error becomes on the wire: the status every gRPC surface of the library sends for it. */
export function statusFromError(error: unknown): Partial<ServiceError> {
  if (error instanceof RuntimeProviderError && error.unimplemented) {
    const status = toServiceStatus(error);
    return { ...status, code: GrpcStatus.UNIMPLEMENTED };
  }
  return toServiceStatus(error);
}
