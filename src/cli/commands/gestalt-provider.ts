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
import { type Command, stringOption, UsageError } from "../command.js";
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
    ...(config.prepareWorkspace !== undefined ? { prepareWorkspace: config.prepareWorkspace } : {}),
    ...(config.pluginParentPid !== undefined ? { pluginParentPid: config.pluginParentPid } : {}),
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
    const socket = stringOption(context, "socket") ?? io.env[PROVIDER_ENV.socket];
    if (!socket) {
      throw new UsageError(
        `${PROVIDER_ENV.socket} is not set: gestaltd sets it when it launches a runtime provider (or pass --socket)`,
        "gestalt-provider",
      );
    }
    const name = io.env[PROVIDER_ENV.name] || "runtime-kernel";
    const parentPid = Number(io.env[PROVIDER_ENV.parentPid] ?? "");
    const logSocket = io.env[PROVIDER_ENV.logSocket];
    const logHost = logSocket
      ? grpcRuntimeLogHost(logSocket, { relayToken: io.env[PROVIDER_ENV.logSocketToken] })
      : undefined;

    let configured: Configured | undefined;
    let configuring: Promise<Configured> | undefined;
    const active = (method: string): KernelRuntimeProvider => {
      if (!configured) {
        throw new RuntimeProviderError(
          "WORKLOAD_CONFLICT",
          method,
          `runtime provider "${name}" is not configured yet: ConfigureProvider comes first`,
        );
      }
      return configured.provider;
    };
    // Served from the start; a runtime call before ConfigureProvider has built the kernel is refused.
    const provider: RuntimeProvider = {
      getSupport: (o) => active("GetSupport").getSupport(o),
      startSession: (r, o) => active("StartSession").startSession(r, o),
      getSession: (r, o) => active("GetSession").getSession(r, o),
      listSessions: (o) => active("ListSessions").listSessions!(o),
      stopSession: (r, o) => active("StopSession").stopSession(r, o),
      prepareWorkspace: (r, o) => active("PrepareWorkspace").prepareWorkspace(r, o),
      removeWorkspace: (r, o) => active("RemoveWorkspace").removeWorkspace(r, o),
      bindHostService: (r, o) => active("BindHostService").bindHostService(r, o),
      startPlugin: (r, o) => active("StartPlugin").startPlugin(r, o),
    };

    const endpoint = await serveRuntimeProvider(provider, `unix://${socket}`, {
      shutdownGraceMs: 250,
      lifecycle: {
        identity: () => ({
          name,
          displayName: "runtime-kernel",
          description: `runtime-kernel on the ${configured?.config.backend.type ?? "(not yet configured)"} backend`,
          version: version(),
        }),
        async configure(request) {
          const config = parseGestaltProviderConfig(request.config, name);
          const text = JSON.stringify(config);
          if (configured || configuring) {
            const current = await configuring!;
            if (current.text === text) return;
            throw new RuntimeProviderError(
              "WORKLOAD_CONFLICT",
              "ConfigureProvider",
              `runtime provider "${name}" is already configured differently; restart it to change its config`,
            );
          }
          configuring = configure(name, text, config, io.env, logHost);
          try {
            configured = await configuring;
          } catch (error) {
            configuring = undefined;
            throw error;
          }
          note(
            err.dim(
              `runtime-kernel gestalt-provider "${name}": backend ${config.backend.type}, kernel ${config.kernelId}, sessions in ${config.sessionRoot}`,
            ),
          );
        },
        async healthCheck() {
          return configured ? { ready: true } : { ready: false, message: "not configured yet" };
        },
      },
    });
    note(
      `${err.green("●")} runtime-kernel gestalt-provider "${name}" serving on ${endpoint.address} (pid ${process.pid})`,
    );

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
    note(err.yellow(`${why}: stopping every session`));
    await endpoint.close();
    if (configuring) {
      const { provider, kernel, backend } = await configuring.catch(() => ({}) as Partial<Configured>);
      await provider?.stopAllSessions({ graceMs: SHUTDOWN_GRACE_MS }).catch((error: unknown) => {
        note(err.red(`stopping the sessions: ${(error as Error).message}`));
      });
      // The process backend's supervisor outlives its clients by design; this provider owns it.
      const supervised = backend as { stopSupervisor?: (o: { force: boolean }) => Promise<void> } | undefined;
      await supervised?.stopSupervisor?.({ force: true }).catch(() => {});
      await kernel?.shutdown({ graceMs: 0 }).catch(() => {});
    }
    await logHost?.close();
    return 0;
  },
};
