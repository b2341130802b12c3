/**
 * The provider lifecycle (`gestalt.provider.v1.ProviderLifecycle`) that every executable
 * Gestalt provider serves beside its own service, and the handshake a host performs with
 * it before any other call: GetProviderIdentity (the kind must be RUNTIME for a runtime
 * provider, and the protocol range must include 3), ConfigureProvider with protocol 3 and
 * the provider's config (3 must come back), then GetProviderIdentity again, since a
 * provider may describe itself only once configured. Each call is bounded (30 s).
 * @module
 */
import type * as pb from "../gen/gestalt/provider/v1/runtime.js";
import type { ProviderCallOptions } from "./provider.js";
import { RuntimeProviderError } from "./provider.js";

/** The provider protocol version this library speaks, as gestaltd and its SDKs do. */
export const GESTALT_PROTOCOL_VERSION = 3;

/** The kinds of Gestalt provider, as `ProviderIdentity.kind` names them (lower case, without the prefix). */
export type ProviderKind =
  | "unspecified"
  | "integration"
  | "authentication"
  | "indexeddb"
  | "secrets"
  | "telemetry"
  | "cache"
  | "s3"
  | "workflow"
  | "authorization"
  | "runtime"
  | "agent"
  | "external_credential";

/** Who a provider says it is (`GetProviderIdentity`). */
export interface ProviderIdentity {
  kind: ProviderKind;
  name: string;
  displayName: string;
  description: string;
  version: string;
  warnings: string[];
  /** The lowest protocol version it speaks; 0: no bound. */
  minProtocolVersion: number;
  /** The highest protocol version it speaks; 0: no bound. */
  maxProtocolVersion: number;
}

/** `ConfigureProvider`'s request. */
export interface ConfigureProviderRequest {
  /** The name the host gave the provider (`runtime.providers.<name>`). */
  name: string;
  /** The provider's settings (`runtime.providers.<name>.config`). */
  config: Record<string, unknown>;
  protocolVersion: number;
}

/** A provider's lifecycle, as a host drives it (the gRPC client, or any stand-in). */
export interface ProviderLifecycle {
  getIdentity(options?: ProviderCallOptions): Promise<ProviderIdentity>;
  /** Resolves with the protocol version the provider serves. */
  configure(
    request: ConfigureProviderRequest,
    options?: ProviderCallOptions,
  ): Promise<{ protocolVersion: number }>;
  healthCheck(options?: ProviderCallOptions): Promise<{ ready: boolean; message?: string }>;
  /** Resolves with the protocol version the provider serves. */
  start(options?: ProviderCallOptions): Promise<{ protocolVersion: number }>;
}

/** What a served provider says and does in its lifecycle (see `serveRuntimeProvider`). */
export interface ProviderLifecycleHooks {
  /** How it describes itself; a function is asked at each call (it may change once configured). */
  identity?:
    | Partial<Omit<ProviderIdentity, "kind" | "minProtocolVersion" | "maxProtocolVersion">>
    | (() => Partial<Omit<ProviderIdentity, "kind" | "minProtocolVersion" | "maxProtocolVersion">>);
  /** Applies the host's config. A throw fails ConfigureProvider with the error's code and message. */
  configure?(
    request: { name: string; config: Record<string, unknown> },
    options: ProviderCallOptions,
  ): Promise<void> | void;
  /** Default: ready. */
  healthCheck?(options: ProviderCallOptions): Promise<{ ready: boolean; message?: string }>;
  /** The optional start phase, after configure. */
  start?(options: ProviderCallOptions): Promise<void> | void;
}

const KINDS: ProviderKind[] = [
  "unspecified",
  "integration",
  "authentication",
  "indexeddb",
  "secrets",
  "telemetry",
  "cache",
  "s3",
  "workflow",
  "authorization",
  "runtime",
  "agent",
  "external_credential",
];

/** A kind as the wire's enum name, for messages (`PROVIDER_KIND_RUNTIME`). */
export function providerKindName(kind: ProviderKind): string {
  return `PROVIDER_KIND_${kind.toUpperCase()}`;
}

/** An identity from the wire (an unknown kind reads as `unspecified`). */
export function identityFromWire(identity: pb.ProviderIdentity): ProviderIdentity {
  return { kind: KINDS[identity.kind] ?? "unspecified", ...describedAs(identity) };
}

/** An identity to the wire. */
export function identityToWire(identity: ProviderIdentity): pb.ProviderIdentity {
  return { kind: Math.max(0, KINDS.indexOf(identity.kind)), ...describedAs(identity) };
}

/** An identity's fields besides its kind, which read the same on the wire and here. */
function describedAs(identity: Omit<ProviderIdentity, "kind">): Omit<ProviderIdentity, "kind"> {
  return {
    name: identity.name,
    displayName: identity.displayName,
    description: identity.description,
    version: identity.version,
    warnings: [...identity.warnings],
    minProtocolVersion: identity.minProtocolVersion,
    maxProtocolVersion: identity.maxProtocolVersion,
  };
}

/** The identity a served runtime provider answers with: kind RUNTIME, protocol 3 to 3. */
export function runtimeIdentity(hooks: ProviderLifecycleHooks = {}): ProviderIdentity {
  const given = typeof hooks.identity === "function" ? hooks.identity() : (hooks.identity ?? {});
  return {
    name: "",
    displayName: "",
    description: "",
    version: "",
    warnings: [],
    ...given,
    kind: "runtime",
    minProtocolVersion: GESTALT_PROTOCOL_VERSION,
    maxProtocolVersion: GESTALT_PROTOCOL_VERSION,
  };
}

/** The lifecycle's server side over hooks; protocol rules as upstream's SDKs apply them. */
export function lifecycleImplementation(hooks: ProviderLifecycleHooks = {}): {
  getProviderIdentity(options: ProviderCallOptions): Promise<pb.ProviderIdentity>;
  configureProvider(
    request: pb.ConfigureProviderRequest,
    options: ProviderCallOptions,
  ): Promise<pb.ConfigureProviderResponse>;
  healthCheck(options: ProviderCallOptions): Promise<pb.HealthCheckResponse>;
  startProvider(options: ProviderCallOptions): Promise<pb.StartRuntimeProviderResponse>;
} {
  return {
    async getProviderIdentity() {
      return identityToWire(runtimeIdentity(hooks));
    },
    async configureProvider(request, options) {
      if (request.protocolVersion !== GESTALT_PROTOCOL_VERSION) {
        throw new RuntimeProviderError(
          "WORKLOAD_CONFLICT",
          "ConfigureProvider",
          `host requested protocol version ${request.protocolVersion}, provider requires ${GESTALT_PROTOCOL_VERSION}`,
        );
      }
      await hooks.configure?.({ name: request.name, config: request.config ?? {} }, options);
      return { protocolVersion: GESTALT_PROTOCOL_VERSION };
    },
    async healthCheck(options) {
      if (!hooks.healthCheck) return { ready: true, message: "" };
      try {
        const health = await hooks.healthCheck(options);
        return { ready: health.ready, message: health.message ?? "" };
      } catch (error) {
        return { ready: false, message: error instanceof Error ? error.message : String(error) };
      }
    },
    async startProvider(options) {
      await hooks.start?.(options);
      return { protocolVersion: GESTALT_PROTOCOL_VERSION };
    },
  };
}

/** Options of {@link handshakeRuntimeProvider}. */
export interface HandshakeOptions {
  /** The provider's name in the host's config (sent in ConfigureProvider). */
  name: string;
  /** Its settings (sent in ConfigureProvider as a Struct). */
  config?: Record<string, unknown>;
  /** Bound on each call. Default 30,000 ms. */
  callTimeoutMs?: number;
  signal?: AbortSignal;
}

function refuse(name: string, message: string): RuntimeProviderError {
  return new RuntimeProviderError(
    "UNSUPPORTED",
    "GetProviderIdentity",
    `runtime provider "${name}" ${message}`,
  );
}

/**
 * The host's handshake with a runtime provider, as gestaltd performs it. Refuses a provider
 * that is not of kind RUNTIME, or whose protocol range excludes 3, or that does not echo 3,
 * with an `UNSUPPORTED` error that says so. Resolves with the identity it gives once configured.
 *
 * @example
 * ```ts
 * const identity = await handshakeRuntimeProvider(grpcProviderLifecycle(address), { name: "docker", config });
 * ```
 */
export async function handshakeRuntimeProvider(
  lifecycle: ProviderLifecycle,
  options: HandshakeOptions,
): Promise<ProviderIdentity> {
  const timeout = options.callTimeoutMs ?? 30_000;
  const call = () => ({
    signal: options.signal
      ? AbortSignal.any([options.signal, AbortSignal.timeout(timeout)])
      : AbortSignal.timeout(timeout),
  });
  const identity = await lifecycle.getIdentity(call());
  if (identity.kind !== "runtime") {
    throw refuse(
      options.name,
      `is not a runtime provider: it says it is of kind ${providerKindName(identity.kind)}, not ${providerKindName("runtime")}`,
    );
  }
  const { minProtocolVersion: min, maxProtocolVersion: max } = identity;
  if ((min !== 0 && GESTALT_PROTOCOL_VERSION < min) || (max !== 0 && GESTALT_PROTOCOL_VERSION > max)) {
    throw refuse(
      options.name,
      `does not speak protocol version ${GESTALT_PROTOCOL_VERSION}: it speaks ${min || "any"} to ${max || "any"}`,
    );
  }
  const configured = await lifecycle.configure(
    { name: options.name, config: options.config ?? {}, protocolVersion: GESTALT_PROTOCOL_VERSION },
    call(),
  );
  if (configured.protocolVersion !== GESTALT_PROTOCOL_VERSION) {
    throw refuse(
      options.name,
      `answered ConfigureProvider with protocol version ${configured.protocolVersion}, and this host speaks ${GESTALT_PROTOCOL_VERSION}`,
    );
  }
  return lifecycle.getIdentity(call());
}

/** A unary call on a gRPC client: its method's name in the client, its RPC name, the request. */
export type UnaryCaller = <Req, Res>(
  clientMethod: string,
  rpc: string,
  request: Req,
  options?: ProviderCallOptions,
) => Promise<Res>;

/** A provider's lifecycle over gRPC, through `call` (bound to a `ProviderLifecycle` client). */
export function lifecycleClient(call: UnaryCaller): ProviderLifecycle {
  return {
    async getIdentity(o) {
      return identityFromWire(
        await call<object, pb.ProviderIdentity>("getProviderIdentity", "GetProviderIdentity", {}, o),
      );
    },
    configure(request, o) {
      return call<pb.ConfigureProviderRequest, pb.ConfigureProviderResponse>(
        "configureProvider",
        "ConfigureProvider",
        request,
        o,
      );
    },
    async healthCheck(o) {
      const health = await call<object, pb.HealthCheckResponse>("healthCheck", "HealthCheck", {}, o);
      return { ready: health.ready, ...(health.message ? { message: health.message } : {}) };
    },
    start(o) {
      return call<object, pb.StartRuntimeProviderResponse>("startProvider", "StartProvider", {}, o);
    },
  };
}
