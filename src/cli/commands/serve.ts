/**
 * `runtime-kernel serve`: a kernel behind the runtime.v1 gRPC service, until Ctrl-C.
 * @module
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { HttpLogEntry, RuntimeHttpServer } from "../../http/index.js";
import { type Backend, createRuntimeKernel, type RuntimeKernel, type TransitionEvent } from "../../index.js";
import { HOST_PATTERN, HOST_PATTERN_MESSAGE } from "../../name-rules.js";
import type { Scheduler } from "../../schedule/index.js";
import { type RuntimeKernelServer, serveRuntimeKernel } from "../../server/serve.js";
import { defaultStateDir, loadBackend } from "../backends.js";
import { type Command, type CommandContext, listOption, stringOption, UsageError } from "../command.js";
import {
  BACKEND_TYPES,
  type BackendType,
  backendOf,
  DEFAULT_PROFILES,
  loadServeConfig,
  parseServeConfig,
  type ServeConfig,
} from "../config.js";
import { TOKEN_ENV } from "../connect.js";
import { eventColumns, eventLine, jobOutcome, jobTarget } from "../format.js";
import { describeStore, scheduleFlag, startScheduler } from "../schedule-store.js";
import { readSecretFile } from "../secret-file.js";

/** The request body limit when the scheduler is on: a job's own body may be 1 MiB, JSON-escaped in the request. */
const SCHEDULE_MAX_BODY_BYTES = 8 * 1024 * 1024;

/** The environment variable naming a config file when `--config` is absent. */
export const CONFIG_ENV = "RUNTIME_KERNEL_CONFIG";

function readFile(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new UsageError(`cannot read ${what} ${path}: ${(error as Error).message}`);
  }
}

/** How `serve` reports: JSON lines on stdout with --json, notes on stderr unless --quiet. */
interface ServeOutput {
  context: CommandContext;
  json: boolean;
  quiet: boolean;
}

/** The bearer token and TLS material both listeners require. */
interface Credentials {
  token: string | undefined;
  tls: { cert: Buffer; key: Buffer; ca?: Buffer } | undefined;
}

/** What this serve has opened so far, to close in reverse when a later step fails. */
interface Opened {
  kernel: RuntimeKernel;
  http?: RuntimeHttpServer | undefined;
  scheduler?: Scheduler | undefined;
}

/** The backend `--backend` or the config names, with the config's options only when it is the config's own. */
function chooseBackend(
  context: CommandContext,
  config: ServeConfig,
): { type: BackendType; options: Record<string, unknown> } {
  const flagBackend = stringOption(context, "backend");
  if (flagBackend !== undefined && !(BACKEND_TYPES as readonly string[]).includes(flagBackend)) {
    throw new UsageError(
      `--backend must be one of ${BACKEND_TYPES.join(", ")} (got "${flagBackend}")`,
      "serve",
    );
  }
  const fromConfig = backendOf(config);
  const type = (flagBackend as BackendType | undefined) ?? fromConfig.type;
  // Options in the config belong to the backend the config names; a --backend override starts clean.
  return { type, options: type === fromConfig.type ? fromConfig.options : {} };
}

/** Reads the token file (or `$RUNTIME_KERNEL_TOKEN`) and the config's TLS files. */
function readCredentials(context: CommandContext, config: ServeConfig): Credentials {
  const tokenFile = stringOption(context, "token-file") ?? config.tokenFile;
  const token = tokenFile
    ? readSecretFile(tokenFile, "token file").toString("utf8").trim()
    : context.io.env[TOKEN_ENV] || undefined;
  if (tokenFile && !token) throw new UsageError(`token file ${tokenFile} is empty`, "serve");
  const tls = config.tls
    ? {
        cert: readFile(config.tls.certFile, "tls.certFile"),
        key: readSecretFile(config.tls.keyFile, "tls.keyFile"),
        ...(config.tls.caFile ? { ca: readFile(config.tls.caFile, "tls.caFile") } : {}),
      }
    : undefined;
  return { token, tls };
}

/** Prints each transition (a JSON line, or a note unless quiet) and each kernel warning. */
function reportTransitions(kernel: RuntimeKernel, output: ServeOutput): void {
  const { context, json, quiet } = output;
  const { err, note } = context;
  const columns = eventColumns();
  kernel.on("transition", (event: TransitionEvent) => {
    if (json) context.print(JSON.stringify(event));
    else if (!quiet) note(eventLine(event, err, columns));
  });
  kernel.on("error", (error: Error) => note(`${err.yellow("warning:")} ${error.message}`));
}

/**
 * The callback signing secret `--callback-secret-file` or the config names, the hosts
 * `--callback-allow-host` or the config allows, and the rest of the callbacks' config.
 */
function callbackSettings(context: CommandContext, config: ServeConfig) {
  const { signingSecretFile, ...callbackConfig } = config.http?.callbacks ?? {};
  const allowedHosts = listOption(context, "callback-allow-host");
  for (const host of allowedHosts) {
    if (!HOST_PATTERN.test(host))
      throw new UsageError(`--callback-allow-host ${JSON.stringify(host)}: ${HOST_PATTERN_MESSAGE}`, "serve");
  }
  if (allowedHosts.length > 0) callbackConfig.allowedHosts = allowedHosts;
  const secretFile = stringOption(context, "callback-secret-file") ?? signingSecretFile;
  const signingSecret = secretFile
    ? readSecretFile(secretFile, "callback secret file").toString("utf8").trim()
    : undefined;
  if (secretFile && !signingSecret)
    throw new UsageError(`callback secret file ${secretFile} is empty`, "serve");
  return { callbackConfig, signingSecret };
}

/** Prints the HTTP surface's log: every entry with --json, else a failed callback unless quiet. */
function httpLog(output: ServeOutput): (entry: HttpLogEntry) => void {
  const { context, json, quiet } = output;
  const { err, note } = context;
  return (entry) => {
    if (json) context.print(JSON.stringify(entry));
    else if (!quiet && entry.event === "callback_failed") {
      note(
        err.dim(
          `callback of ${entry.workloadId} to ${entry.receiver} failed (${entry.error ?? entry.status}); retry in ${entry.retryInMs} ms${entry.traceId ? ` · trace ${entry.traceId}` : ""}`,
        ),
      );
    }
  };
}

/** Opens runtime.v1 over HTTP (with /schedule mounted) when `--http` or the config asks for it. */
async function openHttpSurface(
  opened: Opened,
  config: ServeConfig,
  credentials: Credentials,
  scheduleSetting: ServeConfig["schedule"],
  output: ServeOutput,
): Promise<RuntimeHttpServer | undefined> {
  const { context } = output;
  const { kernel } = opened;
  const httpAddress = stringOption(context, "http") ?? config.http?.address;
  if (httpAddress === undefined) return undefined;
  const { serveHttpSurface } = await import("../../http/serve.js");
  // Mounted whether or not a scheduler is configured: without one, /schedule answers 503.
  const { scheduleRoutes } = await import("../../schedule/routes.js");
  const httpConfig = config.http;
  const { callbackConfig, signingSecret } = callbackSettings(context, config);
  const { tls, token } = credentials;
  const maxBodyBytes = httpConfig?.maxBodyBytes ?? (scheduleSetting ? SCHEDULE_MAX_BODY_BYTES : undefined);
  const http = await serveHttpSurface(
    kernel,
    {
      address: httpAddress,
      ...(tls ? { tls } : {}),
      ...(token ? { token } : {}),
      ...(config.allowInsecureRemote ? { allowInsecureRemote: true } : {}),
      ...(httpConfig?.backend ? { backend: httpConfig.backend } : {}),
      ownerEnv: httpConfig?.ownerEnv,
      maxBodyBytes,
      ...(scheduleSetting
        ? {
            healthChecks: {
              scheduler: async () =>
                opened.scheduler !== undefined && Array.isArray(await opened.scheduler.list({ limit: 1 })),
            },
          }
        : {}),
      callbacks: {
        outboxPath: join(defaultStateDir(kernel.kernelId, context.io.env), "callbacks", "outbox.jsonl"),
        ...callbackConfig,
        ...(signingSecret ? { signingSecret } : {}),
      },
      log: httpLog(output),
      // The gRPC server's close stops (or leaves) the workloads; this one only drains.
      onClose: "keep-kernel",
    },
    [scheduleRoutes(() => opened.scheduler)],
  ).catch(abandonOnFailure(opened));
  http.handler.on("error", (error) => context.note(`${context.err.yellow("warning:")} ${error.message}`));
  return http;
}

/** Re-adopts this kernel's workloads from the backend, unless the config says not to. */
async function recoverWorkloads(
  kernel: RuntimeKernel,
  backend: Backend,
  config: ServeConfig,
  output: ServeOutput,
): Promise<void> {
  if (config.recover === false || !backend.discover) return;
  const report = await kernel.recover();
  const found = report.adopted.length + report.exited.length + report.reaped.length;
  if (found > 0 && !output.quiet) {
    output.context.note(
      output.context.err.dim(
        `recovered: ${report.adopted.length} running, ${report.exited.length} exited while away, ${report.reaped.length} reaped`,
      ),
    );
  }
}

/** Starts firing schedule.v1 jobs, and reports each firing and the jobs put back by the last serve. */
async function startJobs(
  opened: Opened,
  setting: NonNullable<ServeConfig["schedule"]>,
  profiles: readonly string[],
  output: ServeOutput,
): Promise<Scheduler> {
  const { context, json, quiet } = output;
  const { err, note } = context;
  const scheduler = await startScheduler(setting, opened.kernel, profiles, context.io.env).catch(
    abandonOnFailure(opened),
  );
  scheduler.on("error", (error) => note(`${err.yellow("warning:")} schedule: ${error.message}`));
  scheduler.on("fired", (job) => {
    if (json) context.print(JSON.stringify({ event: "job", ...job }));
    else if (!quiet) {
      note(err.dim(`job ${job.job_id} ${jobTarget(job)}: ${job.status} ${jobOutcome(job)}`));
    }
  });
  const requeued = await scheduler.ready;
  if (requeued > 0 && !quiet) {
    note(err.dim(`schedule: ${requeued} job(s) that were firing when the last serve stopped fire again`));
  }
  return scheduler;
}

/** Serves runtime.v1 over gRPC; closing it stops the workloads, or leaves them running. */
async function serveGrpc(
  opened: Opened,
  config: ServeConfig,
  credentials: Credentials,
  leaveRunning: boolean,
  context: CommandContext,
): Promise<RuntimeKernelServer> {
  const { err, note } = context;
  const { tls, token } = credentials;
  const address = stringOption(context, "address") ?? config.address;
  return serveRuntimeKernel(opened.kernel, {
    ...(address ? { address } : {}),
    ...(tls ? { tls } : {}),
    ...(token ? { token } : {}),
    ...(config.allowInsecureRemote ? { allowInsecureRemote: true } : {}),
    onClose: leaveRunning ? "leave-running" : "stop-workloads",
    onError: (error, { method }) =>
      note(
        `${err.yellow("warning:")} ${method} failed inside the server: ${(error as Error)?.message ?? error}`,
      ),
  }).catch(abandonOnFailure(opened));
}

/** A start-up step failed: close what is open (the scheduler, the HTTP surface, the kernel), then rethrow. */
function abandonOnFailure(opened: Opened): (error: unknown) => Promise<never> {
  return async (error) => {
    await opened.scheduler?.close();
    await opened.http?.close();
    await opened.kernel.shutdown().catch(() => {});
    throw error;
  };
}

/** The listening lines: where runtime.v1 is served, where jobs come from, and a hint on a terminal. */
function announce(
  opened: Opened,
  server: RuntimeKernelServer,
  setup: { backend: Backend; profiles: readonly string[]; token: string | undefined },
  scheduleSetting: ServeConfig["schedule"],
  output: ServeOutput,
): void {
  const { kernel, http } = opened;
  const { io, err, note } = output.context;
  const names = setup.profiles.join(", ");
  note(
    `${err.green("●")} runtime-kernel serving runtime.v1 on ${err.bold(server.address)} ${err.dim(
      `(backend ${setup.backend.name}, kernel ${kernel.kernelId}, profiles: ${names}${setup.token ? ", token required" : ""})`,
    )}`,
  );
  if (scheduleSetting) {
    note(
      `${err.green("●")} runtime-kernel firing schedule.v1 jobs from ${err.bold(describeStore(scheduleSetting.store, kernel.kernelId, io.env))}${http ? "" : err.dim(" (add jobs over HTTP: --http)")}`,
    );
  }
  if (http) {
    note(
      `${err.green("●")} runtime-kernel serving runtime.v1 over HTTP on ${err.bold(http.address.startsWith("unix:") ? http.address : http.url)}`,
    );
  }
  if (!output.quiet && io.stderr.isTTY)
    note(err.dim("  try: runtime-kernel run -- echo hello    ·    Ctrl-C to stop"));
}

/**
 * Serves until SIGINT, SIGTERM or SIGHUP, then shuts down in order: the scheduler puts its
 * firings back, the gRPC server drains and stops (or leaves) the workloads, the HTTP surface
 * drains last so their final callbacks get their chance. A second signal exits at once.
 */
async function serveUntilSignalled(
  opened: Opened,
  server: RuntimeKernelServer,
  leaveRunning: boolean,
  context: CommandContext,
): Promise<void> {
  const { io, err, note } = context;
  const { kernel, scheduler, http } = opened;
  // Backends may hold only unref'd handles (a supervisor socket): keep the process alive
  // until the shutdown below has really finished, not merely until the listener closed.
  const keepAlive = setInterval(() => {}, 1 << 30);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const remove = io.onSignal((signal) => {
      if (stopping) {
        note(err.red(`${signal} again: exiting now${leaveRunning ? "" : "; workloads may be left running"}`));
        process.exit(130);
      }
      stopping = true;
      const live = kernel.list({ state: ["starting", "running", "stopping"] }).length;
      note(
        err.yellow(
          `${signal}: shutting down; ${
            leaveRunning ? `leaving ${live} workload(s) running for recovery` : `stopping ${live} workload(s)`
          } (press Ctrl-C again to exit at once)`,
        ),
      );
      // Firings in flight are put back first, to fire again at the next start.
      Promise.resolve(scheduler?.close())
        .then(() => server.close())
        // The kernel has stopped (or left) its workloads: their last callbacks get their chance now.
        .then(() => http?.close())
        .then(
          () => {
            remove();
            resolve();
          },
          (error: unknown) => {
            note(err.red(`error while shutting down: ${(error as Error).message}`));
            remove();
            resolve();
          },
        );
    });
  });
  clearInterval(keepAlive);
}

/** `runtime-kernel serve`. */
export const serveCommand: Command = {
  name: "serve",
  summary: "run a kernel and serve it over gRPC (runtime.v1)",
  usage: "serve [options]",
  description: [
    "Runs a kernel and serves the runtime.v1 gRPC service until interrupted. By default it listens",
    "on a unix socket private to your user, where the other commands find it without options.",
    "On Ctrl-C (or SIGTERM) it drains: open streams end, calls in flight finish, then every",
    "workload is stopped (or, with --leave-running, left for the next `serve` to recover).",
  ].join("\n"),
  options: {
    config: {
      type: "string",
      short: "c",
      value: "FILE",
      description: `YAML or JSON config: backend, profiles, quotas, tls (default: $${CONFIG_ENV})`,
    },
    backend: {
      type: "string",
      short: "b",
      value: "NAME",
      description: `backend: ${BACKEND_TYPES.join(", ")} (default: the config's, else process)`,
    },
    address: {
      type: "string",
      short: "a",
      value: "ADDR",
      description:
        "listen on unix:PATH or HOST:PORT (default: $RUNTIME_KERNEL_ADDRESS, else the user's socket)",
    },
    "kernel-id": {
      type: "string",
      value: "ID",
      description: "the kernel's identity (default: the config's, else default)",
    },
    "token-file": {
      type: "string",
      value: "FILE",
      description: `require the bearer token in FILE on every call (default: $${TOKEN_ENV}, else none)`,
    },
    http: {
      type: "string",
      value: "ADDR",
      description: "also serve runtime.v1 over HTTP/JSON on HOST:PORT or unix:PATH (Vexa's contract)",
    },
    schedule: {
      type: "string",
      value: "STORE",
      description:
        "fire schedule.v1 jobs kept in STORE: journal (in the state dir) or a redis:// URL shared with other serves",
    },
    "callback-secret-file": {
      type: "string",
      value: "FILE",
      description: "sign HTTP callbacks with the secret in FILE (X-Runtime-Signature)",
    },
    "callback-allow-host": {
      type: "string",
      multiple: true,
      value: "HOST",
      description: "send HTTP callbacks only to HOST, exact or *.suffix (default: any host)",
    },
    "leave-running": {
      type: "boolean",
      description: "at shutdown, leave workloads running for the next serve to recover",
    },
    json: { type: "boolean", description: "print transitions as JSON lines on stdout" },
    quiet: { type: "boolean", short: "q", description: "print only the listening line and errors" },
  },
  examples: [
    "runtime-kernel serve",
    "runtime-kernel serve --backend docker --config runtime-kernel.yaml",
    "runtime-kernel serve --address 127.0.0.1:7443 --token-file ./token",
    "runtime-kernel serve --http 127.0.0.1:8090 --callback-secret-file ./callback-secret",
    "runtime-kernel serve --http 127.0.0.1:8090 --callback-allow-host hooks.example.com",
    "runtime-kernel serve --http 127.0.0.1:8090 --schedule journal",
  ],
  async run(context) {
    const { io } = context;
    if (context.positionals.length > 0) {
      throw new UsageError(`serve takes no arguments (got "${context.positionals.join(" ")}")`, "serve");
    }
    const configPath = stringOption(context, "config") ?? (io.env[CONFIG_ENV] || undefined);
    const config: ServeConfig = configPath ? loadServeConfig(configPath) : parseServeConfig({});
    const chosen = chooseBackend(context, config);
    const credentials = readCredentials(context, config);
    const profiles = config.profiles ?? DEFAULT_PROFILES;
    const kernelId = stringOption(context, "kernel-id") ?? config.kernelId;
    const backend = await loadBackend(chosen.type, chosen.options, {
      kernelId: kernelId ?? "default",
      env: io.env,
    });
    const kernel = createRuntimeKernel({
      backend,
      profiles,
      kernelId,
      ownerQuota: config.ownerQuota,
      maxConcurrentStarts: config.maxConcurrentStarts,
      reapAfterMs: config.reapAfterMs,
      pollIntervalMs: config.pollIntervalMs,
      eventRetention: config.eventRetention,
    });
    const output: ServeOutput = {
      context,
      json: context.values.json === true,
      quiet: context.values.quiet === true,
    };
    reportTransitions(kernel, output);

    const scheduleText = stringOption(context, "schedule");
    const scheduleSetting = scheduleText
      ? { ...config.schedule, store: scheduleFlag(scheduleText) }
      : config.schedule;
    const opened: Opened = { kernel };
    // Before recover(): the transitions a recovery reports go to the callbacks registered before the restart.
    opened.http = await openHttpSurface(opened, config, credentials, scheduleSetting, output);
    await recoverWorkloads(kernel, backend, config, output);
    // After recover(): a workload job re-queued after a crash finds the workload its firing started.
    if (scheduleSetting)
      opened.scheduler = await startJobs(opened, scheduleSetting, Object.keys(profiles), output);
    const leaveRunning = context.values["leave-running"] === true || config.onShutdown === "leave-running";
    const server = await serveGrpc(opened, config, credentials, leaveRunning, context);
    announce(
      opened,
      server,
      { backend, profiles: Object.keys(profiles), token: credentials.token },
      scheduleSetting,
      output,
    );
    await serveUntilSignalled(opened, server, leaveRunning, context);
    if (!output.quiet) context.note(context.err.dim("stopped"));
    return 0;
  },
};
