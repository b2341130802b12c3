/**
 * Dialling a hosted plugin back: parse its dial target and open a gRPC channel that is
 * Ready. `unix://PATH` (insecure, authority `localhost`), `tcp://HOST:PORT` (insecure),
 * `tls://HOST:PORT` (TLS 1.2 or later, SNI = HOST, ALPN h2); a target with no scheme is a
 * unix path; any other scheme is refused.
 * @module
 */
import { createSecureContext } from "node:tls";
import { Channel, type ChannelOptions, connectivityState, credentials } from "@grpc/grpc-js";
import { RuntimeKernelError } from "../errors.js";
import { AddressSyntaxError, type GrpcAddress, parseGrpcAddress } from "../grpc/address.js";

/** A parsed dial target. */
export type DialTarget =
  | { scheme: "unix"; path: string; grpcTarget: string }
  | { scheme: "tcp" | "tls"; host: string; port: number; grpcTarget: string };

/** A dial target that cannot be dialled (unsupported scheme, no port, ...). `code` is `INVALID_SPEC`. */
export class DialTargetError extends RuntimeKernelError {
  constructor(message: string) {
    super("INVALID_SPEC", message);
  }
}

/**
 * Parses a hosted plugin's dial target.
 *
 * @example
 * ```ts
 * parseDialTarget("unix:///tmp/s/plugin.sock"); // { scheme: "unix", path: "/tmp/s/plugin.sock", ... }
 * parseDialTarget("tls://plugins.internal:8443"); // { scheme: "tls", host: "plugins.internal", port: 8443, ... }
 * parseDialTarget("/tmp/s/plugin.sock");         // a unix path
 * ```
 */
export function parseDialTarget(target: string): DialTarget {
  let parsed: GrpcAddress;
  try {
    parsed = parseGrpcAddress(target, { bare: "unix", listen: false, allowTls: true });
  } catch (error) {
    if (!(error instanceof AddressSyntaxError)) throw error;
    throw new DialTargetError(`hosted plugin dial target ${JSON.stringify(target)}: ${error.message}`);
  }
  if (parsed.kind === "unix") return { scheme: "unix", path: parsed.path, grpcTarget: `unix:${parsed.path}` };
  const hostPart = parsed.host.includes(":") ? `[${parsed.host}]` : parsed.host;
  return {
    scheme: parsed.tls ? "tls" : "tcp",
    host: parsed.host,
    port: parsed.port,
    grpcTarget: `dns:${hostPart}:${parsed.port}`,
  };
}

/** TLS settings of `tls://` targets. */
export interface DialTlsOptions {
  /** Trusted roots (PEM); default: Node's. */
  ca?: string | Buffer;
  /** A client certificate and key (PEM), for servers that ask for one. */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Overrides the SNI name and the name checked in the certificate (default: the target's host). */
  servername?: string;
}

/** Options of {@link dialHostedPlugin}. */
export interface DialOptions {
  /** How long to wait for the channel to be Ready. Default 30,000 ms. */
  timeoutMs?: number;
  /** Aborts the wait (and closes the channel). */
  signal?: AbortSignal;
  tls?: DialTlsOptions;
  /** Extra gRPC channel options. */
  channelOptions?: ChannelOptions;
}

/** A Ready channel to a hosted plugin. */
export interface DialedPlugin {
  channel: Channel;
  target: DialTarget;
}

/** The gRPC channel credentials and options for a target, without connecting. */
export function channelSettings(
  target: DialTarget,
  options: Pick<DialOptions, "tls" | "channelOptions"> = {},
): { credentials: ReturnType<typeof credentials.createInsecure>; options: ChannelOptions } {
  // A freshly started plugin may not listen yet on the first attempt: retry quickly.
  const channelOptions: ChannelOptions = {
    "grpc.initial_reconnect_backoff_ms": 50,
    "grpc.max_reconnect_backoff_ms": 1_000,
    ...options.channelOptions,
  };
  if (target.scheme === "unix") {
    channelOptions["grpc.default_authority"] = "localhost";
    return { credentials: credentials.createInsecure(), options: channelOptions };
  }
  if (target.scheme === "tcp") return { credentials: credentials.createInsecure(), options: channelOptions };
  const tls = options.tls ?? {};
  const context = createSecureContext({
    minVersion: "TLSv1.2",
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
  });
  // grpc-js sends SNI = the target's host and offers ALPN h2 by itself.
  if (tls.servername) channelOptions["grpc.ssl_target_name_override"] = tls.servername;
  return { credentials: credentials.createFromSecureContext(context), options: channelOptions };
}

/**
 * Resolves once `channel` is Ready; rejects when `deadline` passes, the channel shuts
 * down, or `signal` aborts.
 */
export function waitForReady(channel: Channel, deadline: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false;
    const finish = (error?: Error) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      if (error) reject(error);
      else resolve();
    };
    const onAbort = () => finish(signal?.reason instanceof Error ? signal.reason : new Error("dial aborted"));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const step = () => {
      if (settled) return;
      const state = channel.getConnectivityState(true);
      if (state === connectivityState.READY) return finish();
      if (state === connectivityState.SHUTDOWN) return finish(new Error("the channel was closed"));
      channel.watchConnectivityState(state, deadline, (error) => {
        if (error) {
          const last = channel.getConnectivityState(false);
          finish(new Error(`not Ready before the deadline (last state ${connectivityState[last]})`));
        } else step();
      });
    };
    step();
  });
}

/**
 * Dials a hosted plugin and waits until the channel is Ready (30 s by default). On failure
 * the channel is closed and the error says why.
 *
 * @example
 * ```ts
 * const { channel } = await dialHostedPlugin("unix:///tmp/session/plugin.sock");
 * const health = new HealthClient("unused", credentials.createInsecure(), { channelOverride: channel });
 * ```
 */
export async function dialHostedPlugin(dialTarget: string, options: DialOptions = {}): Promise<DialedPlugin> {
  const target = parseDialTarget(dialTarget);
  const settings = channelSettings(target, options);
  const channel = new Channel(target.grpcTarget, settings.credentials, settings.options);
  try {
    await waitForReady(channel, Date.now() + (options.timeoutMs ?? 30_000), options.signal);
  } catch (error) {
    channel.close();
    throw error;
  }
  return { channel, target };
}
