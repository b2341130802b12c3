/**
 * The plugin host: starts hosted plugins through runtime providers and dials them back,
 * driving providers the way gestaltd does.
 *
 * A provider is loaded once, on first use: a built-in driver, a running provider dialled at
 * its address, or an executable launched as gestaltd launches one (see
 * `launchRuntimeProvider`), then handshaken (`ProviderLifecycle`: kind RUNTIME, protocol 3,
 * ConfigureProvider with `runtime.providers.<name>.config`).
 *
 * Bootstrap of a hosted plugin, in order: select its provider (its own `runtime.provider`,
 * else `server.runtime.defaultProvider`, else the single `default: true` provider) → GetSupport → plan (refuse what the effective profile cannot
 * meet; nothing has started yet) → StartSession (metadata `provider_kind` and
 * `provider_name`) → poll GetSession every 25 ms until ready or running → BindHostService
 * per host service, for providers of the specified revision → egress settings →
 * StartPlugin (with `GESTALT_RUNTIME_SESSION_ID` and every binding in its env) → dial the
 * target and wait for a Ready channel (30 s) → for a plugin (not an agent): GetMetadata and
 * StartProvider on it. Any failure after StartSession stops the session (bounded, 3 s);
 * errors name the step. `close()` stops every session it started, then the providers it
 * launched (SIGTERM, SIGKILL after 2 s).
 * @module
 */
import { type Channel, type ChannelCredentials, type ClientOptions, credentials } from "@grpc/grpc-js";
import { isRuntimeKernelError, RuntimeKernelError } from "../errors.js";
import {
  type BootstrapHost,
  type Bootstrapped,
  bootstrapHostedPlugin,
  configuredEntry,
} from "./bootstrap.js";
import {
  type GestaltConfig,
  loadGestaltConfig,
  type PluginKind,
  type RuntimeProviderConfig,
} from "./config.js";
import type { DialTlsOptions } from "./dial.js";
import { HostedPluginError } from "./errors.js";
import type { IntegrationMetadata } from "./integration.js";
import type { ProviderKernel } from "./kernel-provider.js";
import type { ProviderIdentity } from "./lifecycle.js";
import type { LocalRuntimeProviderOptions } from "./local-provider.js";
import { SessionLogBuffer } from "./log-buffer.js";
import type { HostedPluginPlan, HostServiceDefinition } from "./plan.js";
import { type HostCapabilities, type ProfilePair, profilePair } from "./profile.js";
import type { RuntimeLogHost, RuntimeProvider, RuntimeSession } from "./provider.js";
import { ProviderLoader } from "./provider-loader.js";
import type { LaunchRuntimeProviderOptions } from "./provider-process.js";
import { defaultRuntimeProvider } from "./provider-selection.js";
import { type ServedEndpoint, serveRuntimeLogHost } from "./serve-provider.js";

/** What a driver factory receives. */
export interface DriverContext {
  /** The provider's name (`runtime.providers.<name>`). */
  name: string;
  /** Its configuration entry. */
  entry: RuntimeProviderConfig;
  /** The host's kernel, when it was given one. */
  kernel?: ProviderKernel;
  /** Where the provider should append its plugins' output. */
  logHost: RuntimeLogHost;
}

/** Makes a provider for a `runtime.providers` entry with `driver: <name>`. */
export type RuntimeProviderDriver = (context: DriverContext) => RuntimeProvider | Promise<RuntimeProvider>;

/** Options of {@link createPluginHost}. */
export interface PluginHostOptions {
  /** The configuration: parsed by `loadGestaltConfig`, or YAML text / an object to parse. */
  config: GestaltConfig | string | Record<string, unknown>;
  /** The kernel the built-in `local` driver runs plugins on (a kernel on the process backend). */
  kernel?: ProviderKernel;
  /** What this host can offer sessions (relay and the public egress proxy need a public https URL and a key). */
  hostCapabilities?: HostCapabilities;
  /** The host services plugins may use, by name (`plugins.<n>.hostServices`). */
  hostServices?: Record<string, HostServiceDefinition>;
  /** Ready-made providers by provider name; they take precedence over `driver` and `source`. */
  providers?: Record<string, RuntimeProvider>;
  /** Driver factories by driver name; `local` is built in. */
  drivers?: Record<string, RuntimeProviderDriver>;
  /**
   * Makes a provider for a `source` entry, or returns `undefined` to leave it to the
   * built-in forms: a string (or `{ address }`) is the gRPC address of a running provider
   * (`unix:///run/p.sock`, `dns:host:port`, ...); `{ command, args }` and `{ path }` (a
   * `kind: runtime` manifest) are executables to launch.
   */
  resolveSource?(
    source: string | Record<string, unknown>,
    context: DriverContext,
  ): RuntimeProvider | undefined | Promise<RuntimeProvider | undefined>;
  /** What becomes of launched providers' own stdout and stderr. Default: this process's stderr. */
  providerOutput?: LaunchRuntimeProviderOptions["output"];
  /** Bound on a launched provider's start (socket and Ready). Default 45,000 ms. */
  providerStartupTimeoutMs?: number;
  /** Options of the built-in `local` driver (its entry's `config` may also set `profile`, `sessionRoot`, `readyTimeoutMs`, `graceMs`). */
  local?: Omit<LocalRuntimeProviderOptions, "kernel" | "logHost">;
  /** How long to wait for a session to become ready. Default 30,000 ms. */
  sessionReadyTimeoutMs?: number;
  /** GetSession polling interval while waiting. Default 25 ms. */
  pollIntervalMs?: number;
  /** How long to wait for the plugin's channel to be Ready. Default 30,000 ms. */
  dialTimeoutMs?: number;
  /** The bound on StartPlugin (the provider waits for the plugin to listen, pulls images, ...). Default 60,000 ms. */
  startPluginTimeoutMs?: number;
  /** The bound on each other provider call. Default 30,000 ms. */
  callTimeoutMs?: number;
  /** The bound on StopSession after a failure and at close. Default 3,000 ms. */
  stopTimeoutMs?: number;
  /** TLS settings for `tls://` dial targets. */
  tls?: DialTlsOptions;
  /** How many lines of the plugin's log to quote in a start error. Default 20. */
  logTailLines?: number;
}

/** Options of `startPlugin` / `startAgent`. */
export interface StartHostedOptions {
  /** Extra environment for the plugin (over the configured `env`). */
  env?: Record<string, string>;
  /** Aborts the bootstrap (the session, if started, is stopped). */
  signal?: AbortSignal;
}

/** A plugin the host started and dialled. */
export interface HostedPlugin {
  /** The plugin (or agent) name. */
  readonly name: string;
  readonly kind: PluginKind;
  /** The runtime provider's name. */
  readonly provider: string;
  readonly sessionId: string;
  /** The provider's id of the plugin. */
  readonly pluginId: string;
  readonly dialTarget: string;
  /** A Ready gRPC channel to the plugin. */
  readonly channel: Channel;
  readonly profile: ProfilePair;
  readonly plan: HostedPluginPlan;
  /** What the plugin said in GetMetadata, when it is an integration provider that implements it. */
  readonly metadata?: IntegrationMetadata;
  /**
   * A generated gRPC client over the plugin's channel.
   * @example `const health = plugin.client(HealthClient);`
   */
  client<T>(
    ctor: new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>) => T,
  ): T;
  /** The last lines of the plugin's output the host received. */
  logs(n?: number): string[];
  /** Closes the channel and stops the session. */
  stop(): Promise<void>;
}

/** One provider in the admin view. */
export interface ProviderView {
  name: string;
  /** The driver, or `source` for providers given by source. */
  driver: string;
  default: boolean;
  loaded: boolean;
  sessionCount?: number;
  profile?: ProfilePair;
  /** What the provider said in the lifecycle handshake, for providers that speak it. */
  identity?: ProviderIdentity;
  error?: string;
}

/** One session in the admin view. */
export interface SessionView {
  id: string;
  state: string;
  plugin: string;
  /** The last lines the provider appended for this session (the plugin's output and the runtime's messages). */
  logs: string[];
}

/** The host. */
export interface PluginHost {
  /** Starts `plugins.<name>` (hosted through its provider, or locally) and dials it. */
  startPlugin(name: string, options?: StartHostedOptions): Promise<HostedPlugin>;
  /** Starts the hosted agent `providers.agent.<name>`; agents always need host-service access. */
  startAgent(name: string, options?: StartHostedOptions): Promise<HostedPlugin>;
  /** The plugins started and not stopped. */
  plugins(): HostedPlugin[];
  /** The provider of `runtime.providers.<name>`, loaded on first use. */
  provider(name: string): Promise<RuntimeProvider>;
  /** The admin view: every configured provider, its profiles and session count. */
  describeProviders(): Promise<ProviderView[]>;
  /** The sessions of one provider. Rejects with `WORKLOAD_NOT_FOUND` for an unknown provider. */
  describeSessions(provider: string): Promise<SessionView[]>;
  /** Where providers append their plugins' output. */
  readonly logHost: SessionLogBuffer;
  /** Serves {@link logHost} over gRPC (`PluginRuntimeLogHost`) for provider processes. */
  serveLogHost(address: string): Promise<ServedEndpoint>;
  /** Stops every session this host started, closes channels and the providers it created. */
  close(): Promise<void>;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Creates a plugin host over a Gestalt configuration.
 *
 * @example
 * ```ts
 * const host = createPluginHost({ config: loadGestaltConfig(yaml), kernel, hostCapabilities: { publicBaseUrl, encryptionKey } });
 * const plugin = await host.startPlugin("support");
 * const health = plugin.client(HealthClient);
 * await host.close();
 * ```
 */
export function createPluginHost(options: PluginHostOptions): PluginHost {
  const config =
    typeof options.config === "string" || !isParsed(options.config)
      ? loadGestaltConfig(options.config as string | Record<string, unknown>)
      : options.config;
  const hostCapabilities = options.hostCapabilities ?? {};
  const logHost = new SessionLogBuffer();
  const tailLines = options.logTailLines ?? 20;
  const callTimeout = options.callTimeoutMs ?? 30_000;
  const providers = new ProviderLoader(options, config, logHost, callTimeout);
  const live = new Set<HostedPlugin>();
  /** Sessions this host started, by provider: the fallback when ListSessions is unimplemented. */
  const known = new Map<string, Map<string, string>>();
  const starting = new Set<Promise<unknown>>();
  let closed = false;

  const stopSession = async (p: RuntimeProvider, sessionId: string): Promise<void> => {
    await p.stopSession({ sessionId }, { signal: AbortSignal.timeout(options.stopTimeoutMs ?? 3_000) });
  };

  const startedOn = (providerName: string): Map<string, string> => {
    let sessions = known.get(providerName);
    if (!sessions) {
      sessions = new Map();
      known.set(providerName, sessions);
    }
    return sessions;
  };

  const bootstrapHost: BootstrapHost = {
    config,
    hostCapabilities,
    hostServices: options.hostServices,
    logHost,
    tailLines,
    timeouts: {
      call: callTimeout,
      sessionReady: options.sessionReadyTimeoutMs,
      pollInterval: options.pollIntervalMs,
      startPlugin: options.startPluginTimeoutMs,
      dial: options.dialTimeoutMs,
    },
    tls: options.tls,
    sessionsOf: startedOn,
    stopSession,
  };

  const bootstrap = async (
    kind: PluginKind,
    name: string,
    start: StartHostedOptions,
  ): Promise<HostedPlugin> => {
    if (closed) throw new HostedPluginError({ step: "select", plugin: name }, "the plugin host is closed");
    const entry = configuredEntry(config, kind, name);
    const selected = await providers.select(kind, name, entry);
    const b = await bootstrapHostedPlugin(bootstrapHost, kind, name, entry, selected, start);
    const plugin = keptPlugin(b, logHost, stopSession, live, startedOn(b.providerName));
    live.add(plugin);
    return plugin;
  };

  const track = <T>(promise: Promise<T>): Promise<T> => {
    starting.add(promise);
    const done = () => starting.delete(promise);
    promise.then(done, done);
    return promise;
  };

  return {
    logHost,
    startPlugin(name, start = {}) {
      return track(bootstrap("plugin", name, start));
    },
    startAgent(name, start = {}) {
      return track(bootstrap("agent", name, start));
    },
    plugins() {
      return [...live];
    },
    provider: (name) => providers.get(name),
    async describeProviders() {
      const defaultName = defaultRuntimeProvider(config)?.provider;
      return Promise.all(
        Object.entries(config.runtime.providers).map(([name, entry]) =>
          describeProvider(name, entry, defaultName, providers, hostCapabilities, known.get(name)),
        ),
      );
    },
    async describeSessions(name) {
      if (!Object.hasOwn(config.runtime.providers, name) && !options.providers?.[name]) {
        throw new RuntimeKernelError("WORKLOAD_NOT_FOUND", `no runtime provider "${name}"`);
      }
      const p = await providers.get(name);
      const plugins = known.get(name);
      return (await listSessions(p, known.get(name))).map((s) => ({
        id: s.id,
        state: s.state,
        plugin: plugins?.get(s.id) ?? s.metadata.provider_name ?? "",
        logs: logHost.tail(s.id, tailLines).map((e) => e.message),
      }));
    },
    serveLogHost(address) {
      return serveRuntimeLogHost(logHost, address);
    },
    async close() {
      closed = true;
      await Promise.allSettled([...starting]);
      const errors: unknown[] = [];
      await Promise.all(
        [...live].map((plugin) => plugin.stop().catch((error: unknown) => errors.push(error))),
      );
      await providers.close();
      if (errors.length) {
        throw new AggregateError(errors, `closing the plugin host: ${errors.map(messageOf).join("; ")}`);
      }
    },
  };
}

/** A bootstrapped plugin as the host keeps it: stopping it (once) closes its channel and stops its session. */
function keptPlugin(
  b: Bootstrapped,
  logHost: SessionLogBuffer,
  stopSession: (p: RuntimeProvider, sessionId: string) => Promise<void>,
  live: Set<HostedPlugin>,
  sessions: Map<string, string>,
): HostedPlugin {
  let stopped: Promise<void> | undefined;
  const stopOnce = async () => {
    b.channel.close();
    live.delete(plugin);
    try {
      await stopSession(b.provider, b.sessionId);
    } finally {
      sessions.delete(b.sessionId);
      logHost.forget(b.sessionId);
    }
  };
  const plugin: HostedPlugin = {
    name: b.name,
    kind: b.kind,
    provider: b.providerName,
    sessionId: b.sessionId,
    pluginId: b.pluginId,
    dialTarget: b.dialTarget,
    channel: b.channel,
    profile: b.plan.profile,
    plan: b.plan,
    ...(b.metadata ? { metadata: b.metadata } : {}),
    client: (ctor) => new ctor("localhost", credentials.createInsecure(), { channelOverride: b.channel }),
    logs: (n) => logHost.tail(b.sessionId, n).map((e) => e.message),
    stop: () => {
      stopped ??= stopOnce();
      return stopped;
    },
  };
  return plugin;
}

/** The sessions of a provider: ListSessions, or GetSession of each it knows when that is unimplemented. */
async function listSessions(
  p: RuntimeProvider,
  known: Map<string, string> | undefined,
): Promise<RuntimeSession[]> {
  if (p.listSessions) {
    try {
      return await p.listSessions({ signal: AbortSignal.timeout(10_000) });
    } catch (error) {
      if (!(isRuntimeKernelError(error) && (error as { unimplemented?: boolean }).unimplemented)) throw error;
    }
  }
  // ListSessions unimplemented: ask for each session this host knows.
  const out: RuntimeSession[] = [];
  for (const id of known?.keys() ?? []) {
    const s = await p
      .getSession({ sessionId: id }, { signal: AbortSignal.timeout(10_000) })
      .catch(() => undefined);
    if (s) out.push(s);
  }
  return out;
}

/** One provider in the admin view; loading it if need be, its error in the view if that fails. */
async function describeProvider(
  name: string,
  entry: RuntimeProviderConfig,
  defaultName: string | undefined,
  providers: ProviderLoader,
  hostCapabilities: HostCapabilities,
  known: Map<string, string> | undefined,
): Promise<ProviderView> {
  const view: ProviderView = {
    name,
    driver: entry.driver ?? "source",
    default: name === defaultName,
    loaded: false,
  };
  try {
    const p = await providers.get(name);
    view.loaded = true;
    const identity = providers.identities.get(name);
    if (identity) view.identity = identity;
    const support = await p.getSupport({ signal: AbortSignal.timeout(10_000) });
    view.profile = profilePair(support, hostCapabilities);
    view.sessionCount = (await listSessions(p, known)).filter((s) => s.state !== "stopped").length;
  } catch (error) {
    view.error = messageOf(error);
  }
  return view;
}

function isParsed(config: unknown): config is GestaltConfig {
  // A parsed config always carries the normalised sections; raw input may lack them.
  const c = config as Partial<GestaltConfig>;
  return (
    typeof c === "object" &&
    c !== null &&
    typeof c.runtime?.providers === "object" &&
    typeof c.egress?.defaultAction === "string" &&
    Array.isArray(c.egress?.allowedHosts) &&
    typeof c.plugins === "object" &&
    typeof c.providers?.agent === "object" &&
    typeof c.server?.runtime === "object"
  );
}
