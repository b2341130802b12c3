/**
 * A stand-in for gestaltd, built at test time with @grpc/proto-loader straight from the
 * project's .proto files (no generated code, none of the library's gestalt layer): it
 * launches a runtime-provider executable as gestaltd does (a private folder, the four
 * GESTALT_* variables, a PluginRuntimeLogHost on host-0.sock, the socket polled every
 * 25 ms) and gives the tests typed calls of ProviderLifecycle, PluginRuntimeProvider and a
 * dialled plugin's IntegrationProvider.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { connected, eventually } from "./helpers.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** `runtime-kernel gestalt-provider`, run from source (tsx by absolute URL: the cwd may be anywhere). */
export const PROVIDER_COMMAND = {
  command: process.execPath,
  args: ["--import", import.meta.resolve("tsx"), join(ROOT, "src/cli.ts"), "gestalt-provider"],
};

type Constructor = grpc.ServiceClientConstructor;
interface Services {
  ProviderLifecycle: Constructor;
  PluginRuntimeProvider: Constructor;
  PluginRuntimeLogHost: Constructor;
  IntegrationProvider: Constructor;
}

let services: Services | undefined;

/** The gestalt.provider.v1 services, loaded from proto/ as any other gRPC client would. */
export function protocol(): Services {
  if (services) return services;
  const definition = protoLoader.loadSync(
    [
      "gestalt/provider/v1/runtime.proto",
      "gestalt/provider/v1/provider.proto",
      "gestalt/provider/v1/plugin.proto",
    ],
    {
      includeDirs: [join(ROOT, "proto")],
      keepCase: true,
      longs: Number,
      enums: String,
      defaults: true,
      oneofs: true,
    },
  );
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    gestalt: { provider: { v1: Services } };
  };
  services = pkg.gestalt.provider.v1;
  return services;
}

/**
 * A value as a google.protobuf.Struct message (what gestaltd sends as a provider's config).
 * protobufjs carries the well-known types with camelCase field names, whatever `keepCase` says.
 */
export function toStruct(value: Record<string, unknown>): { fields: Record<string, unknown> } {
  const toValue = (v: unknown): unknown => {
    if (v === null || v === undefined) return { nullValue: "NULL_VALUE" };
    if (typeof v === "string") return { stringValue: v };
    if (typeof v === "number") return { numberValue: v };
    if (typeof v === "boolean") return { boolValue: v };
    if (Array.isArray(v)) return { listValue: { values: v.map(toValue) } };
    return { structValue: toStruct(v as Record<string, unknown>) };
  };
  return { fields: Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toValue(v)])) };
}

type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>;

/** A unary call, as a promise. */
export function rpc<T>(
  client: grpc.Client,
  method: string,
  request: unknown,
  timeoutMs = 30_000,
): Promise<T> {
  return new Promise((resolvePromise, reject) =>
    (client as AnyClient)[method]!(
      request,
      { deadline: Date.now() + timeoutMs },
      (error: grpc.ServiceError | null, response: T) => (error ? reject(error) : resolvePromise(response)),
    ),
  );
}

/** A client of `service` over a unix socket, with the authority gestaltd uses (`localhost`). */
export function unixClient(service: Constructor, socket: string): grpc.Client {
  return new service(`unix:${socket}`, grpc.credentials.createInsecure(), {
    "grpc.default_authority": "localhost",
  });
}

/** One AppendLogs call received by the stand-in's log host. */
export interface AppendedLogs {
  session_id: string;
  logs: { stream: string; message: string; source_seq: number }[];
  /** The `x-gestalt-host-service-relay-token` the call carried, if any. */
  relayToken?: string;
}

/** A runtime provider launched by the stand-in. */
export interface LaunchedProvider {
  child: ChildProcess;
  dir: string;
  socket: string;
  lifecycle: grpc.Client;
  runtime: grpc.Client;
  /** Everything appended to the log host, in order. */
  appended: AppendedLogs[];
  /** The provider's own stderr, for failure messages. */
  stderr(): string;
  /** Resolves with how it exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What gestaltd does at shutdown: SIGTERM, SIGKILL after 2 s; then removes the folder. */
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Options of {@link launchProvider}. */
export interface LaunchOptions {
  name?: string;
  /** GESTALT_PLUGIN_PARENT_PID; default this process. */
  parentPid?: number;
  /** Start it through another process (the `parent` it then has) instead of directly. */
  via?: (command: string, args: string[], env: NodeJS.ProcessEnv) => ChildProcess;
  env?: Record<string, string>;
}

/** Launches `runtime-kernel gestalt-provider` the way gestaltd launches an executable provider. */
export async function launchProvider(options: LaunchOptions = {}): Promise<LaunchedProvider> {
  const { ProviderLifecycle, PluginRuntimeProvider, PluginRuntimeLogHost } = protocol();
  const dir = mkdtempSync(join(tmpdir(), "gstp-"));
  const socket = join(dir, "plugin.sock");
  const logSocket = join(dir, "host-0.sock");
  const appended: AppendedLogs[] = [];
  const logServer = new grpc.Server();
  logServer.addService(PluginRuntimeLogHost.service, {
    AppendLogs(call: grpc.ServerUnaryCall<AppendedLogs, unknown>, cb: grpc.sendUnaryData<unknown>) {
      const [relayToken] = call.metadata.get("x-gestalt-host-service-relay-token");
      appended.push(
        relayToken === undefined ? call.request : { ...call.request, relayToken: String(relayToken) },
      );
      cb(null, { last_seq: Math.max(0, ...call.request.logs.map((l) => l.source_seq)) });
    },
  });
  await new Promise<void>((ok, fail) =>
    logServer.bindAsync(`unix:${logSocket}`, grpc.ServerCredentials.createInsecure(), (e) =>
      e ? fail(e) : ok(),
    ),
  );
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? "",
    HOME: process.env.HOME ?? "",
    TMPDIR: process.env.TMPDIR ?? tmpdir(),
    ...options.env,
    GESTALT_PLUGIN_SOCKET: socket,
    GESTALT_PLUGIN_PARENT_PID: String(options.parentPid ?? process.pid),
    GESTALT_PLUGIN_NAME: options.name ?? "kernel",
    GESTALT_RUNTIME_LOG_SOCKET: logSocket,
  };
  const child = options.via
    ? options.via(PROVIDER_COMMAND.command, PROVIDER_COMMAND.args, env)
    : spawn(PROVIDER_COMMAND.command, PROVIDER_COMMAND.args, {
        env,
        cwd: dir,
        stdio: ["ignore", "ignore", "pipe"],
      });
  let stderr = "";
  child.stderr?.on("data", (chunk) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once("exit", (code, signal) => r({ code, signal })),
  );
  // gestaltd polls for the socket every 25 ms, up to 45 s.
  await eventually(() => existsSync(socket), `the provider's socket (stderr: ${stderr})`, 45_000);
  const lifecycle = unixClient(ProviderLifecycle, socket);
  const runtime = unixClient(PluginRuntimeProvider, socket);
  // Then, as gestaltd does, until it accepts a connection.
  await Promise.all([connected(lifecycle, 45_000), connected(runtime, 45_000)]);
  let stopping: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  return {
    child,
    dir,
    socket,
    lifecycle,
    runtime,
    appended,
    stderr: () => stderr,
    exited,
    stop() {
      stopping ??= (async () => {
        lifecycle.close();
        runtime.close();
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
        const timer = setTimeout(() => child.kill("SIGKILL"), 2_000);
        const how = await exited;
        clearTimeout(timer);
        logServer.forceShutdown();
        rmSync(dir, { recursive: true, force: true });
        return how;
      })();
      return stopping;
    },
  };
}

/** ConfigureProvider as gestaltd sends it: protocol 3, the config as a Struct. */
export function configure(provider: LaunchedProvider, name: string, config: Record<string, unknown>) {
  return rpc<{ protocol_version: number }>(provider.lifecycle, "ConfigureProvider", {
    name,
    config: toStruct(config),
    protocol_version: 3,
  });
}

/** GetSession every 25 ms until ready or running; throws on failed or stopped, as gestaltd does. */
export async function waitForSession(runtime: grpc.Client, sessionId: string): Promise<{ state: string }> {
  for (;;) {
    const session = await rpc<{ state: string; state_message: string }>(runtime, "GetSession", {
      session_id: sessionId,
    });
    if (session.state === "ready" || session.state === "running") return session;
    if (session.state === "failed" || session.state === "stopped") {
      throw new Error(`session entered "${session.state}" state: ${session.state_message}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
}
