/**
 * The plugin host: starts hosted plugins through runtime providers and dials them back.
 *
 * Bootstrap of a hosted plugin, in order: select its provider (its own
 * `execution.runtime.provider`, else `server.runtime.defaultHostedProvider`, else the single
 * `default: true` provider) → GetSupport → plan (refuse what the effective profile cannot
 * meet; nothing has started yet) → StartSession → poll GetSession every 25 ms until ready or
 * running → BindHostService per host service → egress settings → StartPlugin → dial the
 * target and wait for a Ready channel (30 s). Any failure after StartSession stops the
 * session (bounded, 3 s); errors name the step. `close()` stops every session it started.
 * @module
 */
import { type Channel, type ChannelCredentials, type ClientOptions, credentials } from "@grpc/grpc-js";
import { InvalidSpecError, isRuntimeKernelError, RuntimeKernelError } from "../errors.js";
import {
  entryPath,
  type GestaltConfig,
  loadGestaltConfig,
  type PluginKind,
  type RuntimeProviderConfig,
  selectRuntimeProvider,
} from "./config.js";
import { type DialTlsOptions, dialHostedPlugin } from "./dial.js";
import { type BootstrapStep, HostedPluginError } from "./errors.js";
import { grpcRuntimeProvider } from "./grpc-provider.js";
import type { ProviderKernel } from "./kernel-provider.js";
import { type LocalRuntimeProviderOptions, localRuntimeProvider } from "./local-provider.js";
import { SessionLogBuffer } from "./log-buffer.js";
import { type HostedPluginPlan, type HostServiceDefinition, planHostedPlugin, pluginEntry } from "./plan.js";
import { type HostCapabilities, type ProfilePair, profilePair } from "./profile.js";
import type { RuntimeLogHost, RuntimeProvider, RuntimeSession, RuntimeSupport } from "./provider.js";
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
   * Makes a provider for a `source` entry. Default: a string source (or `{ address }`) is the
   * gRPC address of a running provider process (`unix:///run/p.sock`, `dns:host:port`, ...).
   */
  resolveSource?(
    source: string | Record<string, unknown>,
    context: DriverContext,
  ): RuntimeProvider | Promise<RuntimeProvider>;
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
  error?: string;
}

/** One session in the admin view. */
export interface SessionView {
  id: string;
  state: string;
  plugin: string;
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

const LOG_MARKER = "line(s) of the plugin's log ---";

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function withTimeout(ms: number, outer?: AbortSignal): AbortSignal {
  return outer ? AbortSignal.any([outer, AbortSignal.timeout(ms)]) : AbortSignal.timeout(ms);
}

const BUILTIN_LOCAL = "local";

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
  const loaded = new Map<string, Promise<RuntimeProvider>>();
  const created = new Set<RuntimeProvider>();
  const live = new Set<HostedPluginImpl>();
  /** Sessions this host started, by provider: the fallback when ListSessions is unimplemented. */
  const known = new Map<string, Map<string, string>>();
  const starting = new Set<Promise<unknown>>();
  let builtinLocal: RuntimeProvider | undefined;
  let closed = false;

  const effectiveDefault = (): string | undefined => {
    if (config.server.runtime.defaultHostedProvider) return config.server.runtime.defaultHostedProvider;
    const defaults = Object.entries(config.runtime.providers).filter(([, e]) => e.default);
    return defaults.length === 1 ? defaults[0]![0] : undefined;
  };

  const makeLocal = (entryConfig: Record<string, unknown> = {}): RuntimeProvider => {
    if (!options.kernel) {
      throw new InvalidSpecError(
        [
          {
            path: "kernel",
            message: "the local driver needs createPluginHost({ kernel }) (a kernel on the process backend)",
          },
        ],
        { subject: "plugin host options" },
      );
    }
    const fromConfig: Partial<LocalRuntimeProviderOptions> = {};
    if (typeof entryConfig.profile === "string") fromConfig.profile = entryConfig.profile;
    if (typeof entryConfig.sessionRoot === "string") fromConfig.sessionRoot = entryConfig.sessionRoot;
    if (typeof entryConfig.readyTimeoutMs === "number")
      fromConfig.readyTimeoutMs = entryConfig.readyTimeoutMs;
    if (typeof entryConfig.graceMs === "number") fromConfig.graceMs = entryConfig.graceMs;
    return localRuntimeProvider({ ...options.local, ...fromConfig, kernel: options.kernel, logHost });
  };

  const load = async (name: string): Promise<RuntimeProvider> => {
    const given = options.providers?.[name];
    if (given) return given;
    const entry = config.runtime.providers[name];
    if (!entry) {
      throw new InvalidSpecError([{ path: `runtime.providers.${name}`, message: "is not configured" }], {
        subject: "gestalt config",
      });
    }
    const context: DriverContext = {
      name,
      entry,
      logHost,
      ...(options.kernel ? { kernel: options.kernel } : {}),
    };
    let provider: RuntimeProvider;
    if (entry.driver !== undefined) {
      const driver = options.drivers?.[entry.driver];
      if (driver) provider = await driver(context);
      else if (entry.driver === BUILTIN_LOCAL) provider = makeLocal(entry.config);
      else {
        const knownDrivers = [BUILTIN_LOCAL, ...Object.keys(options.drivers ?? {})];
        throw new InvalidSpecError(
          [
            {
              path: `runtime.providers.${name}.driver`,
              message: `unknown driver "${entry.driver}" (known: ${knownDrivers.join(", ")})`,
            },
          ],
          { subject: "gestalt config" },
        );
      }
    } else {
      const source = entry.source!;
      if (options.resolveSource) provider = await options.resolveSource(source, context);
      else {
        const address = typeof source === "string" ? source : source.address;
        if (typeof address !== "string" || address === "") {
          throw new InvalidSpecError(
            [
              {
                path: `runtime.providers.${name}.source`,
                message: "is not a provider address; pass createPluginHost({ resolveSource }) to load it",
              },
            ],
            { subject: "gestalt config" },
          );
        }
        provider = grpcRuntimeProvider(address);
      }
    }
    created.add(provider);
    return provider;
  };

  const provider = (name: string): Promise<RuntimeProvider> => {
    let p = loaded.get(name);
    if (!p) {
      p = load(name);
      loaded.set(name, p);
      // A provider that failed to load may load later (the admin view retries).
      p.catch(() => loaded.delete(name));
    }
    return p;
  };

  const stopSession = async (p: RuntimeProvider, sessionId: string): Promise<void> => {
    await p.stopSession({ sessionId }, { signal: AbortSignal.timeout(options.stopTimeoutMs ?? 3_000) });
  };

  const bootstrap = async (
    kind: PluginKind,
    name: string,
    start: StartHostedOptions,
  ): Promise<HostedPlugin> => {
    if (closed) throw new HostedPluginError({ step: "select", plugin: name }, "the plugin host is closed");
    const entry = pluginEntry(config, kind, name);
    if (!entry) {
      const all = Object.keys(kind === "plugin" ? config.plugins : config.providers.agent);
      throw new InvalidSpecError(
        [
          {
            path: entryPath(kind, name),
            message: `is not configured (configured: ${all.join(", ") || "none"})`,
          },
        ],
        { subject: "gestalt config" },
      );
    }
    const hosted = entry.execution?.mode === "hosted";
    let providerName: string;
    let p: RuntimeProvider;
    const fail = (
      step: BootstrapStep,
      message: string,
      cause: unknown,
      extra: { sessionId?: string; logTail?: string[] } = {},
    ) => new HostedPluginError({ step, plugin: name, provider: providerName, ...extra }, message, { cause });

    if (hosted) {
      try {
        providerName = selectRuntimeProvider(config, kind, name).provider;
      } catch (error) {
        throw new HostedPluginError(
          { step: "select", plugin: name },
          `select runtime provider: ${messageOf(error)}`,
          { cause: error },
        );
      }
      try {
        p = await provider(providerName);
      } catch (error) {
        throw fail("select", `load runtime provider: ${messageOf(error)}`, error);
      }
    } else {
      providerName = BUILTIN_LOCAL;
      try {
        builtinLocal ??= makeLocal();
        p = builtinLocal;
      } catch (error) {
        throw fail("select", `run locally: ${messageOf(error)}`, error);
      }
    }

    let support: RuntimeSupport;
    try {
      support = await p.getSupport({ signal: withTimeout(callTimeout, start.signal) });
    } catch (error) {
      throw fail("support", `get runtime provider support: ${messageOf(error)}`, error);
    }

    // Refusals happen here, before any session exists.
    const plan = planHostedPlugin({
      config,
      kind,
      plugin: name,
      provider: providerName,
      support,
      host: hostCapabilities,
      ...(options.hostServices ? { hostServices: options.hostServices } : {}),
    });
    const command = entry.command ?? entry.hostBinary;
    if (!command) {
      throw fail("plan", `${entryPath(kind, name)}.command: is required to start the plugin`, undefined);
    }

    const runtime = entry.execution?.runtime;
    let session: RuntimeSession;
    try {
      session = await p.startSession(
        {
          pluginName: name,
          ...(runtime?.template ? { template: runtime.template } : {}),
          ...(runtime?.image ? { image: runtime.image } : {}),
          metadata: {
            ...runtime?.metadata,
            provider_kind: hosted
              ? (config.runtime.providers[providerName]?.driver ?? "source")
              : BUILTIN_LOCAL,
            provider_name: providerName,
          },
          ...(runtime?.imagePullAuth ? { imagePullAuth: runtime.imagePullAuth } : {}),
        },
        { signal: withTimeout(callTimeout, start.signal) },
      );
    } catch (error) {
      throw fail("start-session", `start plugin runtime session: ${messageOf(error)}`, error);
    }
    const sessionId = session.id;
    const sessions = known.get(providerName) ?? new Map<string, string>();
    known.set(providerName, sessions);
    sessions.set(sessionId, name);

    // From here on, every failure stops the session before it is reported.
    const abandon = async (step: BootstrapStep, message: string, cause: unknown): Promise<never> => {
      const causeText = messageOf(cause);
      const tail = causeText.includes(LOG_MARKER)
        ? []
        : logHost.tail(sessionId, tailLines).map((e) => e.message);
      let stopNote = "";
      try {
        await stopSession(p, sessionId);
      } catch (error) {
        stopNote = ` (stopping session "${sessionId}" also failed: ${messageOf(error)})`;
      }
      sessions.delete(sessionId);
      throw fail(step, `${message}: ${causeText}${stopNote}`, cause, { sessionId, logTail: tail });
    };

    // Wait until the session is ready or running.
    const readyDeadline = Date.now() + (options.sessionReadyTimeoutMs ?? 30_000);
    const waitStep = `wait for plugin runtime session ${JSON.stringify(sessionId)} ready`;
    for (;;) {
      if (session.state === "ready" || session.state === "running") break;
      if (session.state === "failed" || session.state === "stopped") {
        const detail = [session.stateReason, session.stateMessage].filter(Boolean).join(": ");
        await abandon(
          "wait-ready",
          waitStep,
          new Error(`session is ${session.state}${detail ? ` (${detail})` : ""}`),
        );
      }
      if (Date.now() >= readyDeadline) {
        await abandon(
          "wait-ready",
          waitStep,
          new Error(
            `still ${session.state || "pending"} after ${options.sessionReadyTimeoutMs ?? 30_000} ms`,
          ),
        );
      }
      try {
        await sleep(options.pollIntervalMs ?? 25, start.signal);
        session = await p.getSession({ sessionId }, { signal: withTimeout(callTimeout, start.signal) });
      } catch (error) {
        await abandon("wait-ready", waitStep, error);
      }
    }

    for (const binding of plan.bindings) {
      try {
        await p.bindHostService(
          { sessionId, envVar: binding.envVar, relay: { dialTarget: binding.dialTarget } },
          { signal: withTimeout(callTimeout, start.signal) },
        );
      } catch (error) {
        await abandon("bind", `bind host service ${JSON.stringify(binding.service)}`, error);
      }
    }

    const env = { ...entry.env, ...start.env, ...plan.egressEnv };
    let started: { id: string; dialTarget: string };
    try {
      started = await p.startPlugin(
        {
          sessionId,
          pluginName: name,
          command,
          args: entry.args,
          env,
          ...(plan.egress
            ? { allowedHosts: plan.egress.allowedHosts, defaultAction: plan.egress.defaultAction }
            : {}),
          ...(entry.hostBinary ? { hostBinary: entry.hostBinary } : {}),
        },
        { signal: withTimeout(options.startPluginTimeoutMs ?? 60_000, start.signal) },
      );
    } catch (error) {
      return abandon("start-plugin", "start hosted plugin", error);
    }

    // Dial, while watching the session: a plugin that dies now fails the dial at once.
    let channel: Channel;
    const watch = new AbortController();
    let died: Error | undefined;
    try {
      const signal = start.signal ? AbortSignal.any([start.signal, watch.signal]) : watch.signal;
      const watcher = (async () => {
        while (!watch.signal.aborted) {
          await sleep(100, watch.signal);
          const s = await p.getSession({ sessionId }, { signal: watch.signal }).catch(() => undefined);
          if (s && (s.state === "failed" || s.state === "stopped")) {
            const detail = [s.stateReason, s.stateMessage].filter(Boolean).join(": ");
            died = new Error(`the session became ${s.state}${detail ? ` (${detail})` : ""}`);
            watch.abort(died);
          }
        }
      })().catch(() => {});
      try {
        ({ channel } = await dialHostedPlugin(started.dialTarget, {
          timeoutMs: options.dialTimeoutMs ?? 30_000,
          signal,
          ...(options.tls ? { tls: options.tls } : {}),
        }));
      } finally {
        if (!watch.signal.aborted) watch.abort();
        await watcher;
      }
    } catch (error) {
      return abandon("dial", "dial hosted plugin", died ?? error);
    }

    const plugin = new HostedPluginImpl({
      name,
      kind,
      provider: providerName,
      sessionId,
      pluginId: started.id,
      dialTarget: started.dialTarget,
      channel,
      profile: plan.profile,
      plan,
      logs: (n) => logHost.tail(sessionId, n).map((e) => e.message),
      stop: async () => {
        channel.close();
        live.delete(plugin);
        try {
          await stopSession(p, sessionId);
        } finally {
          sessions.delete(sessionId);
          logHost.forget(sessionId);
        }
      },
    });
    live.add(plugin);
    return plugin;
  };

  const track = <T>(promise: Promise<T>): Promise<T> => {
    starting.add(promise);
    const done = () => starting.delete(promise);
    promise.then(done, done);
    return promise;
  };

  const sessionsOf = async (name: string, p: RuntimeProvider): Promise<RuntimeSession[]> => {
    if (p.listSessions) {
      try {
        return await p.listSessions({ signal: AbortSignal.timeout(10_000) });
      } catch (error) {
        if (!(isRuntimeKernelError(error) && (error as { unimplemented?: boolean }).unimplemented))
          throw error;
      }
    }
    // ListSessions unimplemented: ask for each session this host knows.
    const out: RuntimeSession[] = [];
    for (const id of known.get(name)?.keys() ?? []) {
      const s = await p
        .getSession({ sessionId: id }, { signal: AbortSignal.timeout(10_000) })
        .catch(() => undefined);
      if (s) out.push(s);
    }
    return out;
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
    provider,
    async describeProviders() {
      const defaultName = effectiveDefault();
      return Promise.all(
        Object.entries(config.runtime.providers).map(async ([name, entry]): Promise<ProviderView> => {
          const view: ProviderView = {
            name,
            driver: entry.driver ?? "source",
            default: name === defaultName,
            loaded: false,
          };
          try {
            const p = await provider(name);
            view.loaded = true;
            const support = await p.getSupport({ signal: AbortSignal.timeout(10_000) });
            view.profile = profilePair(support, hostCapabilities);
            view.sessionCount = (await sessionsOf(name, p)).filter((s) => s.state !== "stopped").length;
          } catch (error) {
            view.error = messageOf(error);
          }
          return view;
        }),
      );
    },
    async describeSessions(name) {
      if (!Object.hasOwn(config.runtime.providers, name) && !options.providers?.[name]) {
        throw new RuntimeKernelError("WORKLOAD_NOT_FOUND", `no runtime provider "${name}"`);
      }
      const p = await provider(name);
      const plugins = known.get(name);
      return (await sessionsOf(name, p)).map((s) => ({
        id: s.id,
        state: s.state,
        plugin: plugins?.get(s.id) ?? s.metadata.plugin_name ?? "",
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
      for (const p of created) await p.close?.().catch(() => {});
      if (builtinLocal) await builtinLocal.close?.().catch(() => {});
      if (errors.length) {
        throw new AggregateError(errors, `closing the plugin host: ${errors.map(messageOf).join("; ")}`);
      }
    },
  };
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

interface HostedPluginInit {
  name: string;
  kind: PluginKind;
  provider: string;
  sessionId: string;
  pluginId: string;
  dialTarget: string;
  channel: Channel;
  profile: ProfilePair;
  plan: HostedPluginPlan;
  logs(n?: number): string[];
  stop(): Promise<void>;
}

class HostedPluginImpl implements HostedPlugin {
  readonly name: string;
  readonly kind: PluginKind;
  readonly provider: string;
  readonly sessionId: string;
  readonly pluginId: string;
  readonly dialTarget: string;
  readonly channel: Channel;
  readonly profile: ProfilePair;
  readonly plan: HostedPluginPlan;
  readonly #init: HostedPluginInit;
  #stopped: Promise<void> | undefined;

  constructor(init: HostedPluginInit) {
    this.#init = init;
    this.name = init.name;
    this.kind = init.kind;
    this.provider = init.provider;
    this.sessionId = init.sessionId;
    this.pluginId = init.pluginId;
    this.dialTarget = init.dialTarget;
    this.channel = init.channel;
    this.profile = init.profile;
    this.plan = init.plan;
  }

  client<T>(
    ctor: new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>) => T,
  ): T {
    return new ctor("localhost", credentials.createInsecure(), { channelOverride: this.channel });
  }

  logs(n?: number): string[] {
    return this.#init.logs(n);
  }

  stop(): Promise<void> {
    this.#stopped ??= this.#init.stop();
    return this.#stopped;
  }
}
