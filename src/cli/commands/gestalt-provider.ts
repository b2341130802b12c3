/**
 * `runtime-kernel gestalt-provider`: a runtime provider that gestaltd launches as it is
 * (a `kind: runtime` provider). It serves `ProviderLifecycle` and `PluginRuntimeProvider`
 * on `GESTALT_PLUGIN_SOCKET`; ConfigureProvider's config chooses the backend (process,
 * Docker or Kubernetes) and the kernel profiles; sessions' and plugins' logs go to
 * `GESTALT_RUNTIME_LOG_SOCKET`. It exits when its parent (`GESTALT_PLUGIN_PARENT_PID`) is
 * gone, and on SIGTERM stops every session and exits within 2 s, leaving nothing running.
 * @module
 */
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  grpcRuntimeLogHost,
  type KernelRuntimeProvider,
  kernelRuntimeProvider,
  PROVIDER_ENV,
  type RuntimeProvider,
  RuntimeProviderError,
  safeBaseEnv,
  serveRuntimeProvider,
} from "../../gestalt/index.js";
import { type Backend, createRuntimeKernel, type RuntimeKernel } from "../../index.js";
import { loadBackend } from "../backends.js";
import { type CliIo, type Command, type CommandContext, stringOption, UsageError } from "../command.js";
import { type GestaltProviderConfig, parseGestaltProviderConfig } from "../gestalt-provider-config.js";
import { version } from "../version.js";

/** What one ConfigureProvider built: the backend, the kernel on it, the provider over the kernel. */
interface Configured {
  text: string;
  config: GestaltProviderConfig;
  backend: Backend;
  kernel: RuntimeKernel;
  provider: KernelRuntimeProvider;
}

/** How often the parent is checked, as upstream's SDKs check theirs. */
const PARENT_CHECK_MS = 500;
/** Grace of each plugin when the provider itself is told to stop: all must be gone within 2 s. */
const SHUTDOWN_GRACE_MS = 1_000;

/** Ends this provider's own sessions of an earlier run: their folders, left by a provider that died. */
async function removeStaleSessionFolders(root: string): Promise<void> {
  const entries = await readdir(root).catch(() => [] as string[]);
  await Promise.all(
    entries
      .filter((e) => e.startsWith("gestalt-"))
      .map((e) => rm(join(root, e), { recursive: true, force: true })),
  );
}

async function configure(
  name: string,
  text: string,
  config: GestaltProviderConfig,
  env: NodeJS.ProcessEnv,
  logHost: ReturnType<typeof grpcRuntimeLogHost> | undefined,
): Promise<Configured> {
  const backend = await loadBackend(config.backend.type, config.backend.options, {
    kernelId: config.kernelId,
    env,
  });
  const kernel = createRuntimeKernel({ backend, profiles: config.profiles, kernelId: config.kernelId });
  // Workloads of this kernel id that a provider before this one left behind belong to sessions
  // nobody knows any more: reclaim them.
  if (backend.discover) {
    await kernel.recover();
    await Promise.all(kernel.list().map((w) => kernel.destroy(w.workloadId, { graceMs: 0 }).catch(() => {})));
  }
  await removeStaleSessionFolders(config.sessionRoot);
  const provider = kernelRuntimeProvider(kernel, {
    name,
    profile: config.profile,
    sessionRoot: config.sessionRoot,
    ...(config.mountPath ? { mountPath: config.mountPath } : {}),
    socket: config.socket,
    // Its host launched it, so on the process backend the plugins run on the host's own
    // machine and reach its services directly; in a container or a Pod they do not.
    support: {
      canHostPlugins: true,
      hostServiceAccess: config.backend.type === "process" ? "direct" : "none",
      egressMode: config.egressMode,
    },
    graceMs: config.graceMs,
    ...(config.readyTimeoutMs ? { readyTimeoutMs: config.readyTimeoutMs } : {}),
    prepareWorkspace: config.prepareWorkspace,
    pluginParentPid: config.pluginParentPid,
    ...(logHost ? { logHost } : {}),
    ...(config.backend.type === "process"
      ? { baseEnv: safeBaseEnv(env), ...(config.egressMode === "hostname" ? { egressProxy: true } : {}) }
      : {}),
    ...(config.backend.type === "docker"
      ? {
          sessionRunnable: (s) =>
            s.imagePullAuth
              ? { docker: { imagePullAuth: s.imagePullAuth, pullPolicy: "if-not-present" } }
              : {},
        }
      : {}),
  });
  return { text, config, backend, kernel, provider };
}

/** What gestaltd tells a runtime provider it launches, through the environment (or --socket). */
function launchEnvironment(context: CommandContext) {
  const { io } = context;
  const socket = stringOption(context, "socket") ?? io.env[PROVIDER_ENV.socket];
  if (!socket) {
    throw new UsageError(
      `${PROVIDER_ENV.socket} is not set: gestaltd sets it when it launches a runtime provider (or pass --socket)`,
      "gestalt-provider",
    );
  }
  const logSocket = io.env[PROVIDER_ENV.logSocket];
  return {
    socket,
    name: io.env[PROVIDER_ENV.name] || "runtime-kernel",
    parentPid: Number(io.env[PROVIDER_ENV.parentPid] ?? ""),
    logHost: logSocket
      ? grpcRuntimeLogHost(logSocket, { relayToken: io.env[PROVIDER_ENV.logSocketToken] })
      : undefined,
  };
}

/**
 * The kernel provider, served from the start but built by the first ConfigureProvider: a
 * runtime call before it is refused, and a second, different config too (the same one again
 * is a no-op).
 */
class ConfiguredOnce {
  #configured: Configured | undefined;
  #configuring: Promise<Configured> | undefined;
  readonly #name: string;
  readonly #env: NodeJS.ProcessEnv;
  readonly #logHost: ReturnType<typeof grpcRuntimeLogHost> | undefined;

  constructor(
    name: string,
    env: NodeJS.ProcessEnv,
    logHost: ReturnType<typeof grpcRuntimeLogHost> | undefined,
  ) {
    this.#name = name;
    this.#env = env;
    this.#logHost = logHost;
  }

  /** The runtime calls, each handed to the configured provider. */
  readonly provider: RuntimeProvider = {
    getSupport: (o) => this.#active("GetSupport").getSupport(o),
    startSession: (r, o) => this.#active("StartSession").startSession(r, o),
    getSession: (r, o) => this.#active("GetSession").getSession(r, o),
    listSessions: (o) => this.#active("ListSessions").listSessions!(o),
    stopSession: (r, o) => this.#active("StopSession").stopSession(r, o),
    prepareWorkspace: (r, o) => this.#active("PrepareWorkspace").prepareWorkspace(r, o),
    removeWorkspace: (r, o) => this.#active("RemoveWorkspace").removeWorkspace(r, o),
    bindHostService: (r, o) => this.#active("BindHostService").bindHostService(r, o),
    startPlugin: (r, o) => this.#active("StartPlugin").startPlugin(r, o),
  };

  /** The configured backend's type, for the provider's description. */
  get backendType(): string | undefined {
    return this.#configured?.config.backend.type;
  }

  /** ConfigureProvider: builds the backend, the kernel and the provider; resolves with the config, or undefined when it was applied already. */
  async configure(request: { config: Record<string, unknown> }): Promise<GestaltProviderConfig | undefined> {
    const name = this.#name;
    const config = parseGestaltProviderConfig(request.config, name);
    const text = JSON.stringify(config);
    if (this.#configured || this.#configuring) {
      const current = await this.#configuring!;
      if (current.text === text) return undefined;
      throw new RuntimeProviderError(
        "WORKLOAD_CONFLICT",
        "ConfigureProvider",
        `runtime provider "${name}" is already configured differently; restart it to change its config`,
      );
    }
    this.#configuring = configure(name, text, config, this.#env, this.#logHost);
    try {
      this.#configured = await this.#configuring;
    } catch (error) {
      this.#configuring = undefined;
      throw error;
    }
    return config;
  }

  /** Ready once configured. */
  async healthCheck(): Promise<{ ready: boolean; message?: string }> {
    return this.#configured ? { ready: true } : { ready: false, message: "not configured yet" };
  }

  /** Stops every session, the process backend's supervisor (this provider owns it) and the kernel. */
  async stopAll(onError: (error: Error) => void): Promise<void> {
    if (!this.#configuring) return;
    const { provider, kernel, backend } = await this.#configuring.catch(() => ({}) as Partial<Configured>);
    await provider?.stopAllSessions({ graceMs: SHUTDOWN_GRACE_MS }).catch((error: unknown) => {
      onError(error as Error);
    });
    // The process backend's supervisor outlives its clients by design; this provider owns it.
    const supervised = backend as { stopSupervisor?: (o: { force: boolean }) => Promise<void> } | undefined;
    await supervised?.stopSupervisor?.({ force: true }).catch(() => {});
    await kernel?.shutdown({ graceMs: 0 }).catch(() => {});
  }

  #active(method: string): KernelRuntimeProvider {
    if (!this.#configured) {
      throw new RuntimeProviderError(
        "WORKLOAD_CONFLICT",
        method,
        `runtime provider "${this.#name}" is not configured yet: ConfigureProvider comes first`,
      );
    }
    return this.#configured.provider;
  }
}

/** Resolves with why to stop: a signal, or the parent gestaltd gone (checked as upstream's SDKs do). */
async function untilTold(io: CliIo, parentPid: number): Promise<string> {
  let stop: (why: string) => void = () => {};
  const reason = new Promise<string>((resolve) => {
    stop = resolve;
  });
  const removeSignal = io.onSignal((signal) => stop(signal));
  // Upstream's SDKs watch their parent the same way: a provider whose host died must not linger.
  const watch =
    Number.isInteger(parentPid) && parentPid > 0
      ? setInterval(() => {
          if (process.ppid !== parentPid) stop(`its parent (pid ${parentPid}) is gone`);
        }, PARENT_CHECK_MS)
      : undefined;
  // Keep the process alive while serving: the backends may hold only unref'd handles.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const why = await reason;
  removeSignal();
  clearInterval(keepAlive);
  if (watch) clearInterval(watch);
  return why;
}

/** `runtime-kernel gestalt-provider`. */
export const gestaltProviderCommand: Command = {
  name: "gestalt-provider",
  summary: "serve a kernel as a gestaltd runtime provider (gestaltd launches it)",
  usage: "gestalt-provider [options]",
  description: [
    "Runs as a Gestalt runtime provider, the way gestaltd launches one (runtime.providers.<name>",
    `with a kind: runtime manifest): it serves on $${PROVIDER_ENV.socket}, takes its backend and`,
    "profiles from ConfigureProvider's config, sends session logs to $GESTALT_RUNTIME_LOG_SOCKET,",
    `exits when the process $${PROVIDER_ENV.parentPid} names is no longer its parent, and on SIGTERM`,
    "stops every session and exits within 2 s. See docs/gestalt.md.",
  ].join("\n"),
  options: {
    socket: {
      type: "string",
      value: "PATH",
      description: `listen on this unix socket (default: $${PROVIDER_ENV.socket}, which gestaltd sets)`,
    },
  },
  examples: ["GESTALT_PLUGIN_SOCKET=/tmp/p/plugin.sock runtime-kernel gestalt-provider"],
  async run(context) {
    const { io, err, note } = context;
    if (context.positionals.length > 0) {
      throw new UsageError(
        `gestalt-provider takes no arguments (got "${context.positionals.join(" ")}")`,
        "gestalt-provider",
      );
    }
    const { socket, name, parentPid, logHost } = launchEnvironment(context);
    const slot = new ConfiguredOnce(name, io.env, logHost);
    const endpoint = await serveRuntimeProvider(slot.provider, `unix://${socket}`, {
      shutdownGraceMs: 250,
      lifecycle: {
        identity: () => ({
          name,
          displayName: "runtime-kernel",
          description: `runtime-kernel on the ${slot.backendType ?? "(not yet configured)"} backend`,
          version: version(),
        }),
        async configure(request) {
          const config = await slot.configure(request);
          if (config === undefined) return;
          note(
            err.dim(
              `runtime-kernel gestalt-provider "${name}": backend ${config.backend.type}, kernel ${config.kernelId}, sessions in ${config.sessionRoot}`,
            ),
          );
        },
        healthCheck: () => slot.healthCheck(),
      },
    });
    note(
      `${err.green("●")} runtime-kernel gestalt-provider "${name}" serving on ${endpoint.address} (pid ${process.pid})`,
    );
    const why = await untilTold(io, parentPid);
    note(err.yellow(`${why}: stopping every session`));
    await endpoint.close();
    await slot.stopAll((error) => note(err.red(`stopping the sessions: ${error.message}`)));
    await logHost?.close();
    return 0;
  },
};
