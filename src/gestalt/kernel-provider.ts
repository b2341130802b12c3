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
 * @module
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isRuntimeKernelError } from "../errors.js";
import type { LogEntry, Runnable, RuntimeKernel, WorkloadStatus } from "../index.js";
import { createEgressProxy, type EgressProxy } from "./egress.js";
import {
  type HostedPluginInfo,
  type HostServiceBinding,
  type PreparedWorkspace,
  type ProviderCallOptions,
  type RuntimeLogEntry,
  type RuntimeLogHost,
  type RuntimeProvider,
  RuntimeProviderError,
  type RuntimeSession,
  type RuntimeSupport,
  type StartPluginRequest,
  type StartSessionRequest,
  sessionNotFound,
} from "./provider.js";
import { waitForSocket, waitForTcp } from "./wait.js";
import { gitAvailable, prepareWorkspace, removeWorkspace } from "./workspace.js";

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

interface SessionRecord {
  id: string;
  pluginName: string;
  metadata: Record<string, string>;
  image?: string;
  /** The request as given (it may hold pull credentials: never shown). */
  request: StartSessionRequest;
  profile: string;
  dir: string;
  startedAt: Date;
  bindings: HostServiceBinding[];
  state: "ready" | "starting" | "started" | "stopping" | "stopped";
  workloadId?: string;
  /** The workload's last status, kept for when the kernel has reaped it. */
  last?: WorkloadStatus;
  failure?: string;
  proxy?: EgressProxy;
  logs: string[];
  pump?: AbortController;
  /** Where this session's lines go, when the provider has a log host. */
  forward?: LogForwarder;
  stopped?: Promise<void>;
}

const SOCKET_NAME = "plugin.sock";
const MAX_STOPPED_SESSIONS = 256;

function slug(name: string, max: number): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return s.slice(0, max).replace(/-+$/, "") || "plugin";
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

/** Appends lines to a log host in order, batching whatever arrives while a call is in flight. */
class LogForwarder {
  #queue: RuntimeLogEntry[] = [];
  #busy = false;
  #seq = 0;
  constructor(
    private readonly host: RuntimeLogHost,
    private readonly sessionId: string,
  ) {}
  push(stream: RuntimeLogEntry["stream"], message: string, at?: number): void {
    this.#queue.push({ stream, message, observedAt: new Date(at ?? Date.now()), sourceSeq: ++this.#seq });
    if (!this.#busy) void this.#flush();
  }
  async #flush(): Promise<void> {
    this.#busy = true;
    while (this.#queue.length) {
      const logs = this.#queue.splice(0, 500);
      // A log host that cannot take the lines must not break the plugin: drop them.
      await this.host.appendLogs({ sessionId: this.sessionId, logs }).catch(() => {});
    }
    this.#busy = false;
  }
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
  const tailLines = options.logTailLines ?? 20;
  const sessions = new Map<string, SessionRecord>();

  const find = (method: string, sessionId: string): SessionRecord => {
    const session = sessions.get(sessionId);
    if (!session) throw sessionNotFound(method, sessionId);
    return session;
  };

  const view = (s: SessionRecord): RuntimeSession => {
    const lifecycle = { startedAt: s.startedAt };
    const base = { id: s.id, metadata: { ...s.metadata }, lifecycle };
    if (s.state === "stopped" || s.state === "stopping") {
      const mapped = s.last ? sessionStateOf(s.last) : undefined;
      const failed = s.failure !== undefined || mapped?.state === "failed";
      return {
        ...base,
        state: failed ? "failed" : "stopped",
        stateReason: s.state === "stopping" ? "stopping" : (mapped?.reason ?? "stopped"),
        ...(s.failure
          ? { stateMessage: s.failure }
          : mapped?.message
            ? { stateMessage: mapped.message }
            : {}),
      };
    }
    if (s.state === "ready") return { ...base, state: "ready" };
    if (s.state === "starting") return { ...base, state: "pending", stateReason: "starting plugin" };
    const status = (s.workloadId ? kernel.get(s.workloadId) : undefined) ?? s.last;
    if (status) s.last = status;
    const mapped = sessionStateOf(status);
    if (s.failure) {
      return { ...base, state: "failed", stateReason: "start_failed", stateMessage: s.failure };
    }
    return {
      ...base,
      state: mapped.state,
      ...(mapped.reason ? { stateReason: mapped.reason } : {}),
      ...(mapped.message ? { stateMessage: mapped.message } : {}),
      ...(status?.maxLifetimeDeadline
        ? { lifecycle: { ...lifecycle, expiresAt: new Date(status.maxLifetimeDeadline) } }
        : {}),
    };
  };

  const pumpLogs = (s: SessionRecord, workloadId: string) => {
    const controller = new AbortController();
    s.pump = controller;
    const forward = s.forward;
    void (async () => {
      try {
        for await (const entry of kernel.logs(workloadId, {
          follow: true,
          signal: controller.signal,
        }) as AsyncIterable<LogEntry>) {
          s.logs.push(entry.line);
          if (s.logs.length > tailLines) s.logs.shift();
          forward?.push(entry.stream, entry.line, entry.at);
        }
      } catch {
        // No logs from this backend, or the stream ended with the workload: nothing to forward.
      }
    })();
  };

  const logTail = async (s: SessionRecord): Promise<string[]> => {
    if (s.workloadId) {
      try {
        const lines: string[] = [];
        for await (const entry of kernel.logs(s.workloadId, { tail: tailLines }) as AsyncIterable<LogEntry>) {
          lines.push(entry.line);
        }
        if (lines.length) return lines.slice(-tailLines);
      } catch {
        // Fall back to what the pump saw.
      }
    }
    return [...s.logs];
  };

  const startFailure = async (
    s: SessionRecord,
    message: string,
    cause?: unknown,
  ): Promise<RuntimeProviderError> => {
    // The workload exists: from now on the session's state is the workload's (or failed).
    s.state = "started";
    const tail = await logTail(s);
    s.failure = message;
    s.forward?.push("runtime", message);
    return new RuntimeProviderError("START_FAILED", "StartPlugin", message, { cause, logTail: tail });
  };

  const stop = async (s: SessionRecord, grace = graceMs): Promise<void> => {
    s.state = "stopping";
    s.pump?.abort();
    const errors: unknown[] = [];
    if (s.workloadId) {
      await kernel.destroy(s.workloadId, { graceMs: grace }).catch((error: unknown) => {
        if (!isRuntimeKernelError(error, "WORKLOAD_NOT_FOUND")) errors.push(error);
      });
    }
    await s.proxy?.close();
    await rm(s.dir, { recursive: true, force: true }).catch((error: unknown) => errors.push(error));
    s.state = "stopped";
    s.forward?.push("runtime", `session ${s.id} stopped`);
    // Bound the memory of stopped sessions: GetSession of a recent one still says "stopped".
    const stopped = [...sessions.values()].filter((x) => x.state === "stopped");
    for (const old of stopped.slice(0, Math.max(0, stopped.length - MAX_STOPPED_SESSIONS)))
      sessions.delete(old.id);
    if (errors.length) {
      throw new RuntimeProviderError(
        "CLEANUP_FAILED",
        "StopSession",
        `stopping session "${s.id}" left something behind: ${errors.map((e) => (e instanceof Error ? e.message : String(e))).join("; ")}`,
        { cause: errors[0] },
      );
    }
  };

  const sessionDir = async (): Promise<string> => {
    const root = options.sessionRoot ?? tmpdir();
    try {
      await mkdir(root, { recursive: true, mode: 0o700 });
      // A private folder (0700) per session: the plugin's socket and scratch files live here.
      return await mkdtemp(join(root, "gestalt-"));
    } catch (error) {
      throw new RuntimeProviderError(
        "START_FAILED",
        "StartSession",
        `runtime provider "${name}" cannot create a session folder in ${root}: ${(error as Error).message}`,
        { cause: error },
      );
    }
  };

  return {
    async getSupport() {
      return {
        ...support,
        supportsPrepareWorkspace: support.supportsPrepareWorkspace ?? (await workspaces()),
      };
    },

    async startSession(request: StartSessionRequest) {
      if (!request.pluginName) {
        throw new RuntimeProviderError("INVALID_SPEC", "StartSession", "plugin_name is required");
      }
      const id = `${slug(request.pluginName, 40)}-${randomBytes(6).toString("hex")}`;
      const dir = await sessionDir();
      const session: SessionRecord = {
        id,
        pluginName: request.pluginName,
        metadata: { ...request.metadata },
        profile: request.template || options.profile || GESTALT_PLUGIN_PROFILE,
        dir,
        startedAt: new Date(),
        bindings: [],
        state: "ready",
        logs: [],
        request,
      };
      if (request.image) session.image = request.image;
      if (options.logHost) session.forward = new LogForwarder(options.logHost, id);
      sessions.set(id, session);
      session.forward?.push(
        "runtime",
        `session ${id} started for plugin "${request.pluginName}" (profile ${session.profile})`,
      );
      return view(session);
    },

    async getSession({ sessionId }) {
      return view(find("GetSession", sessionId));
    },

    async listSessions() {
      // Live sessions only: a stopped one still answers GetSession for a while.
      return [...sessions.values()].filter((s) => s.state !== "stopped").map(view);
    },

    async stopSession({ sessionId }) {
      const session = sessions.get(sessionId);
      if (!session) return;
      session.stopped ??= stop(session);
      await session.stopped;
    },

    async bindHostService(request) {
      const session = find("BindHostService", request.sessionId);
      if (session.state !== "ready") {
        throw new RuntimeProviderError(
          "WORKLOAD_CONFLICT",
          "BindHostService",
          `session "${session.id}" is ${session.state}: bind host services before starting the plugin`,
        );
      }
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(request.envVar)) {
        throw new RuntimeProviderError(
          "INVALID_SPEC",
          "BindHostService",
          `env_var "${request.envVar}" is not a valid variable name`,
        );
      }
      const binding: HostServiceBinding = {
        id: `${session.id}-${session.bindings.length + 1}`,
        sessionId: session.id,
        envVar: request.envVar,
        ...(request.relay ? { relay: { dialTarget: request.relay.dialTarget } } : {}),
      };
      session.bindings.push(binding);
      return binding;
    },

    async prepareWorkspace(request, callOptions = {}): Promise<PreparedWorkspace> {
      if (!(await workspaces())) {
        throw new RuntimeProviderError(
          "UNSUPPORTED",
          "PrepareWorkspace",
          `runtime provider "${name}" does not prepare workspaces (no git, or prepareWorkspace: false)`,
        );
      }
      const session = find("PrepareWorkspace", request.sessionId);
      if (session.state === "stopping" || session.state === "stopped") {
        throw new RuntimeProviderError(
          "WORKLOAD_CONFLICT",
          "PrepareWorkspace",
          `session "${session.id}" is ${session.state}`,
        );
      }
      const prepared = await prepareWorkspace(session.dir, insideDir(session), request, callOptions.signal);
      session.forward?.push(
        "runtime",
        `workspace of agent session ${request.agentSessionId} prepared at ${prepared.root}`,
      );
      return prepared;
    },

    async removeWorkspace(request) {
      const session = find("RemoveWorkspace", request.sessionId);
      await removeWorkspace(session.dir, request.agentSessionId);
      session.forward?.push("runtime", `workspace of agent session ${request.agentSessionId} removed`);
    },

    async startPlugin(
      request: StartPluginRequest,
      callOptions: ProviderCallOptions = {},
    ): Promise<HostedPluginInfo> {
      const session = find("StartPlugin", request.sessionId);
      if (session.state !== "ready") {
        throw new RuntimeProviderError(
          "WORKLOAD_CONFLICT",
          "StartPlugin",
          `session "${session.id}" is ${session.state}: one plugin per session`,
        );
      }
      const command = request.command || request.hostBinary;
      if (!command) throw new RuntimeProviderError("INVALID_SPEC", "StartPlugin", "command is required");
      session.state = "starting";

      const hostSocket = join(session.dir, SOCKET_NAME);
      const env: Record<string, string> = { ...options.baseEnv };
      for (const binding of session.bindings)
        if (binding.relay) env[binding.envVar] = binding.relay.dialTarget;
      Object.assign(env, request.env);

      const needsEgress = (request.allowedHosts?.length ?? 0) > 0 || request.defaultAction === "deny";
      if (needsEgress) {
        if (!options.egressProxy) {
          session.state = "ready";
          throw new RuntimeProviderError(
            "INVALID_SPEC",
            "StartPlugin",
            `runtime provider "${name}" cannot enforce hostname-based egress (allowed_hosts / default_action deny)`,
          );
        }
        const proxyOptions = typeof options.egressProxy === "object" ? options.egressProxy : {};
        session.proxy = await createEgressProxy({
          allowedHosts: request.allowedHosts ?? [],
          defaultAction: request.defaultAction === "deny" ? "deny" : "allow",
          host: proxyOptions.host ?? "127.0.0.1",
        });
        const advertised = proxyOptions.advertiseHost ?? proxyOptions.host ?? "127.0.0.1";
        const url = `http://${advertised}:${session.proxy.port}`;
        Object.assign(env, {
          HTTP_PROXY: url,
          HTTPS_PROXY: url,
          http_proxy: url,
          https_proxy: url,
          NO_PROXY: "",
          no_proxy: "",
        });
      }

      if (socketMode.kind === "shared-folder") {
        env.GESTALT_PLUGIN_SOCKET = `${insideDir(session)}/${SOCKET_NAME}`;
      } else {
        env.GESTALT_PLUGIN_PORT = String(socketMode.port);
      }
      // The request may not choose the plugin's parent: only this provider knows it.
      delete env.GESTALT_PLUGIN_PARENT_PID;
      const ppid = await parentPid().catch(() => undefined);
      if (ppid !== undefined && ppid > 0) env.GESTALT_PLUGIN_PARENT_PID = String(ppid);
      env.GESTALT_PLUGIN_NAME = request.pluginName;

      const workloadId = `gp-${slug(request.pluginName, 40)}-${randomBytes(4).toString("hex")}`;
      session.workloadId = workloadId;
      const runnable: Runnable = {
        ...options.runnable,
        ...options.sessionRunnable?.(session.request),
        command: [command, ...(request.args ?? [])],
      };
      if (session.image) runnable.image = session.image;
      let status: WorkloadStatus;
      try {
        status = await kernel.create({
          workloadId,
          profile: session.profile,
          ...(options.owner ? { owner: options.owner } : {}),
          env,
          runnable,
          workspace: session.dir,
          graceMs,
          labels: { "gestalt.dev/session": session.id, "gestalt.dev/plugin": slug(request.pluginName, 63) },
        });
      } catch (error) {
        session.state = "stopped";
        session.failure = error instanceof Error ? error.message : String(error);
        session.workloadId = undefined;
        await session.proxy?.close();
        await rm(session.dir, { recursive: true, force: true }).catch(() => {});
        throw new RuntimeProviderError(
          isRuntimeKernelError(error) && error.code !== "START_FAILED" ? error.code : "START_FAILED",
          "StartPlugin",
          `start plugin "${request.pluginName}": ${session.failure}`,
          { cause: error },
        );
      }
      session.last = status;
      pumpLogs(session, workloadId);

      // Ready when it listens; an error if it exits first, or does not listen in time.
      const controller = new AbortController();
      const outer = callOptions.signal;
      const onOuterAbort = () => controller.abort(outer?.reason);
      outer?.addEventListener("abort", onOuterAbort, { once: true });
      const timer = setTimeout(() => controller.abort(new Error("timeout")), readyTimeoutMs);
      let dialTarget: string;
      try {
        const exited = kernel.waitFor(workloadId, "stopped", { signal: controller.signal }).then((s) => {
          session.last = s;
          return { exited: s } as const;
        });
        exited.catch(() => {});
        let listening: Promise<{ exited?: undefined }>;
        if (socketMode.kind === "shared-folder") {
          listening = waitForSocket(hostSocket, controller.signal).then(() => ({}));
          dialTarget = `unix://${hostSocket}`;
        } else {
          const published = status.ports?.[socketMode.name ?? "grpc"];
          if (!published) {
            throw await startFailure(
              session,
              `the backend published no port "${socketMode.name ?? "grpc"}" for plugin "${request.pluginName}"`,
            );
          }
          listening = waitForTcp(published, controller.signal).then(() => ({}));
          dialTarget = `tcp://${published}`;
        }
        const first = await Promise.race([listening, exited]);
        if (first.exited) {
          const s = first.exited;
          const how =
            s.exitCode !== undefined
              ? `exit code ${s.exitCode}${s.signal ? `, ${s.signal}` : ""}`
              : (s.stopReason ?? "stopped");
          throw await startFailure(session, `plugin "${request.pluginName}" exited before serving (${how})`);
        }
      } catch (error) {
        if (error instanceof RuntimeProviderError) throw error;
        if (outer?.aborted)
          throw new RuntimeProviderError("START_ABORTED", "StartPlugin", "StartPlugin was aborted");
        throw await startFailure(
          session,
          `plugin "${request.pluginName}" did not listen on ${socketMode.kind === "shared-folder" ? hostSocket : "its port"} within ${readyTimeoutMs} ms`,
          error,
        );
      } finally {
        clearTimeout(timer);
        controller.abort();
        outer?.removeEventListener("abort", onOuterAbort);
      }
      session.state = "started";
      session.forward?.push("runtime", `plugin "${request.pluginName}" serving at ${dialTarget}`);
      return { id: workloadId, sessionId: session.id, pluginName: request.pluginName, dialTarget };
    },

    async stopAllSessions(stopOptions = {}) {
      const results = await Promise.allSettled(
        [...sessions.values()].map((session) => {
          session.stopped ??= stop(session, stopOptions.graceMs);
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
