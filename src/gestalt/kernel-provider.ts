/**
 * `kernelRuntimeProvider`: any kernel backend (processes, Docker, Kubernetes) as a runtime
 * provider. One kernel workload per plugin; a session is a private host folder that the
 * workload gets as its workspace; the session's state is the workload's lifecycle.
 *
 * The plugin's socket reaches the host one of two ways:
 * - `shared-folder` (default): the plugin listens on `<session folder>/plugin.sock`, told by
 *   `GESTALT_PLUGIN_SOCKET` (the path inside the workload, `mountPath` + `/plugin.sock`), and
 *   the host dials `unix://<host path>`. Works wherever the workspace is a bind mount of a
 *   host folder on the same kernel (the process backend, Docker).
 * - `port`: the plugin listens on TCP `GESTALT_PLUGIN_PORT` and the host dials
 *   `tcp://<the port the backend published>` (`WorkloadStatus.ports[name]`).
 *
 * Agent workspaces (`prepareWorkspace`) live in the session folder too, so the plugin sees
 * them through the same mount. `GESTALT_PLUGIN_PARENT_PID` is set only to the pid the plugin
 * really sees as its parent (upstream SDK plugins stop serving when `getppid()` differs):
 * on the process backend that is the backend's supervisor, elsewhere it is left unset unless
 * `pluginParentPid` says otherwise.
 *
 * Its sessions and how a plugin starts in one (named steps around the `wait` module) live in
 * `kernel-session.ts`; this module owns the provider's options and its methods.
 * @module
 */
import type { Runnable, RuntimeKernel, WorkloadStatus } from "../index.js";
import { startPluginInSession } from "./kernel-plugin-start.js";
import {
  bindSessionService,
  openSession,
  type ProviderState,
  prepareSessionWorkspace,
  type SessionRecord,
  sessionView,
  stopSessionRecord,
} from "./kernel-session.js";
import {
  type HostedPluginInfo,
  type PreparedWorkspace,
  type ProviderCallOptions,
  type RuntimeLogHost,
  type RuntimeProvider,
  type RuntimeSession,
  type RuntimeSupport,
  type StartPluginRequest,
  type StartSessionRequest,
  sessionNotFound,
} from "./provider.js";
import { gitAvailable, removeWorkspace } from "./workspace.js";

/** The kernel methods a kernel-backed provider uses (a `RuntimeKernel` has them all). */
export type ProviderKernel = Pick<RuntimeKernel, "create" | "get" | "destroy" | "waitFor" | "logs">;

/** The name of the kernel profile that plugin workloads use unless told otherwise. */
export const GESTALT_PLUGIN_PROFILE = "gestalt-plugin";

/** How the plugin's gRPC endpoint reaches the host. */
export type PluginSocketMode =
  | {
      kind: "shared-folder";
      /** Where the session folder appears inside the workload. Default: the same path as on the host. */
      mountPath?: string;
    }
  | {
      kind: "port";
      /** The port the plugin listens on inside the workload (`GESTALT_PLUGIN_PORT`). */
      port: number;
      /** The name under which the backend reports the published port in `ports`. Default `grpc`. */
      name?: string;
    };

/** Options of {@link kernelRuntimeProvider}. */
export interface KernelRuntimeProviderOptions {
  /** Shown in messages and errors. Default: the kernel backend's name. */
  name?: string;
  /** The kernel profile of plugin workloads, unless a session names one as its `template`. Default `gestalt-plugin`. */
  profile?: string;
  /** What the provider advertises. Default: can host, host-service access none, egress none. */
  support?: Partial<RuntimeSupport>;
  /** Default `{ kind: "shared-folder" }`. */
  socket?: PluginSocketMode;
  /** Environment every plugin starts with (before bindings and the request's env). */
  baseEnv?: Record<string, string>;
  /** Backend-specific runnable fields merged into every plugin workload (the command and image come from the request). */
  runnable?: Partial<Runnable>;
  /** Owner of the plugin workloads (kernel quotas count per owner). */
  owner?: string;
  /** Where session folders are created (made, mode 0700, if missing). Default: the OS temp dir. */
  sessionRoot?: string;
  /**
   * Where the session folder appears inside the workload, for the paths the plugin is told
   * (its socket, its agent workspaces). Default: `socket.mountPath`, else the same path as
   * on the host (the process backend).
   */
  mountPath?: string;
  /**
   * Whether `prepareWorkspace` is offered (and `supportsPrepareWorkspace` advertised).
   * Default: when the system `git` runs. The workload must see the session folder (it is
   * its workspace on every backend) and be able to write what this process creates there.
   */
  prepareWorkspace?: boolean;
  /**
   * What `GESTALT_PLUGIN_PARENT_PID` says: the pid the plugin sees as its parent (`getppid()`),
   * or `false` to leave it unset. Default: the supervisor's pid on the process backend (the
   * parent of every workload there), unset on any other backend. A Docker container with
   * an init (the Docker backend's default) sees the init as its parent: pass `1`.
   */
  pluginParentPid?: number | false | (() => Promise<number | undefined>);
  /** How long `startPlugin` waits for the plugin to listen. Default 30,000 ms. */
  readyTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL when a session stops. Default 2,000 ms. */
  graceMs?: number;
  /** Where to append the plugins' output, line by line. */
  logHost?: RuntimeLogHost;
  /**
   * Enforce hostname egress with a local HTTP proxy (HTTP_PROXY / HTTPS_PROXY), listening on
   * `host` (default 127.0.0.1) and advertised to the plugin as `advertiseHost` (default: `host`).
   * Only useful where the plugin can reach that address.
   */
  egressProxy?: boolean | { host?: string; advertiseHost?: string };
  /** How many lines of the plugin's output to quote in a start error. Default 20. */
  logTailLines?: number;
  /**
   * Backend-specific runnable fields derived from the session request, for example the
   * Docker backend's pull credentials:
   * `(s) => (s.imagePullAuth ? { docker: { imagePullAuth: s.imagePullAuth, pullPolicy: "if-not-present" } } : {})`.
   */
  sessionRunnable?(session: StartSessionRequest): Partial<Runnable>;
}

/** A provider over a kernel: a {@link RuntimeProvider} that can also stop everything it runs. */
export interface KernelRuntimeProvider extends RuntimeProvider {
  prepareWorkspace: NonNullable<RuntimeProvider["prepareWorkspace"]>;
  removeWorkspace: NonNullable<RuntimeProvider["removeWorkspace"]>;
  bindHostService: NonNullable<RuntimeProvider["bindHostService"]>;
  /**
   * Stops every session (a provider shutting down). `graceMs` (default: the provider's)
   * bounds each plugin's SIGTERM before SIGKILL.
   */
  stopAllSessions(options?: { graceMs?: number }): Promise<void>;
}

/** The session state a workload's status maps to. */
export function sessionStateOf(status: WorkloadStatus | undefined): {
  state: RuntimeSession["state"];
  reason?: string;
  message?: string;
} {
  if (!status) return { state: "ready" };
  switch (status.state) {
    case "starting":
      return { state: "pending" };
    case "running":
      return { state: "running" };
    default: {
      const reason = status.state === "stopping" ? "stopping" : (status.stopReason ?? "stopped");
      const failed = ["failed", "oom", "lost", "start_failed"].includes(status.stopReason ?? "");
      const exit =
        status.exitCode !== undefined
          ? `exit code ${status.exitCode}${status.signal ? ` (${status.signal})` : ""}`
          : "";
      const message = status.error?.message ?? exit;
      return { state: failed ? "failed" : "stopped", reason, ...(message ? { message } : {}) };
    }
  }
}

/**
 * The default of `pluginParentPid`: on the process backend, whose supervisor spawns (and so
 * parents) every workload, the supervisor's pid; elsewhere nothing the provider can know.
 */
function defaultParentPid(kernel: ProviderKernel): () => Promise<number | undefined> {
  const backend = (
    kernel as { backend?: { name?: string; supervisorStats?: () => Promise<{ pid: number }> } }
  ).backend;
  if (backend?.name === "process" && typeof backend.supervisorStats === "function") {
    const stats = backend.supervisorStats.bind(backend);
    return async () => (await stats()).pid;
  }
  return async () => undefined;
}

/**
 * Turns a kernel (and so any backend: processes, Docker, Kubernetes) into a
 * {@link RuntimeProvider}. The session's `image` becomes the workload's image and its
 * `template` the kernel profile; the plugin's socket reaches the host through the shared
 * session folder or a published port.
 *
 * @example
 * ```ts
 * const kernel = createRuntimeKernel({
 *   backend: new DockerBackend({ socketPath }),
 *   profiles: { "gestalt-plugin": { runnable: {} } },
 * });
 * const provider = kernelRuntimeProvider(kernel, { name: "docker", socket: { kind: "shared-folder", mountPath: "/workspace" } });
 * ```
 */
export function kernelRuntimeProvider(
  kernel: ProviderKernel,
  options: KernelRuntimeProviderOptions = {},
): KernelRuntimeProvider {
  const kernelName = (kernel as { backend?: { name?: string } }).backend?.name;
  const name = options.name ?? kernelName ?? "kernel";
  const support: RuntimeSupport = {
    canHostPlugins: true,
    hostServiceAccess: "none",
    egressMode: "none",
    ...options.support,
  };
  const socketMode: PluginSocketMode = options.socket ?? { kind: "shared-folder" };
  const mountPath = (
    options.mountPath ?? (socketMode.kind === "shared-folder" ? socketMode.mountPath : undefined)
  )?.replace(/\/+$/, "");
  const insideDir = (s: SessionRecord) => mountPath ?? s.dir;
  const workspaces = (): Promise<boolean> =>
    options.prepareWorkspace === undefined ? gitAvailable() : Promise.resolve(options.prepareWorkspace);
  const parentPid =
    options.pluginParentPid === false
      ? async () => undefined
      : typeof options.pluginParentPid === "number"
        ? async () => options.pluginParentPid as number
        : (options.pluginParentPid ?? defaultParentPid(kernel));
  const graceMs = options.graceMs ?? 2_000;
  const readyTimeoutMs = options.readyTimeoutMs ?? 30_000;
  const sessions = new Map<string, SessionRecord>();

  const state: ProviderState = {
    kernel,
    options,
    name,
    socketMode,
    insideDir,
    parentPid,
    graceMs,
    readyTimeoutMs,
    tailLines: options.logTailLines ?? 20,
    sessions,
  };

  const find = (method: string, sessionId: string): SessionRecord => {
    const session = sessions.get(sessionId);
    if (!session) throw sessionNotFound(method, sessionId);
    return session;
  };

  return {
    async getSupport() {
      return {
        ...support,
        supportsPrepareWorkspace: support.supportsPrepareWorkspace ?? (await workspaces()),
      };
    },

    startSession(request: StartSessionRequest) {
      return openSession(state, request);
    },

    async getSession({ sessionId }) {
      return sessionView(state, find("GetSession", sessionId));
    },

    async listSessions() {
      // Live sessions only: a stopped one still answers GetSession for a while.
      return [...sessions.values()].filter((s) => s.state !== "stopped").map((s) => sessionView(state, s));
    },

    async stopSession({ sessionId }) {
      const session = sessions.get(sessionId);
      if (!session) return;
      session.stopped ??= stopSessionRecord(state, session);
      await session.stopped;
    },

    async bindHostService(request) {
      return bindSessionService(find("BindHostService", request.sessionId), request);
    },

    async prepareWorkspace(request, callOptions = {}): Promise<PreparedWorkspace> {
      return prepareSessionWorkspace(state, await workspaces(), request, callOptions.signal);
    },

    async removeWorkspace(request) {
      const session = find("RemoveWorkspace", request.sessionId);
      await removeWorkspace(session.dir, request.agentSessionId);
      session.forward?.push("runtime", `workspace of agent session ${request.agentSessionId} removed`);
    },

    startPlugin(
      request: StartPluginRequest,
      callOptions: ProviderCallOptions = {},
    ): Promise<HostedPluginInfo> {
      return startPluginInSession(state, find("StartPlugin", request.sessionId), request, callOptions);
    },

    async stopAllSessions(stopOptions = {}) {
      const results = await Promise.allSettled(
        [...sessions.values()].map((session) => {
          session.stopped ??= stopSessionRecord(state, session, stopOptions.graceMs);
          return session.stopped;
        }),
      );
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
    },

    async close() {
      // Sessions outlive the provider object on purpose: the host stops them.
    },
  };
}
