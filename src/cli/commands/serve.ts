/**
 * `runtime-kernel serve`: a kernel behind the runtime.v1 gRPC service, until Ctrl-C.
 * @module
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { HttpLogEntry, RuntimeHttpServer } from "../../http/index.js";
import { createRuntimeKernel, type TransitionEvent } from "../../index.js";
import type { Scheduler } from "../../schedule/index.js";
import { serveRuntimeKernel } from "../../server/serve.js";
import { defaultStateDir, loadBackend } from "../backends.js";
import { type Command, stringOption, UsageError } from "../command.js";
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
    "runtime-kernel serve --http 127.0.0.1:8090 --schedule journal",
  ],
  async run(context) {
    const { io, err, note } = context;
    if (context.positionals.length > 0) {
      throw new UsageError(`serve takes no arguments (got "${context.positionals.join(" ")}")`, "serve");
    }
    const configPath = stringOption(context, "config") ?? (io.env[CONFIG_ENV] || undefined);
    const config: ServeConfig = configPath ? loadServeConfig(configPath) : parseServeConfig({});
    const flagBackend = stringOption(context, "backend");
    if (flagBackend !== undefined && !(BACKEND_TYPES as readonly string[]).includes(flagBackend)) {
      throw new UsageError(
        `--backend must be one of ${BACKEND_TYPES.join(", ")} (got "${flagBackend}")`,
        "serve",
      );
    }
    const fromConfig = backendOf(config);
    const backendType = (flagBackend as BackendType | undefined) ?? fromConfig.type;
    // Options in the config belong to the backend the config names; a --backend override starts clean.
    const backendOptions = backendType === fromConfig.type ? fromConfig.options : {};

    const tokenFile = stringOption(context, "token-file") ?? config.tokenFile;
    const token = tokenFile
      ? readSecretFile(tokenFile, "token file").toString("utf8").trim()
      : io.env[TOKEN_ENV] || undefined;
    if (tokenFile && !token) throw new UsageError(`token file ${tokenFile} is empty`, "serve");
    const tls = config.tls
      ? {
          cert: readFile(config.tls.certFile, "tls.certFile"),
          key: readSecretFile(config.tls.keyFile, "tls.keyFile"),
          ...(config.tls.caFile ? { ca: readFile(config.tls.caFile, "tls.caFile") } : {}),
        }
      : undefined;

    const profiles = config.profiles ?? DEFAULT_PROFILES;
    const kernelId = stringOption(context, "kernel-id") ?? config.kernelId;
    const backend = await loadBackend(backendType, backendOptions, {
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

    const quiet = context.values.quiet === true;
    const json = context.values.json === true;
    const columns = eventColumns();
    kernel.on("transition", (event: TransitionEvent) => {
      if (json) context.print(JSON.stringify(event));
      else if (!quiet) note(eventLine(event, err, columns));
    });
    kernel.on("error", (error: Error) => note(`${err.yellow("warning:")} ${error.message}`));

    const scheduleText = stringOption(context, "schedule");
    const scheduleSetting = scheduleText
      ? { ...config.schedule, store: scheduleFlag(scheduleText) }
      : config.schedule;
    let scheduler: Scheduler | undefined;

    // Before recover(): the transitions a recovery reports go to the callbacks registered before the restart.
    const httpAddress = stringOption(context, "http") ?? config.http?.address;
    let http: RuntimeHttpServer | undefined;
    if (httpAddress !== undefined) {
      const { serveHttpSurface } = await import("../../http/serve.js");
      // Mounted whether or not a scheduler is configured: without one, /schedule answers 503.
      const { scheduleRoutes } = await import("../../schedule/routes.js");
      const httpConfig = config.http;
      const { signingSecretFile, ...callbackConfig } = httpConfig?.callbacks ?? {};
      const secretFile = stringOption(context, "callback-secret-file") ?? signingSecretFile;
      const signingSecret = secretFile
        ? readSecretFile(secretFile, "callback secret file").toString("utf8").trim()
        : undefined;
      if (secretFile && !signingSecret)
        throw new UsageError(`callback secret file ${secretFile} is empty`, "serve");
      const log = (entry: HttpLogEntry) => {
        if (json) context.print(JSON.stringify(entry));
        else if (!quiet && entry.event === "callback_failed") {
          note(
            err.dim(
              `callback of ${entry.workloadId} to ${entry.receiver} failed (${entry.error ?? entry.status}); retry in ${entry.retryInMs} ms${entry.traceId ? ` · trace ${entry.traceId}` : ""}`,
            ),
          );
        }
      };
      const maxBodyBytes =
        httpConfig?.maxBodyBytes ?? (scheduleSetting ? SCHEDULE_MAX_BODY_BYTES : undefined);
      http = await serveHttpSurface(
        kernel,
        {
          address: httpAddress,
          ...(tls ? { tls } : {}),
          ...(token ? { token } : {}),
          ...(config.allowInsecureRemote ? { allowInsecureRemote: true } : {}),
          ...(httpConfig?.backend ? { backend: httpConfig.backend } : {}),
          ...(httpConfig?.ownerEnv !== undefined ? { ownerEnv: httpConfig.ownerEnv } : {}),
          ...(maxBodyBytes !== undefined ? { maxBodyBytes } : {}),
          ...(scheduleSetting
            ? {
                healthChecks: {
                  scheduler: async () =>
                    scheduler !== undefined && Array.isArray(await scheduler.list({ limit: 1 })),
                },
              }
            : {}),
          callbacks: {
            outboxPath: join(defaultStateDir(kernel.kernelId, io.env), "callbacks", "outbox.jsonl"),
            ...callbackConfig,
            ...(signingSecret ? { signingSecret } : {}),
          },
          log,
          // The gRPC server's close below stops (or leaves) the workloads; this one only drains.
          onClose: "keep-kernel",
        },
        [scheduleRoutes(() => scheduler)],
      ).catch(async (error: unknown) => {
        await kernel.shutdown().catch(() => {});
        throw error;
      });
      http.handler.on("error", (error) => note(`${err.yellow("warning:")} ${error.message}`));
    }

    if (config.recover !== false && backend.discover) {
      const report = await kernel.recover();
      const found = report.adopted.length + report.exited.length + report.reaped.length;
      if (found > 0 && !quiet) {
        note(
          err.dim(
            `recovered: ${report.adopted.length} running, ${report.exited.length} exited while away, ${report.reaped.length} reaped`,
          ),
        );
      }
    }

    // After recover(): a workload job re-queued after a crash finds the workload its firing started.
    if (scheduleSetting) {
      scheduler = await startScheduler(scheduleSetting, kernel, Object.keys(profiles), io.env).catch(
        async (error: unknown) => {
          await http?.close();
          await kernel.shutdown().catch(() => {});
          throw error;
        },
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
    }

    const leaveRunning = context.values["leave-running"] === true || config.onShutdown === "leave-running";
    const server = await serveRuntimeKernel(kernel, {
      ...((stringOption(context, "address") ?? config.address)
        ? { address: (stringOption(context, "address") ?? config.address)! }
        : {}),
      ...(tls ? { tls } : {}),
      ...(token ? { token } : {}),
      ...(config.allowInsecureRemote ? { allowInsecureRemote: true } : {}),
      onClose: leaveRunning ? "leave-running" : "stop-workloads",
      onError: (error, { method }) =>
        note(
          `${err.yellow("warning:")} ${method} failed inside the server: ${(error as Error)?.message ?? error}`,
        ),
    }).catch(async (error: unknown) => {
      await scheduler?.close();
      await http?.close();
      await kernel.shutdown().catch(() => {});
      throw error;
    });

    const names = Object.keys(profiles).join(", ");
    note(
      `${err.green("●")} runtime-kernel serving runtime.v1 on ${err.bold(server.address)} ${err.dim(
        `(backend ${backend.name}, kernel ${kernel.kernelId}, profiles: ${names}${token ? ", token required" : ""})`,
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
    if (!quiet && io.stderr.isTTY)
      note(err.dim("  try: runtime-kernel run -- echo hello    ·    Ctrl-C to stop"));

    // Backends may hold only unref'd handles (a supervisor socket): keep the process alive
    // until the shutdown below has really finished, not merely until the listener closed.
    const keepAlive = setInterval(() => {}, 1 << 30);
    await new Promise<void>((resolve) => {
      let stopping = false;
      const remove = io.onSignal((signal) => {
        if (stopping) {
          note(
            err.red(`${signal} again: exiting now${leaveRunning ? "" : "; workloads may be left running"}`),
          );
          process.exit(130);
        }
        stopping = true;
        const live = kernel.list({ state: ["starting", "running", "stopping"] }).length;
        note(
          err.yellow(
            `${signal}: shutting down; ${
              leaveRunning
                ? `leaving ${live} workload(s) running for recovery`
                : `stopping ${live} workload(s)`
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
    if (!quiet) note(err.dim("stopped"));
    return 0;
  },
};
