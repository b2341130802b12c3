/**
 * The client adapter: any process that speaks `gestalt.provider.v1.PluginRuntimeProvider`
 * (and `ProviderLifecycle`) over gRPC, driven through the {@link RuntimeProvider} port (and
 * the log host's client).
 * @module
 */
import {
  type CallOptions,
  Channel,
  type ChannelCredentials,
  type ChannelOptions,
  type Client,
  type ClientUnaryCall,
  credentials as grpcCredentials,
  InterceptingCall,
  type Interceptor,
  Metadata,
  type ServiceError,
} from "@grpc/grpc-js";
import * as pb from "../gen/gestalt/provider/v1/provider.js";
import { ProviderLifecycleClient } from "../gen/gestalt/provider/v1/runtime.js";
import type { Empty } from "../gen/google/protobuf/empty.js";
import { channelSettings, parseDialTarget } from "./dial.js";
import { lifecycleClient, type ProviderLifecycle, type UnaryCaller } from "./lifecycle.js";
import type { ProviderCallOptions, RuntimeLogHost, RuntimeProvider, RuntimeSupport } from "./provider.js";
import { RuntimeProviderError } from "./provider.js";
import {
  bindingFromWire,
  bindToWire,
  errorFromStatus,
  hostedPluginFromWire,
  logEntryToWire,
  preparedWorkspaceFromWire,
  prepareWorkspaceToWire,
  sessionFromWire,
  startPluginToWire,
  startSessionToWire,
  supportFromWire,
} from "./wire.js";

/** Options of {@link grpcRuntimeProvider} and {@link grpcRuntimeLogHost}. */
export interface GrpcClientOptions {
  /** Default: insecure for unix/tcp/plain targets, TLS (1.2+) for `tls://`. */
  credentials?: ChannelCredentials;
  /** Per-call deadline. Default 60,000 ms (StartPlugin may wait for a plugin to listen, or an image to pull). */
  callTimeoutMs?: number;
  channelOptions?: ChannelOptions;
  /** A channel to use instead of one made from the address (it is closed with the provider). */
  channel?: Channel;
}

/** A runtime provider reached over gRPC, with its lifecycle on the same channel. */
export interface GrpcRuntimeProvider extends RuntimeProvider {
  /** `ProviderLifecycle` on the same channel (see `handshakeRuntimeProvider`). */
  readonly lifecycle: ProviderLifecycle;
  /** Closes the channel. */
  close(): Promise<void>;
}

/**
 * The gRPC target and credentials of a provider address: `unix:///path`, `tcp://host:port`,
 * `tls://host:port`, an absolute socket path, or any target gRPC understands (`dns:host:port`,
 * `127.0.0.1:5000`).
 */
export function resolveGrpcAddress(
  address: string,
  options: GrpcClientOptions = {},
): { target: string; credentials: ChannelCredentials; channelOptions: ChannelOptions } {
  // A bare absolute path is a unix socket, as gestaltd writes them (GESTALT_RUNTIME_LOG_SOCKET).
  if (/^(unix|tcp|tls):/i.test(address) || address.startsWith("/")) {
    const target = parseDialTarget(address);
    const settings = channelSettings(
      target,
      options.channelOptions ? { channelOptions: options.channelOptions } : {},
    );
    return {
      target: target.grpcTarget,
      credentials: options.credentials ?? settings.credentials,
      channelOptions: settings.options,
    };
  }
  return {
    target: address,
    credentials: options.credentials ?? grpcCredentials.createInsecure(),
    channelOptions: options.channelOptions ?? {},
  };
}

type Callback<T> = (error: ServiceError | null, response: T) => void;
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: Callback<Res>,
) => ClientUnaryCall;

function unary<Req, Res>(
  client: Client,
  method: string,
  fn: UnaryMethod<Req, Res>,
  request: Req,
  timeoutMs: number,
  options: ProviderCallOptions = {},
): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    if (options.signal?.aborted) {
      reject(
        new RuntimeProviderError("START_ABORTED", method, `${method} was aborted`, {
          cause: options.signal.reason,
        }),
      );
      return;
    }
    const onAbort = () => call.cancel();
    const call = fn.call(
      client,
      request,
      new Metadata(),
      { deadline: Date.now() + timeoutMs },
      (error, response) => {
        options.signal?.removeEventListener("abort", onAbort);
        if (error) reject(errorFromStatus(method, error));
        else resolve(response);
      },
    );
    options.signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** A {@link UnaryCaller} on `client`, each call bounded by `timeoutMs`. */
export function caller(client: Client, timeoutMs: number): UnaryCaller {
  const methods = client as unknown as Record<string, UnaryMethod<unknown, unknown>>;
  return <Req, Res>(name: string, method: string, request: Req, o?: ProviderCallOptions) =>
    unary<Req, Res>(client, method, methods[name] as UnaryMethod<Req, Res>, request, timeoutMs, o);
}

/**
 * A {@link RuntimeProvider} that drives a provider process over gRPC; its `lifecycle`
 * drives `ProviderLifecycle` on the same channel.
 *
 * @example
 * ```ts
 * const provider = grpcRuntimeProvider("unix:///run/gestalt/provider.sock");
 * console.log(await provider.getSupport());
 * await provider.close();
 * ```
 */
export function grpcRuntimeProvider(address: string, options: GrpcClientOptions = {}): GrpcRuntimeProvider {
  const resolved = resolveGrpcAddress(address, options);
  const channel =
    options.channel ?? new Channel(resolved.target, resolved.credentials, resolved.channelOptions);
  const client = new pb.PluginRuntimeProviderClient(resolved.target, resolved.credentials, {
    channelOverride: channel,
  });
  const timeout = options.callTimeoutMs ?? 60_000;
  const call = caller(client, timeout);
  const lifecycle = lifecycleClient(
    caller(
      new ProviderLifecycleClient(resolved.target, resolved.credentials, { channelOverride: channel }),
      timeout,
    ),
  );

  return {
    lifecycle,
    async getSupport(o): Promise<RuntimeSupport> {
      return supportFromWire(await call<Empty, pb.PluginRuntimeSupport>("getSupport", "GetSupport", {}, o));
    },
    async startSession(request, o) {
      const wire = startSessionToWire(request);
      return sessionFromWire(await call("startSession", "StartSession", wire, o));
    },
    async getSession(request, o) {
      return sessionFromWire(await call("getSession", "GetSession", { sessionId: request.sessionId }, o));
    },
    async listSessions(o) {
      const response = await call<pb.ListPluginRuntimeSessionsRequest, pb.ListPluginRuntimeSessionsResponse>(
        "listSessions",
        "ListSessions",
        {},
        o,
      );
      return response.sessions.map(sessionFromWire);
    },
    async stopSession(request, o) {
      await call("stopSession", "StopSession", { sessionId: request.sessionId }, o);
    },
    async bindHostService(request, o) {
      return bindingFromWire(await call("bindHostService", "BindHostService", bindToWire(request), o));
    },
    async prepareWorkspace(request, o) {
      return preparedWorkspaceFromWire(
        await call("prepareWorkspace", "PrepareWorkspace", prepareWorkspaceToWire(request), o),
      );
    },
    async removeWorkspace(request, o) {
      await call("removeWorkspace", "RemoveWorkspace", { ...request }, o);
    },
    async startPlugin(request, o) {
      return hostedPluginFromWire(await call("startPlugin", "StartPlugin", startPluginToWire(request), o));
    },
    async close() {
      channel.close();
    },
  };
}

/** The header gestaltd's host-service relay authenticates a call by (`GESTALT_RUNTIME_LOG_SOCKET_TOKEN`'s value). */
export const RELAY_TOKEN_HEADER = "x-gestalt-host-service-relay-token";

/** Options of {@link grpcRuntimeLogHost}. */
export interface GrpcRuntimeLogHostOptions extends GrpcClientOptions {
  /**
   * The relay token gestaltd gives beside a relayed log host (`GESTALT_RUNTIME_LOG_SOCKET_TOKEN`,
   * with a `tls://` socket), sent on every call as {@link RELAY_TOKEN_HEADER}. Empty or
   * absent: no header, as for a log host on a local socket.
   */
  relayToken?: string;
}

function withHeader(name: string, value: string): Interceptor {
  return (options, next) =>
    new InterceptingCall(next(options), {
      start(metadata, listener, start) {
        metadata.set(name, value);
        start(metadata, listener);
      },
    });
}

/**
 * A {@link RuntimeLogHost} that appends to a host's `PluginRuntimeLogHost` over gRPC: what a
 * provider process uses to send its plugins' output to the host.
 */
export function grpcRuntimeLogHost(
  address: string,
  options: GrpcRuntimeLogHostOptions = {},
): RuntimeLogHost & { close(): Promise<void> } {
  const resolved = resolveGrpcAddress(address, options);
  const token = options.relayToken?.trim();
  const client = new pb.PluginRuntimeLogHostClient(resolved.target, resolved.credentials, {
    ...resolved.channelOptions,
    ...(token ? { interceptors: [withHeader(RELAY_TOKEN_HEADER, token)] } : {}),
  });
  const timeout = options.callTimeoutMs ?? 60_000;
  const append = (client as unknown as Record<string, UnaryMethod<unknown, unknown>>)
    .appendLogs as UnaryMethod<pb.AppendPluginRuntimeLogsRequest, pb.AppendPluginRuntimeLogsResponse>;
  return {
    async appendLogs(request) {
      const response = await unary(
        client,
        "AppendLogs",
        append,
        { sessionId: request.sessionId, logs: request.logs.map(logEntryToWire) },
        timeout,
      );
      return { lastSeq: response.lastSeq };
    },
    async close() {
      client.close();
    },
  };
}
