/**
 * Hosted-plugin start latency, the way gestaltd starts plugins, against the raw floor,
 * measured in the same run.
 *
 *   node --expose-gc --import tsx bench/gestalt.bench.ts
 *
 * Prints one JSON line. Once, outside the rounds: `runtime-kernel gestalt-provider` (process
 * backend) is launched as gestaltd launches a runtime provider, and handshaken. Each round
 * (50 by default, interleaved after a warm-up) then measures:
 * - provider: a fresh host dialling that provider's socket until its plugin's channel is
 *   Ready, all included: the lifecycle handshake (GetProviderIdentity, ConfigureProvider,
 *   GetProviderIdentity), GetSupport, StartSession, GetSession, StartPlugin (the provider's
 *   kernel spawns the plugin through its supervisor and waits for its socket), the dial, and
 *   GetMetadata + StartProvider on the plugin.
 * - local: `host.startPlugin()` through the in-process local provider, with GetMetadata +
 *   StartProvider (the path of a host that runs plugins itself).
 * - floor: the same bundled plugin spawned by hand with `child_process.spawn` into a fresh
 *   temp folder, waiting for its socket file with fs.watch and for it to accept a
 *   connection, dialling it with a bare @grpc/grpc-js Channel until Ready, and the same
 *   GetMetadata + StartProvider with a bare generated client.
 * Stopping is not timed, except once at the end: SIGTERM to the provider with a plugin
 * running, until it has exited (gestaltd SIGKILLs it after 2 s). p50 and p99 are over the
 * rounds; the target is provider/floor and local/floor <= 1.3.
 */
import { spawn } from "node:child_process";
import { existsSync, watch } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Channel, connectivityState, credentials } from "@grpc/grpc-js";
import { ProcessBackend } from "../src/backends/process/index.js";
import { IntegrationProviderClient } from "../src/gen/gestalt/provider/v1/plugin.js";
import {
  createPluginHost,
  GESTALT_PLUGIN_PROFILE,
  launchRuntimeProvider,
  loadGestaltConfig,
  SessionLogBuffer,
} from "../src/gestalt/index.js";
import { createRuntimeKernel } from "../src/index.js";
import { testPluginCommand } from "../test/fixtures/gestalt/build.js";
import { PROVIDER_COMMAND } from "../test/integration/gestalt/gestaltd.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 50);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 5);

const now = () => performance.now();
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] as number;
};
const round2 = (x: number) => Math.round(x * 100) / 100;

function waitForFile(dir: string, name: string): Promise<void> {
  return new Promise((resolve) => {
    const path = join(dir, name);
    const watcher = watch(dir, () => {
      if (existsSync(path)) {
        watcher.close();
        resolve();
      }
    });
    if (existsSync(path)) {
      watcher.close();
      resolve();
    }
  });
}

/** The socket file appears at bind(), a moment before listen(): retry a refused connect. */
function accepting(path: string): Promise<void> {
  return new Promise((resolve) => {
    const attempt = () => {
      const s = connect(path);
      s.once("connect", () => {
        s.destroy();
        resolve();
      });
      s.once("error", () => {
        s.destroy();
        setTimeout(attempt, 10);
      });
    };
    attempt();
  });
}

function unary<T>(call: (callback: (error: Error | null, response: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    call((error, response) => (error ? reject(error) : resolve(response))),
  );
}

function ready(channel: Channel): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = () => {
      const state = channel.getConnectivityState(true);
      if (state === connectivityState.READY) return resolve();
      channel.watchConnectivityState(state, Date.now() + 30_000, (e) => (e ? reject(e) : step()));
    };
    step();
  });
}

const plugin = await testPluginCommand();
const root = await mkdtemp(join(tmpdir(), "rk-gbench-"));
const pluginEntry = {
  command: plugin.command,
  args: plugin.args,
  hostServices: ["cache"],
  execution: { mode: "hosted" },
};
const hostServices = { cache: { envVar: "GESTALT_CACHE_SOCKET", dialTarget: "unix:///run/cache.sock" } };

// The in-process local provider.
const backend = new ProcessBackend({ stateDir: join(root, "state") });
const kernel = createRuntimeKernel({ backend, profiles: { [GESTALT_PLUGIN_PROFILE]: { runnable: {} } } });
const localHost = createPluginHost({
  config: loadGestaltConfig({
    runtime: { providers: { local: { driver: "local", default: true } } },
    plugins: { bench: pluginEntry },
  }),
  kernel,
  hostServices,
});

// runtime-kernel gestalt-provider, launched once as gestaltd launches a runtime provider.
const providerConfig = {
  backend: { type: "process", options: { stateDir: join(root, "provider-state") } },
  sessionRoot: join(root, "provider-sessions"),
};
const launchStarted = now();
const provider = await launchRuntimeProvider({
  name: "kernel",
  ...PROVIDER_COMMAND,
  config: providerConfig,
  logHost: new SessionLogBuffer(),
  output: "ignore",
});
const providerLaunchMs = now() - launchStarted;
const providerAddress = `unix://${provider.socket}`;

async function viaLocal(): Promise<number> {
  const t0 = now();
  const started = await localHost.startPlugin("bench");
  const elapsed = now() - t0;
  await started.stop();
  return elapsed;
}

async function viaProvider(): Promise<number> {
  const t0 = now();
  const host = createPluginHost({
    config: loadGestaltConfig({
      runtime: { providers: { kernel: { source: providerAddress, default: true, config: providerConfig } } },
      plugins: { bench: pluginEntry },
    }),
    hostServices,
  });
  await host.startPlugin("bench");
  const elapsed = now() - t0;
  await host.close();
  return elapsed;
}

async function byHand(): Promise<number> {
  const t0 = now();
  const dir = await mkdtemp(join(tmpdir(), "rk-gfloor-"));
  const socket = join(dir, "plugin.sock");
  const child = spawn(plugin.command, plugin.args, {
    cwd: dir,
    stdio: "ignore",
    env: {
      PATH: process.env.PATH ?? "",
      GESTALT_PLUGIN_SOCKET: socket,
      GESTALT_PLUGIN_NAME: "bench",
      GESTALT_PLUGIN_PARENT_PID: String(process.pid),
    },
  });
  await waitForFile(dir, "plugin.sock");
  await accepting(socket);
  const channel = new Channel(`unix:${socket}`, credentials.createInsecure(), {
    "grpc.default_authority": "localhost",
  });
  await ready(channel);
  // What gestaltd asks a plugin it has just dialled (the plugin's first RPCs cost it most).
  const integration = new IntegrationProviderClient("localhost", credentials.createInsecure(), {
    channelOverride: channel,
  });
  await unary((cb) => integration.getMetadata({}, cb));
  await unary((cb) => integration.startProvider({ name: "bench", config: {}, protocolVersion: 3 }, cb));
  const elapsed = now() - t0;
  channel.close();
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
  await rm(dir, { recursive: true, force: true });
  return elapsed;
}

for (let i = 0; i < WARMUP; i++) {
  await viaProvider();
  await viaLocal();
  await byHand();
}

const providerMs: number[] = [];
const localMs: number[] = [];
const floorMs: number[] = [];
const paths: [number[], () => Promise<number>][] = [
  [providerMs, viaProvider],
  [localMs, viaLocal],
  [floorMs, byHand],
];
for (let i = 0; i < ROUNDS; i++) {
  // Rotate which goes first so none always runs on a just-warmed machine.
  for (let j = 0; j < paths.length; j++) {
    const [samples, run] = paths[(i + j) % paths.length]!;
    samples.push(await run());
  }
}

// The provider's stop, with a plugin running: SIGTERM until it has exited.
const last = createPluginHost({
  config: loadGestaltConfig({
    runtime: { providers: { kernel: { source: providerAddress, default: true, config: providerConfig } } },
    plugins: { bench: pluginEntry },
  }),
  hostServices,
});
await last.startPlugin("bench");
const stopStarted = now();
await provider.close();
const providerStopMs = now() - stopStarted;
await last.close().catch(() => {});

await localHost.close();
await kernel.shutdown();
await backend.stopSupervisor({ force: true }).catch(() => {});
await backend.close();
await rm(root, { recursive: true, force: true });

const stats = (xs: number[]) => ({ p50Ms: round2(pct(xs, 50)), p99Ms: round2(pct(xs, 99)) });
const ratio = (xs: number[]) => ({
  p50: round2(pct(xs, 50) / pct(floorMs, 50)),
  p99: round2(pct(xs, 99) / pct(floorMs, 99)),
});
const result = {
  bench: "gestalt",
  what: "startPlugin to a Ready channel (handshake, session, plugin, dial, GetMetadata+StartProvider) vs spawn + dial by hand",
  rounds: ROUNDS,
  provider: stats(providerMs),
  local: stats(localMs),
  floor: stats(floorMs),
  ratio: { provider: ratio(providerMs), local: ratio(localMs) },
  providerLaunchMs: round2(providerLaunchMs),
  providerStopMs: round2(providerStopMs),
  target: 1.3,
};
console.log(JSON.stringify(result));
