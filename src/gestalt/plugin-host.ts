/**
 * The plugin host: starts hosted plugins through runtime providers and dials them back,
 * driving providers the way gestaltd does.
 *
 * A provider is loaded once, on first use: a built-in driver, a running provider dialled at
 * its address, or an executable launched as gestaltd launches one (see
 * `launchRuntimeProvider`), then handshaken (`ProviderLifecycle`: kind RUNTIME, protocol 3,
 * ConfigureProvider with `runtime.providers.<name>.config`).
 *
 * Bootstrap of a hosted plugin, in order: select its provider (its own
 * `execution.runtime.provider`, else `server.runtime.defaultHostedProvider`, else the single
 * `default: true` provider) → GetSupport → plan (refuse what the effective profile cannot
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
import { type IntegrationMetadata, startIntegrationProvider } from "./integration.js";
import type { ProviderKernel } from "./kernel-provider.js";
import { handshakeRuntimeProvider, type ProviderIdentity } from "./lifecycle.js";
import { type LocalRuntimeProviderOptions, localRuntimeProvider } from "./local-provider.js";
import { SessionLogBuffer } from "./log-buffer.js";
import { type HostedPluginPlan, type HostServiceDefinition, planHostedPlugin, pluginEntry } from "./plan.js";
import { type HostCapabilities, type ProfilePair, profilePair } from "./profile.js";
import type { RuntimeLogHost, RuntimeProvider, RuntimeSession, RuntimeSupport } from "./provider.js";
import {
  type LaunchedRuntimeProvider,
  type LaunchRuntimeProviderOptions,
  launchRuntimeProvider,
  PROVIDER_ENV,
  readRuntimeManifest,
} from "./provider-process.js";
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
  const identities = new Map<string, ProviderIdentity>();
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
      provider = (await options.resolveSource?.(entry.source!, context)) ?? (await fromSource(name, entry));
    }
    created.add(provider);
    return provider;
  };

  const launch = async (name: string, entry: RuntimeProviderConfig, command: string, args: string[]) => {
    const launched: LaunchedRuntimeProvider = await launchRuntimeProvider({
      name,
      command,
      args,
      env: entry.env,
      config: entry.config,
      logHost,
      ...(options.providerOutput !== undefined ? { output: options.providerOutput } : {}),
      ...(options.providerStartupTimeoutMs !== undefined
        ? { startupTimeoutMs: options.providerStartupTimeoutMs }
        : {}),
    });
    identities.set(name, launched.identity);
    return launched;
  };

  /** The built-in source forms: an executable to launch, a manifest of one, or an address to dial. */
  const fromSource = async (name: string, entry: RuntimeProviderConfig): Promise<RuntimeProvider> => {
    const source = entry.source!;
    const at = `runtime.providers.${name}.source`;
    if (typeof source === "object" && typeof source.command === "string") {
      return launch(name, entry, source.command, (source.args as string[] | undefined) ?? []);
    }
    if (typeof source === "object" && typeof source.path === "string") {
      const { command, args } = await readRuntimeManifest(source.path, `${at}.path`);
      return launch(name, entry, command, args);
    }
    const address = typeof source === "string" ? source : source.address;
    if (typeof address !== "string" || address === "") {
      throw new InvalidSpecError(
        [
          {
            path: at,
            message:
              "is not a provider address, { command } or { path }; pass createPluginHost({ resolveSource }) to load it",
          },
        ],
        { subject: "gestalt config" },
      );
    }
    const dialled = grpcRuntimeProvider(address);
    try {
      const identity = await handshakeRuntimeProvider(dialled.lifecycle, {
        name,
        config: entry.config,
        callTimeoutMs: callTimeout,
      }).catch((error: unknown) => {
        // A provider of the specified revision predates ProviderLifecycle: it has no identity to check.
        if ((error as { unimplemented?: boolean }).unimplemented) return undefined;
        throw error;
      });
      if (identity) identities.set(name, identity);
    } catch (error) {
      await dialled.close();
      throw error;
    }
    return dialled;
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
          // As gestaltd: the kind of the placed provider (plugin or agent) and its name.
          metadata: { ...runtime?.metadata, provider_kind: kind, provider_name: name },
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

    // A provider of the specified revision binds host services; a current one has no
    // BindHostService (it answers UNIMPLEMENTED) and gets the bindings in StartPlugin's env.
    for (const binding of p.bindHostService ? plan.bindings : []) {
      try {
        await p.bindHostService!(
          { sessionId, envVar: binding.envVar, relay: { dialTarget: binding.dialTarget } },
          { signal: withTimeout(callTimeout, start.signal) },
        );
      } catch (error) {
        if ((error as { unimplemented?: boolean }).unimplemented && binding === plan.bindings[0]) break;
        await abandon("bind", `bind host service ${JSON.stringify(binding.service)}`, error);
      }
    }

    const env: Record<string, string> = {
      ...entry.env,
      ...start.env,
      ...Object.fromEntries(plan.bindings.map((b) => [b.envVar, b.dialTarget])),
      ...plan.egressEnv,
      [PROVIDER_ENV.sessionId]: sessionId,
    };
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

    // A plugin (not an agent) is an integration provider to gestaltd: tell it to start.
    let metadata: IntegrationMetadata | undefined;
    if (kind === "plugin") {
      try {
        metadata = await startIntegrationProvider(channel, {
          name,
          config: entry.config,
          timeoutMs: callTimeout,
          ...(start.signal ? { signal: start.signal } : {}),
        });
      } catch (error) {
        channel.close();
        return abandon("start-provider", "start integration provider", error);
      }
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
      ...(metadata ? { metadata } : {}),
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
            const identity = identities.get(name);
            if (identity) view.identity = identity;
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
  metadata?: IntegrationMetadata;
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
  readonly metadata?: IntegrationMetadata;
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
    if (init.metadata) this.metadata = init.metadata;
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
