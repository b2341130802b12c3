/**
 * Launching a runtime-provider executable the way gestaltd does, so that any upstream
 * runtime provider (and `runtime-kernel gestalt-provider`) can serve this host:
 *
 * 1. a private folder for its sockets; a `PluginRuntimeLogHost` served on `host-0.sock` in it;
 * 2. the executable started with the safe base environment, the entry's own `env`, and
 *    `GESTALT_PLUGIN_SOCKET` (`<folder>/plugin.sock`), `GESTALT_PLUGIN_PARENT_PID` (this
 *    process), `GESTALT_PLUGIN_NAME` and `GESTALT_RUNTIME_LOG_SOCKET`;
 * 3. the socket polled every 25 ms, then dialled (authority `localhost`) until Ready, all
 *    within 45 s; a provider that exits first fails the launch with its exit status;
 * 4. the lifecycle handshake (kind RUNTIME, protocol 3, ConfigureProvider with the entry's
 *    `config`).
 *
 * `close()` sends SIGTERM, then SIGKILL after 2 s, and removes the folder. (Stopping the
 * provider's sessions first, 3 s each, is the host's job: see `createPluginHost`.)
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { parse as parseYaml } from "yaml";
import { InvalidSpecError } from "../errors.js";
import { dialHostedPlugin } from "./dial.js";
import { type GrpcRuntimeProvider, grpcRuntimeProvider } from "./grpc-provider.js";
import { handshakeRuntimeProvider, type ProviderIdentity } from "./lifecycle.js";
import { safeBaseEnv } from "./local-provider.js";
import type { RuntimeLogHost } from "./provider.js";
import { RuntimeProviderError } from "./provider.js";
import { type ServedEndpoint, serveRuntimeLogHost } from "./serve-provider.js";

/** The environment variables gestaltd gives an executable provider. */
export const PROVIDER_ENV = {
  socket: "GESTALT_PLUGIN_SOCKET",
  parentPid: "GESTALT_PLUGIN_PARENT_PID",
  name: "GESTALT_PLUGIN_NAME",
  logSocket: "GESTALT_RUNTIME_LOG_SOCKET",
  /** Beside a relayed log socket: the token its relay wants on every call. */
  logSocketToken: "GESTALT_RUNTIME_LOG_SOCKET_TOKEN",
  /** Set in a hosted plugin's environment: its runtime session. */
  sessionId: "GESTALT_RUNTIME_SESSION_ID",
} as const;

/** Options of {@link launchRuntimeProvider}. */
export interface LaunchRuntimeProviderOptions {
  /** The provider's name in the host's config: `GESTALT_PLUGIN_NAME`, and ConfigureProvider's name. */
  name: string;
  /** The executable (absolute, or found on PATH) and its arguments. */
  command: string;
  args?: string[];
  /** Added to the safe base environment (PATH, HOME, TMPDIR, LANG, TZ, SSL_CERT_FILE, SSL_CERT_DIR). */
  env?: Record<string, string>;
  /** Sent in ConfigureProvider (`runtime.providers.<name>.config`). */
  config?: Record<string, unknown>;
  /** Where the provider's AppendLogs go. */
  logHost: RuntimeLogHost;
  /**
   * What becomes of the provider's own stdout and stderr. Default `inherit`: both go to this
   * process's stderr, as gestaltd does; a function gets each line.
   */
  output?: "inherit" | "ignore" | ((line: string, stream: "stdout" | "stderr") => void);
  /** Bound on the wait for its socket and a Ready channel. Default 45,000 ms. */
  startupTimeoutMs?: number;
  /** Bound on each handshake call. Default 30,000 ms. */
  callTimeoutMs?: number;
  /** Between SIGTERM and SIGKILL at close. Default 2,000 ms. */
  stopGraceMs?: number;
  signal?: AbortSignal;
}

/** A runtime provider running as this process's child, handshaken and ready. */
export interface LaunchedRuntimeProvider extends GrpcRuntimeProvider {
  /** What it said in GetProviderIdentity once configured. */
  readonly identity: ProviderIdentity;
  readonly pid: number;
  /** The unix socket it serves on (its GESTALT_PLUGIN_SOCKET). */
  readonly socket: string;
  /** SIGTERM, SIGKILL after `stopGraceMs`, then removes its folder. Does not stop its sessions. */
  close(): Promise<void>;
}

/**
 * The executable a provider manifest names: `kind: runtime`, `entrypoint.artifactPath`
 * (relative to the manifest) and `entrypoint.args`. Errors name `field` (where the path was given).
 */
export async function readRuntimeManifest(
  path: string,
  field: string,
): Promise<{ command: string; args: string[] }> {
  const refuse = (message: string) =>
    new InvalidSpecError([{ path: field, message }], { subject: "runtime provider manifest" });
  let manifest: unknown;
  try {
    manifest = parseYaml(await readFile(path, "utf8"));
  } catch (error) {
    throw refuse(`cannot read the manifest ${path}: ${(error as Error).message}`);
  }
  const m = (manifest ?? {}) as { kind?: unknown; entrypoint?: { artifactPath?: unknown; args?: unknown } };
  if (m.kind !== "runtime") {
    throw refuse(
      `${path} is not a runtime provider manifest (kind is ${JSON.stringify(m.kind ?? null)}, want "runtime")`,
    );
  }
  const artifact = m.entrypoint?.artifactPath;
  if (typeof artifact !== "string" || artifact === "")
    throw refuse(`${path}: entrypoint.artifactPath is required`);
  const args = m.entrypoint?.args ?? [];
  if (!Array.isArray(args) || args.some((a) => typeof a !== "string")) {
    throw refuse(`${path}: entrypoint.args must be a list of strings`);
  }
  return {
    command: isAbsolute(artifact) ? artifact : resolve(dirname(path), artifact),
    args: args as string[],
  };
}

const POLL_MS = 25;
/** How often a start that fails with ETXTBSY (an executable still open for writing) is tried. */
const START_ATTEMPTS = 5;

function exitText(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `killed by ${signal}` : `exit code ${code}`;
}

function spawnOnce(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  output: LaunchRuntimeProviderOptions["output"],
) {
  const stdio: ("ignore" | "pipe" | number)[] =
    output === "ignore"
      ? ["ignore", "ignore", "ignore"]
      : typeof output === "function"
        ? ["ignore", "pipe", "pipe"]
        : ["ignore", 2, 2];
  return new Promise<ChildProcess>((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: stdio as ("ignore" | "pipe")[] });
    child.once("spawn", () => resolve(child));
    child.once("error", reject);
  });
}

async function start(options: LaunchRuntimeProviderOptions, env: NodeJS.ProcessEnv): Promise<ChildProcess> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await spawnOnce(options.command, options.args ?? [], env, options.output);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ETXTBSY" || attempt >= START_ATTEMPTS) {
        throw new RuntimeProviderError(
          "START_FAILED",
          "launch",
          `start runtime provider "${options.name}" (${options.command}): ${(error as Error).message}`,
          { cause: error },
        );
      }
      await new Promise((r) => setTimeout(r, attempt * 100));
    }
  }
}

/** Resolves once `path` exists, polling every 25 ms; rejects when `stop` does. */
async function socketAppears(path: string, stop: Promise<never>): Promise<void> {
  for (;;) {
    if (
      await stat(path).then(
        () => true,
        () => false,
      )
    )
      return;
    await Promise.race([new Promise((r) => setTimeout(r, POLL_MS)), stop]);
  }
}

/**
 * Launches a runtime-provider executable and handshakes with it, as gestaltd does. Any
 * failure kills what was started and removes the folder before it is thrown.
 *
 * @example
 * ```ts
 * const provider = await launchRuntimeProvider({
 *   name: "kernel",
 *   command: "runtime-kernel",
 *   args: ["gestalt-provider"],
 *   config: { backend: "process" },
 *   logHost: new SessionLogBuffer(),
 * });
 * console.log(provider.identity.name, await provider.getSupport());
 * await provider.close();
 * ```
 */
export async function launchRuntimeProvider(
  options: LaunchRuntimeProviderOptions,
): Promise<LaunchedRuntimeProvider> {
  const dir = mkdtempSync(join(tmpdir(), "gstp-"));
  const socket = join(dir, "plugin.sock");
  const logSocket = join(dir, "host-0.sock");
  let logEndpoint: ServedEndpoint | undefined;
  let child: ChildProcess | undefined;
  let provider: GrpcRuntimeProvider | undefined;
  let closing: Promise<void> | undefined;

  const close = (): Promise<void> => {
    closing ??= (async () => {
      await provider?.close();
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child!.once("exit", () => resolve()));
        child.kill("SIGTERM");
        const timer = setTimeout(() => child!.kill("SIGKILL"), options.stopGraceMs ?? 2_000);
        await exited;
        clearTimeout(timer);
      }
      await logEndpoint?.close();
      rmSync(dir, { recursive: true, force: true });
    })();
    return closing;
  };

  try {
    logEndpoint = await serveRuntimeLogHost(options.logHost, `unix://${logSocket}`);
    const env: NodeJS.ProcessEnv = {
      ...safeBaseEnv(),
      ...options.env,
      [PROVIDER_ENV.socket]: socket,
      [PROVIDER_ENV.parentPid]: String(process.pid),
      [PROVIDER_ENV.name]: options.name,
      [PROVIDER_ENV.logSocket]: logSocket,
    };
    child = await start(options, env);
    const launched = child;
    if (typeof options.output === "function") {
      const forward = options.output;
      for (const stream of ["stdout", "stderr"] as const) {
        const input = launched[stream];
        if (input) createInterface({ input }).on("line", (line) => forward(line, stream));
      }
    }
    // A provider that exits while we wait fails the launch at once, with how it ended.
    const exited = new Promise<never>((_, reject) => {
      launched.once("exit", (code, signal) =>
        reject(
          new RuntimeProviderError(
            "START_FAILED",
            "launch",
            `runtime provider "${options.name}" exited before serving gRPC (${exitText(code, signal)})`,
          ),
        ),
      );
    });
    exited.catch(() => {});
    const timeoutMs = options.startupTimeoutMs ?? 45_000;
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([options.signal, deadline]) : deadline;
    const aborted = new Promise<never>((_, reject) => {
      const fail = () =>
        reject(
          options.signal?.aborted
            ? new RuntimeProviderError(
                "START_ABORTED",
                "launch",
                `launching runtime provider "${options.name}" was aborted`,
              )
            : new RuntimeProviderError(
                "START_FAILED",
                "launch",
                `runtime provider "${options.name}" did not serve on ${socket} within ${timeoutMs} ms`,
              ),
        );
      if (signal.aborted) fail();
      signal.addEventListener("abort", fail, { once: true });
    });
    aborted.catch(() => {});
    const stop = Promise.race([exited, aborted]);
    await socketAppears(socket, stop);
    const { channel } = await Promise.race([
      dialHostedPlugin(`unix://${socket}`, { timeoutMs, signal }),
      stop,
    ]);
    provider = grpcRuntimeProvider(`unix://${socket}`, {
      channel,
      callTimeoutMs: options.callTimeoutMs,
    });
    const identity = await Promise.race([
      handshakeRuntimeProvider(provider.lifecycle, {
        name: options.name,
        ...(options.config ? { config: options.config } : {}),
        callTimeoutMs: options.callTimeoutMs,
        ...(options.signal ? { signal: options.signal } : {}),
      }),
      exited,
    ]);
    return { ...provider, identity, pid: launched.pid!, socket, close };
  } catch (error) {
    await close();
    throw error;
  }
}
