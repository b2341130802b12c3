/**
 * A kernel provider's sessions: their records, how GetSession shows one, its folder, its
 * host-service bindings and workspaces, following its plugin's output, and stopping it. It
 * owns what a session holds; it must not start plugins (see `kernel-plugin-start.ts`).
 * @module
 */
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isRuntimeKernelError } from "../errors.js";
import type { LogEntry, WorkloadStatus } from "../index.js";
import { ENV_NAME } from "../name-rules.js";
import type { EgressProxy } from "./egress.js";
import {
  GESTALT_PLUGIN_PROFILE,
  type KernelRuntimeProviderOptions,
  type PluginSocketMode,
  type ProviderKernel,
  sessionStateOf,
} from "./kernel-provider.js";
import { LogForwarder } from "./log-forwarder.js";
import {
  type BindHostServiceRequest,
  type HostServiceBinding,
  type PreparedWorkspace,
  type PrepareWorkspaceRequest,
  RuntimeProviderError,
  type RuntimeSession,
  type StartSessionRequest,
  sessionNotFound,
} from "./provider.js";
import { prepareWorkspace } from "./workspace.js";

/** How many stopped sessions GetSession still knows. */
const MAX_STOPPED_SESSIONS = 256;

/** The plugin's socket, in the session folder. */
export const SOCKET_NAME = "plugin.sock";

/** A session as the provider holds it. */
export interface SessionRecord {
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

/** What a kernel provider's sessions share: the kernel, the options, and every session. */
export interface ProviderState {
  kernel: ProviderKernel;
  options: KernelRuntimeProviderOptions;
  /** The provider's name. */
  name: string;
  socketMode: PluginSocketMode;
  /** The session folder as the workload sees it. */
  insideDir(session: SessionRecord): string;
  parentPid(): Promise<number | undefined>;
  graceMs: number;
  readyTimeoutMs: number;
  /** How many lines of the plugin's output a session keeps, and a start error quotes. */
  tailLines: number;
  sessions: Map<string, SessionRecord>;
}

/** The session as GetSession shows it (the workload's state once it has one). */
export function sessionView(ctx: ProviderState, s: SessionRecord): RuntimeSession {
  const lifecycle = { startedAt: s.startedAt };
  const base = { id: s.id, metadata: { ...s.metadata }, lifecycle };
  if (s.state === "stopped" || s.state === "stopping") {
    const mapped = s.last ? sessionStateOf(s.last) : undefined;
    const failed = s.failure !== undefined || mapped?.state === "failed";
    return {
      ...base,
      state: failed ? "failed" : "stopped",
      stateReason: s.state === "stopping" ? "stopping" : (mapped?.reason ?? "stopped"),
      ...(s.failure ? { stateMessage: s.failure } : mapped?.message ? { stateMessage: mapped.message } : {}),
    };
  }
  if (s.state === "ready") return { ...base, state: "ready" };
  if (s.state === "starting") return { ...base, state: "pending", stateReason: "starting plugin" };
  const status = (s.workloadId ? ctx.kernel.get(s.workloadId) : undefined) ?? s.last;
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
}

/** Follows the workload's output into the session's tail and its log host. */
export function pumpLogs(ctx: ProviderState, s: SessionRecord, workloadId: string): void {
  const controller = new AbortController();
  s.pump = controller;
  const forward = s.forward;
  void (async () => {
    try {
      for await (const entry of ctx.kernel.logs(workloadId, {
        follow: true,
        signal: controller.signal,
      }) as AsyncIterable<LogEntry>) {
        s.logs.push(entry.line);
        if (s.logs.length > ctx.tailLines) s.logs.shift();
        forward?.push(entry.stream, entry.line, entry.at);
      }
    } catch {
      // No logs from this backend, or the stream ended with the workload: nothing to forward.
    }
  })();
}

/** The last lines of the plugin's output: from the backend, else what the pump saw. */
export async function logTailOf(ctx: ProviderState, s: SessionRecord): Promise<string[]> {
  if (s.workloadId) {
    try {
      const lines: string[] = [];
      for await (const entry of ctx.kernel.logs(s.workloadId, {
        tail: ctx.tailLines,
      }) as AsyncIterable<LogEntry>) {
        lines.push(entry.line);
      }
      if (lines.length) return lines.slice(-ctx.tailLines);
    } catch {
      // Fall back to what the pump saw.
    }
  }
  return [...s.logs];
}

/** The START_FAILED error of a plugin that did not come up, its log tail carried along. */
export async function startFailure(
  ctx: ProviderState,
  s: SessionRecord,
  message: string,
  cause?: unknown,
): Promise<RuntimeProviderError> {
  // The workload exists: from now on the session's state is the workload's (or failed).
  s.state = "started";
  const tail = await logTailOf(ctx, s);
  s.failure = message;
  s.forward?.push("runtime", message);
  return new RuntimeProviderError("START_FAILED", "StartPlugin", message, { cause, logTail: tail });
}

/** Stops a session: its workload destroyed, its proxy closed, its folder removed. */
export async function stopSessionRecord(
  ctx: ProviderState,
  s: SessionRecord,
  grace = ctx.graceMs,
): Promise<void> {
  s.state = "stopping";
  s.pump?.abort();
  const errors: unknown[] = [];
  if (s.workloadId) {
    await ctx.kernel.destroy(s.workloadId, { graceMs: grace }).catch((error: unknown) => {
      if (!isRuntimeKernelError(error, "WORKLOAD_NOT_FOUND")) errors.push(error);
    });
  }
  await s.proxy?.close();
  await rm(s.dir, { recursive: true, force: true }).catch((error: unknown) => errors.push(error));
  s.state = "stopped";
  s.forward?.push("runtime", `session ${s.id} stopped`);
  // Bound the memory of stopped sessions: GetSession of a recent one still says "stopped".
  const stopped = [...ctx.sessions.values()].filter((x) => x.state === "stopped");
  for (const old of stopped.slice(0, Math.max(0, stopped.length - MAX_STOPPED_SESSIONS)))
    ctx.sessions.delete(old.id);
  if (errors.length) {
    throw new RuntimeProviderError(
      "CLEANUP_FAILED",
      "StopSession",
      `stopping session "${s.id}" left something behind: ${errors.map((e) => (e instanceof Error ? e.message : String(e))).join("; ")}`,
      { cause: errors[0] },
    );
  }
}

/** A new private session folder under the session root. */
export async function makeSessionDir(ctx: ProviderState): Promise<string> {
  const root = ctx.options.sessionRoot ?? tmpdir();
  try {
    await mkdir(root, { recursive: true, mode: 0o700 });
    // A private folder (0700) per session: the plugin's socket and scratch files live here.
    return await mkdtemp(join(root, "gestalt-"));
  } catch (error) {
    throw new RuntimeProviderError(
      "START_FAILED",
      "StartSession",
      `runtime provider "${ctx.name}" cannot create a session folder in ${root}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** StartSession: a new session with its private folder, ready for host services and its plugin. */
export async function openSession(ctx: ProviderState, request: StartSessionRequest): Promise<RuntimeSession> {
  if (!request.pluginName) {
    throw new RuntimeProviderError("INVALID_SPEC", "StartSession", "plugin_name is required");
  }
  const id = `${slug(request.pluginName, 40)}-${randomBytes(6).toString("hex")}`;
  const dir = await makeSessionDir(ctx);
  const session: SessionRecord = {
    id,
    pluginName: request.pluginName,
    metadata: { ...request.metadata },
    profile: request.template || ctx.options.profile || GESTALT_PLUGIN_PROFILE,
    dir,
    startedAt: new Date(),
    bindings: [],
    state: "ready",
    logs: [],
    request,
  };
  if (request.image) session.image = request.image;
  if (ctx.options.logHost) session.forward = new LogForwarder(ctx.options.logHost, id);
  ctx.sessions.set(id, session);
  session.forward?.push(
    "runtime",
    `session ${id} started for plugin "${request.pluginName}" (profile ${session.profile})`,
  );
  return sessionView(ctx, session);
}

/** BindHostService: records a relay binding, given to the plugin in its environment. */
export function bindSessionService(
  session: SessionRecord,
  request: BindHostServiceRequest,
): HostServiceBinding {
  if (session.state !== "ready") {
    throw new RuntimeProviderError(
      "WORKLOAD_CONFLICT",
      "BindHostService",
      `session "${session.id}" is ${session.state}: bind host services before starting the plugin`,
    );
  }
  if (!ENV_NAME.test(request.envVar)) {
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
}

/** PrepareWorkspace: an agent's workspace in the session folder (refused when the provider has none to give). */
export async function prepareSessionWorkspace(
  ctx: ProviderState,
  enabled: boolean,
  request: PrepareWorkspaceRequest,
  signal: AbortSignal | undefined,
): Promise<PreparedWorkspace> {
  if (!enabled) {
    throw new RuntimeProviderError(
      "UNSUPPORTED",
      "PrepareWorkspace",
      `runtime provider "${ctx.name}" does not prepare workspaces (no git, or prepareWorkspace: false)`,
    );
  }
  const session = ctx.sessions.get(request.sessionId);
  if (!session) throw sessionNotFound("PrepareWorkspace", request.sessionId);
  if (session.state === "stopping" || session.state === "stopped") {
    throw new RuntimeProviderError(
      "WORKLOAD_CONFLICT",
      "PrepareWorkspace",
      `session "${session.id}" is ${session.state}`,
    );
  }
  const prepared = await prepareWorkspace(session.dir, ctx.insideDir(session), request, signal);
  session.forward?.push(
    "runtime",
    `workspace of agent session ${request.agentSessionId} prepared at ${prepared.root}`,
  );
  return prepared;
}

/** A name made safe for workload ids and labels: lower case, dashes, at most `max` characters. */
export function slug(name: string, max: number): string {
  const s = name
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return s.slice(0, max).replace(/-+$/, "") || "plugin";
}
