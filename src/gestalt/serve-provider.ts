/**
 * The server adapter: any TypeScript {@link RuntimeProvider} served as
 * `gestalt.provider.v1.PluginRuntimeProvider` beside `gestalt.provider.v1.ProviderLifecycle`,
 * so a host in another language (gestaltd itself) can use it; and a {@link RuntimeLogHost}
 * served as `PluginRuntimeLogHost`.
 * @module
 */
import {
  type handleUnaryCall,
  Server,
  type ServerCredentials,
  ServerCredentials as ServerCreds,
  type ServerUnaryCall,
  type ServiceError,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import * as pb from "../gen/gestalt/provider/v1/provider.js";
import * as lifecyclePb from "../gen/gestalt/provider/v1/runtime.js";
import type { Empty } from "../gen/google/protobuf/empty.js";
import { grpcTarget, parseListenAddress } from "../grpc/address.js";
import { type GrpcListener, listenGrpc } from "../grpc/listen.js";
import { lifecycleImplementation, type ProviderLifecycleHooks } from "./lifecycle.js";
import type { ProviderCallOptions, RuntimeLogHost, RuntimeProvider } from "./provider.js";
import { unimplemented } from "./provider.js";
import {
  bindFromWire,
  bindingToWire,
  hostedPluginToWire,
  logEntryFromWire,
  preparedWorkspaceToWire,
  prepareWorkspaceFromWire,
  sessionToWire,
  startPluginFromWire,
  startSessionFromWire,
  statusFromError,
  supportToWire,
} from "./wire.js";

/** Options of {@link serveRuntimeProvider} and {@link serveRuntimeLogHost}. */
export interface ServeOptions {
  /** Default: insecure (a unix socket or loopback address is expected). */
  credentials?: ServerCredentials;
  /** How long `close()` lets calls in flight finish before cutting them. Default 3,000 ms. */
  shutdownGraceMs?: number;
}

/** Options of {@link serveRuntimeProvider}. */
export interface ServeRuntimeProviderOptions extends ServeOptions {
  /**
   * What the provider says and does in `ProviderLifecycle` (identity, ConfigureProvider,
   * HealthCheck, StartProvider). Default: a runtime provider with no name that accepts any
   * config; the kind (RUNTIME) and the protocol range (3 to 3) are always this library's.
   */
  lifecycle?: ProviderLifecycleHooks;
}

/** A running gRPC server. */
export interface ServedEndpoint {
  /** The address it listens on, with the port filled in (for example `127.0.0.1:43117` or `unix:///tmp/p.sock`). */
  readonly address: string;
  /** The bound TCP port (0 for a unix socket). */
  readonly port: number;
  readonly server: Server;
  /** Stops the server: calls in flight get `shutdownGraceMs`, then are cut. */
  close(): Promise<void>;
}

function handler<Req, Res>(
  fn: (request: Req, options: ProviderCallOptions) => Promise<Res>,
): handleUnaryCall<Req, Res> {
  return (call: ServerUnaryCall<Req, Res>, callback) => {
    const controller = new AbortController();
    call.once("cancelled", () => controller.abort(new Error("the caller cancelled the call")));
    fn(call.request, { signal: controller.signal }).then(
      (response) => callback(null, response),
      (error: unknown) => callback(statusFromError(error) as ServiceError),
    );
  };
}

/** Starts `server` on `address` with the given services and returns the endpoint. */
async function listen(
  address: string,
  services: [
    definition:
      | pb.PluginRuntimeProviderService
      | pb.PluginRuntimeLogHostService
      | lifecyclePb.ProviderLifecycleService,
    UntypedServiceImplementation,
  ][],
  options: ServeOptions,
): Promise<ServedEndpoint> {
  const server = new Server();
  for (const [definition, implementation] of services) server.addService(definition, implementation);
  const parsed = parseListenAddress(address);
  let listener: GrpcListener;
  try {
    listener = await listenGrpc(server, parsed, options.credentials ?? ServerCreds.createInsecure());
  } catch (error) {
    server.forceShutdown();
    throw error;
  }
  const shown =
    parsed.kind === "unix" ? `unix://${parsed.path}` : grpcTarget({ ...parsed, port: listener.port });
  let closing: Promise<void> | undefined;
  return {
    address: shown,
    port: listener.port,
    server,
    close() {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), options.shutdownGraceMs ?? 3_000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          listener.release();
          resolve();
        });
      });
      return closing;
    },
  };
}

/**
 * Serves a TypeScript {@link RuntimeProvider} over gRPC at `address` (`unix:///path`,
 * `127.0.0.1:0`, `tcp://127.0.0.1:0`), with `ProviderLifecycle` on the same server. A method
 * the provider lacks (`listSessions`, `bindHostService`, `prepareWorkspace`) answers
 * UNIMPLEMENTED; library errors map to gRPC statuses (`WORKLOAD_NOT_FOUND` to NOT_FOUND, ...).
 *
 * @example
 * ```ts
 * const endpoint = await serveRuntimeProvider(localRuntimeProvider({ kernel }), "unix:///run/provider.sock");
 * // point gestaltd (or grpcRuntimeProvider) at endpoint.address
 * await endpoint.close();
 * ```
 */
export function serveRuntimeProvider(
  provider: RuntimeProvider,
  address: string,
  options: ServeRuntimeProviderOptions = {},
): Promise<ServedEndpoint> {
  const implementation: pb.PluginRuntimeProviderServer = {
    getSupport: handler(async (_req: Empty, o) => supportToWire(await provider.getSupport(o))),
    startSession: handler(async (req: pb.StartPluginRuntimeSessionRequest, o) =>
      sessionToWire(await provider.startSession(startSessionFromWire(req), o)),
    ),
    getSession: handler(async (req: pb.GetPluginRuntimeSessionRequest, o) =>
      sessionToWire(await provider.getSession({ sessionId: req.sessionId }, o)),
    ),
    listSessions: handler(async (_req: pb.ListPluginRuntimeSessionsRequest, o) => {
      if (!provider.listSessions) throw unimplemented("ListSessions");
      return { sessions: (await provider.listSessions(o)).map(sessionToWire) };
    }),
    stopSession: handler(async (req: pb.StopPluginRuntimeSessionRequest, o) => {
      await provider.stopSession({ sessionId: req.sessionId }, o);
      return {};
    }),
    prepareWorkspace: handler(async (req: pb.PreparePluginRuntimeWorkspaceRequest, o) => {
      if (!provider.prepareWorkspace) throw unimplemented("PrepareWorkspace");
      return preparedWorkspaceToWire(await provider.prepareWorkspace(prepareWorkspaceFromWire(req), o));
    }),
    removeWorkspace: handler(async (req: pb.RemovePluginRuntimeWorkspaceRequest, o) => {
      if (!provider.removeWorkspace) throw unimplemented("RemoveWorkspace");
      await provider.removeWorkspace({ sessionId: req.sessionId, agentSessionId: req.agentSessionId }, o);
      return {};
    }),
    bindHostService: handler(async (req: pb.BindPluginRuntimeHostServiceRequest, o) => {
      if (!provider.bindHostService) throw unimplemented("BindHostService");
      return bindingToWire(await provider.bindHostService(bindFromWire(req), o));
    }),
    startPlugin: handler(async (req: pb.StartHostedPluginRequest, o) =>
      hostedPluginToWire(await provider.startPlugin(startPluginFromWire(req), o)),
    ),
  };
  const lifecycle = lifecycleImplementation(options.lifecycle);
  const lifecycleServer: lifecyclePb.ProviderLifecycleServer = {
    getProviderIdentity: handler((_req: Empty, o) => lifecycle.getProviderIdentity(o)),
    configureProvider: handler((req: lifecyclePb.ConfigureProviderRequest, o) =>
      lifecycle.configureProvider(req, o),
    ),
    healthCheck: handler((_req: Empty, o) => lifecycle.healthCheck(o)),
    startProvider: handler((_req: Empty, o) => lifecycle.startProvider(o)),
  };
  return listen(
    address,
    [
      [lifecyclePb.ProviderLifecycleService, lifecycleServer],
      [pb.PluginRuntimeProviderService, implementation],
    ],
    options,
  );
}

/**
 * Serves a {@link RuntimeLogHost} as `gestalt.provider.v1.PluginRuntimeLogHost`, so provider
 * processes can append their plugins' output to this host.
 */
export function serveRuntimeLogHost(
  logHost: RuntimeLogHost,
  address: string,
  options: ServeOptions = {},
): Promise<ServedEndpoint> {
  const implementation: pb.PluginRuntimeLogHostServer = {
    appendLogs: handler(async (req: pb.AppendPluginRuntimeLogsRequest) =>
      logHost.appendLogs({ sessionId: req.sessionId, logs: req.logs.map(logEntryFromWire) }),
    ),
  };
  return listen(address, [[pb.PluginRuntimeLogHostService, implementation]], options);
}
