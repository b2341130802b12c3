/**
 * What a host calls on a hosted plugin it has just dialled, when the plugin is an
 * integration provider (`gestalt.provider.v1.IntegrationProvider`), as gestaltd does:
 * GetMetadata, retried every 25 ms while the plugin answers UNAVAILABLE, then
 * StartProvider with the plugin's name, config and protocol version 3, which must come
 * back. A plugin that implements neither (it answers UNIMPLEMENTED) is started all the same.
 * @module
 */
import { type Channel, credentials, status } from "@grpc/grpc-js";
import {
  IntegrationProviderClient,
  type ProviderMetadata,
  type StartProviderResponse,
} from "../gen/gestalt/provider/v1/plugin.js";
import { caller } from "./grpc-provider.js";
import { GESTALT_PROTOCOL_VERSION } from "./lifecycle.js";
import { RuntimeProviderError } from "./provider.js";

/** What an integration provider says about itself (`GetMetadata`; the catalog is left out). */
export interface IntegrationMetadata {
  name: string;
  displayName: string;
  description: string;
  supportsSessionCatalog: boolean;
  supportsPostConnect: boolean;
  minProtocolVersion: number;
  maxProtocolVersion: number;
}

/** Options of {@link startIntegrationProvider}. */
export interface StartIntegrationOptions {
  /** The plugin's name (StartProvider's `name`). */
  name: string;
  /** The plugin's config (StartProvider's `config`). */
  config?: Record<string, unknown>;
  /** Bound on the whole exchange. Default 30,000 ms. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

const RETRY_MS = 25;

const grpcCodeOf = (error: unknown) => (error as { grpcCode?: number }).grpcCode;

/**
 * GetMetadata then StartProvider on a dialled plugin. Resolves with its metadata, or
 * `undefined` when it does not implement GetMetadata.
 */
export async function startIntegrationProvider(
  channel: Channel,
  options: StartIntegrationOptions,
): Promise<IntegrationMetadata | undefined> {
  const client = new IntegrationProviderClient("localhost", credentials.createInsecure(), {
    channelOverride: channel,
  });
  const timeoutMs = options.timeoutMs ?? 30_000;
  const call = caller(client, timeoutMs);
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
  let metadata: IntegrationMetadata | undefined;
  for (;;) {
    try {
      const m = await call<object, ProviderMetadata>("getMetadata", "GetMetadata", {}, { signal });
      metadata = {
        name: m.name,
        displayName: m.displayName,
        description: m.description,
        supportsSessionCatalog: m.supportsSessionCatalog,
        supportsPostConnect: m.supportsPostConnect,
        minProtocolVersion: m.minProtocolVersion,
        maxProtocolVersion: m.maxProtocolVersion,
      };
      break;
    } catch (error) {
      const code = grpcCodeOf(error);
      if (code === status.UNIMPLEMENTED) break;
      if (code !== status.UNAVAILABLE || signal.aborted) throw withContext("get provider metadata", error);
      await new Promise((r) => setTimeout(r, RETRY_MS));
    }
  }
  let started: StartProviderResponse;
  try {
    started = await call<object, StartProviderResponse>(
      "startProvider",
      "StartProvider",
      { name: options.name, config: options.config ?? {}, protocolVersion: GESTALT_PROTOCOL_VERSION },
      { signal },
    );
  } catch (error) {
    if (grpcCodeOf(error) === status.UNIMPLEMENTED) return metadata;
    throw withContext("start provider", error);
  }
  if (started.protocolVersion !== GESTALT_PROTOCOL_VERSION) {
    throw new RuntimeProviderError(
      "UNSUPPORTED",
      "StartProvider",
      `start provider: the plugin answered with protocol version ${started.protocolVersion}, and this host speaks ${GESTALT_PROTOCOL_VERSION}`,
    );
  }
  return metadata;
}

function withContext(step: string, error: unknown): Error {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof RuntimeProviderError) {
    return new RuntimeProviderError(error.code, error.method, `${step}: ${message}`, {
      cause: error,
      grpcCode: error.grpcCode,
    });
  }
  return new Error(`${step}: ${message}`, { cause: error });
}
