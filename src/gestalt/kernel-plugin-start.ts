/**
 * How a kernel provider starts a session's plugin, as named steps: its environment, its egress
 * proxy, its workload, then a wait (the `wait` module) until it serves on its socket or port,
 * or exits first. It owns what one StartPlugin creates; it must not touch other sessions.
 * @module
 */
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { isRuntimeKernelError } from "../errors.js";
import type { Runnable, WorkloadStatus } from "../index.js";
import { createEgressProxy } from "./egress.js";
import {
  type ProviderState,
  pumpLogs,
  type SessionRecord,
  SOCKET_NAME,
  slug,
  startFailure,
} from "./kernel-session.js";
import {
  type HostedPluginInfo,
  type ProviderCallOptions,
  RuntimeProviderError,
  type StartPluginRequest,
} from "./provider.js";
import { waitForSocket, waitForTcp } from "./wait.js";

/** StartPlugin on a session: one plugin per session, serving once this resolves. */
export async function startPluginInSession(
  ctx: ProviderState,
  session: SessionRecord,
  request: StartPluginRequest,
  callOptions: ProviderCallOptions,
): Promise<HostedPluginInfo> {
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
  const env = await pluginEnv(ctx, session, request);
  const status = await createWorkload(ctx, session, request, env, command);
  const dialTarget = await waitServing(ctx, session, request, status, callOptions);
  session.state = "started";
  session.forward?.push("runtime", `plugin "${request.pluginName}" serving at ${dialTarget}`);
  return {
    id: session.workloadId as string,
    sessionId: session.id,
    pluginName: request.pluginName,
    dialTarget,
  };
}

/** The plugin's environment: the base, its bindings, the request's, egress, then what only the provider decides. */
export async function pluginEnv(
  ctx: ProviderState,
  session: SessionRecord,
  request: StartPluginRequest,
): Promise<Record<string, string>> {
  const env: Record<string, string> = { ...ctx.options.baseEnv };
  for (const binding of session.bindings) if (binding.relay) env[binding.envVar] = binding.relay.dialTarget;
  Object.assign(env, request.env);
  await openEgress(ctx, session, request, env);
  if (ctx.socketMode.kind === "shared-folder") {
    env.GESTALT_PLUGIN_SOCKET = `${ctx.insideDir(session)}/${SOCKET_NAME}`;
  } else {
    env.GESTALT_PLUGIN_PORT = String(ctx.socketMode.port);
  }
  // The request may not choose the plugin's parent: only this provider knows it.
  delete env.GESTALT_PLUGIN_PARENT_PID;
  const ppid = await ctx.parentPid().catch(() => undefined);
  if (ppid !== undefined && ppid > 0) env.GESTALT_PLUGIN_PARENT_PID = String(ppid);
  env.GESTALT_PLUGIN_NAME = request.pluginName;
  return env;
}

/** Starts the session's egress proxy when the request limits egress, and points the plugin at it. */
export async function openEgress(
  ctx: ProviderState,
  session: SessionRecord,
  request: StartPluginRequest,
  env: Record<string, string>,
): Promise<void> {
  const needsEgress = (request.allowedHosts?.length ?? 0) > 0 || request.defaultAction === "deny";
  if (needsEgress) {
    if (!ctx.options.egressProxy) {
      session.state = "ready";
      throw new RuntimeProviderError(
        "INVALID_SPEC",
        "StartPlugin",
        `runtime provider "${ctx.name}" cannot enforce hostname-based egress (allowed_hosts / default_action deny)`,
      );
    }
    const proxyOptions = typeof ctx.options.egressProxy === "object" ? ctx.options.egressProxy : {};
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
}

/** Creates the plugin's workload; a refusal leaves nothing behind (the session is stopped). */
export async function createWorkload(
  ctx: ProviderState,
  session: SessionRecord,
  request: StartPluginRequest,
  env: Record<string, string>,
  command: string,
): Promise<WorkloadStatus> {
  const workloadId = `gp-${slug(request.pluginName, 40)}-${randomBytes(4).toString("hex")}`;
  session.workloadId = workloadId;
  const runnable: Runnable = {
    ...ctx.options.runnable,
    ...ctx.options.sessionRunnable?.(session.request),
    command: [command, ...(request.args ?? [])],
  };
  if (session.image) runnable.image = session.image;
  let status: WorkloadStatus;
  try {
    status = await ctx.kernel.create({
      workloadId,
      profile: session.profile,
      ...(ctx.options.owner ? { owner: ctx.options.owner } : {}),
      env,
      runnable,
      workspace: session.dir,
      graceMs: ctx.graceMs,
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
  pumpLogs(ctx, session, workloadId);
  return status;
}

/** Waits until the plugin serves (its socket or published port); an error if it exits first or in time. */
export async function waitServing(
  ctx: ProviderState,
  session: SessionRecord,
  request: StartPluginRequest,
  status: WorkloadStatus,
  callOptions: ProviderCallOptions,
): Promise<string> {
  const workloadId = session.workloadId as string;
  const hostSocket = join(session.dir, SOCKET_NAME);
  // Ready when it listens; an error if it exits first, or does not listen in time.
  const controller = new AbortController();
  const outer = callOptions.signal;
  const onOuterAbort = () => controller.abort(outer?.reason);
  outer?.addEventListener("abort", onOuterAbort, { once: true });
  const timer = setTimeout(() => controller.abort(new Error("timeout")), ctx.readyTimeoutMs);
  let dialTarget: string;
  try {
    const exited = ctx.kernel.waitFor(workloadId, "stopped", { signal: controller.signal }).then((s) => {
      session.last = s;
      return { exited: s } as const;
    });
    exited.catch(() => {});
    let listening: Promise<{ exited?: undefined }>;
    if (ctx.socketMode.kind === "shared-folder") {
      listening = waitForSocket(hostSocket, controller.signal).then(() => ({}));
      dialTarget = `unix://${hostSocket}`;
    } else {
      const published = status.ports?.[ctx.socketMode.name ?? "grpc"];
      if (!published) {
        throw await startFailure(
          ctx,
          session,
          `the backend published no port "${ctx.socketMode.name ?? "grpc"}" for plugin "${request.pluginName}"`,
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
      throw await startFailure(ctx, session, `plugin "${request.pluginName}" exited before serving (${how})`);
    }
  } catch (error) {
    if (error instanceof RuntimeProviderError) throw error;
    if (outer?.aborted)
      throw new RuntimeProviderError("START_ABORTED", "StartPlugin", "StartPlugin was aborted");
    throw await startFailure(
      ctx,
      session,
      `plugin "${request.pluginName}" did not listen on ${ctx.socketMode.kind === "shared-folder" ? hostSocket : "its port"} within ${ctx.readyTimeoutMs} ms`,
      error,
    );
  } finally {
    clearTimeout(timer);
    controller.abort();
    outer?.removeEventListener("abort", onOuterAbort);
  }
  return dialTarget;
}
