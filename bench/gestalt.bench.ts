/**
 * Hosted-plugin start latency through the local provider, against the raw floor, measured
 * in the same run.
 *
 *   node --expose-gc --import tsx bench/gestalt.bench.ts
 *
 * Prints one JSON line. Each round (50 by default, interleaved after a warm-up) measures:
 * - host: `host.startPlugin()` until its channel is Ready: provider selection, support,
 *   plan, StartSession, BindHostService (one host service), StartPlugin on the kernel
 *   (process backend, supervisor already running), the wait for the plugin's socket, and
 *   the dial.
 * - floor: the same bundled TypeScript plugin spawned by hand with `child_process.spawn`
 *   into a fresh temp folder, waiting for its socket file with fs.watch and for it to accept
 *   a connection, and dialling it with a bare @grpc/grpc-js Channel until Ready.
 * Stopping is not timed. p50 and p99 are over the rounds; the target is host/floor <= 1.3.
 */
import { spawn } from "node:child_process";
import { existsSync, watch } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Channel, connectivityState, credentials } from "@grpc/grpc-js";
import { ProcessBackend } from "../src/backends/process/index.js";
import { createPluginHost, GESTALT_PLUGIN_PROFILE, loadGestaltConfig } from "../src/gestalt/index.js";
import { createRuntimeKernel } from "../src/index.js";
import { testPluginCommand } from "../test/fixtures/gestalt/build.js";

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
const backend = new ProcessBackend({ stateDir: join(root, "state") });
const kernel = createRuntimeKernel({ backend, profiles: { [GESTALT_PLUGIN_PROFILE]: { runnable: {} } } });
const host = createPluginHost({
  config: loadGestaltConfig({
    runtime: { providers: { local: { driver: "local", default: true } } },
    plugins: {
      bench: {
        command: plugin.command,
        args: plugin.args,
        hostServices: ["cache"],
        execution: { mode: "hosted" },
      },
    },
  }),
  kernel,
  hostServices: { cache: { envVar: "GESTALT_CACHE_SOCKET", dialTarget: "unix:///run/cache.sock" } },
});

async function viaHost(): Promise<number> {
  const t0 = now();
  const started = await host.startPlugin("bench");
  const elapsed = now() - t0;
  await started.stop();
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
  const elapsed = now() - t0;
  channel.close();
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
  await rm(dir, { recursive: true, force: true });
  return elapsed;
}

for (let i = 0; i < WARMUP; i++) {
  await viaHost();
  await byHand();
}

const hostMs: number[] = [];
const floorMs: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  // Alternate which goes first so neither always runs on a just-warmed machine.
  if (i % 2 === 0) {
    hostMs.push(await viaHost());
    floorMs.push(await byHand());
  } else {
    floorMs.push(await byHand());
    hostMs.push(await viaHost());
  }
}

await host.close();
await kernel.shutdown();
await backend.stopSupervisor({ force: true }).catch(() => {});
await backend.close();
await rm(root, { recursive: true, force: true });

const result = {
  bench: "gestalt",
  what: "startPlugin to a Ready channel, local provider, vs spawn + dial by hand",
  rounds: ROUNDS,
  host: { p50Ms: round2(pct(hostMs, 50)), p99Ms: round2(pct(hostMs, 99)) },
  floor: { p50Ms: round2(pct(floorMs, 50)), p99Ms: round2(pct(floorMs, 99)) },
  ratio: {
    p50: round2(pct(hostMs, 50) / pct(floorMs, 50)),
    p99: round2(pct(hostMs, 99) / pct(floorMs, 99)),
  },
  target: 1.3,
};
console.log(JSON.stringify(result));
