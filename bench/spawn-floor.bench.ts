/**
 * Where the create of many workloads finds its floor on this machine: the same `N` `sleep 60`s
 * spawned at once, until each has exec'd (Node's `spawn` event; Python's `Popen` returning),
 * by
 *
 * - **node**: this process, `child_process.spawn` in one loop (bench:peers' raw column);
 * - **nodeProcesses2**, **nodeProcesses4**: two or four small Node processes, started before the
 *   clock, each spawning its share: the spawner pool's design without the kernel;
 * - **python16** and **python1**: CPython's `subprocess.Popen` from 16 threads (as Vexa's kernel
 *   spawns) and from one, both with `vfork` (CPython's default on Linux);
 * - **python16Fork**: 16 threads again, `vfork` turned off (`subprocess._USE_VFORK = False`), so
 *   that the vfork's share and the threads' share can be told apart;
 * - **kernel+spawners**: the kernel on the ProcessBackend with `spawners` (one per core, two at
 *   most), `create` until `running`, for the kernel beside its floor.
 *
 * Node's `spawn` (libuv 1.46 on Node 20) is a `fork`: page tables copied, one at a time per
 * event loop. The Python columns need a `python3` (or `PYTHON`); without one they are left
 * out with a message. One warm-up round, then `BENCH_ROUNDS` rounds alternating between the
 * columns; each figure is the median, each ratio taken against `node` within its round.
 * Prints one JSON line.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { ProcessBackend } from "../src/backends/process/index.js";
import { kernelPhases, untilLogPoolHolds } from "./kernel-phases.js";
import { spawnSleepers } from "./raw-floor.js";

const N = Number(process.env.BENCH_N ?? 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PYTHON = process.env.PYTHON ?? "python3";

const now = () => performance.now();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] as number;
const round2 = (x: number) => Math.round(x * 100) / 100;

/** A spawner told `go` spawns its share and says `done`; told `kill`, it kills them, reaps them and says `killed`. */
const NODE_SPAWNER = `
const { spawn } = require("node:child_process");
const lines = require("node:readline").createInterface({ input: process.stdin });
let children = [];
lines.on("line", (line) => {
  const [op, n] = line.split(" ");
  if (op === "go") {
    let left = Number(n);
    for (let i = 0; i < Number(n); i++) {
      const child = spawn("sleep", ["60"], { stdio: "ignore", detached: true });
      children.push(child);
      child.once("spawn", () => { if (--left === 0) process.stdout.write("done\\n"); });
    }
  } else if (op === "kill") {
    let left = children.length;
    for (const child of children) { child.once("exit", () => { if (--left === 0) process.stdout.write("killed\\n"); }); child.kill(); }
    children = [];
  } else process.exit(0);
});
`;

const PYTHON_SPAWNER = `
import subprocess, sys
from concurrent.futures import ThreadPoolExecutor
threads, vfork = int(sys.argv[1]), sys.argv[2] == "vfork"
if not vfork:
    subprocess._USE_VFORK = False
pool = ThreadPoolExecutor(threads)
children = []
for line in sys.stdin:
    op, *rest = line.split()
    if op == "go":
        spawn = lambda _: subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        children = list(pool.map(spawn, range(int(rest[0]))))
        print("done", flush=True)
    elif op == "kill":
        for child in children: child.kill()
        for child in children: child.wait()
        children = []
        print("killed", flush=True)
    else:
        break
`;

/** A long-lived spawner process spoken to over stdin/stdout, one line each way. */
class Spawner {
  readonly #child: ChildProcess;
  readonly #replies: AsyncIterator<string>;
  constructor(argv: string[]) {
    this.#child = spawn(argv[0] as string, argv.slice(1), { stdio: ["pipe", "pipe", "inherit"] });
    this.#replies = createInterface({ input: this.#child.stdout as NodeJS.ReadableStream })[
      Symbol.asyncIterator
    ]();
  }
  async ask(line: string, expect: string): Promise<void> {
    this.#child.stdin?.write(`${line}\n`);
    const reply = await this.#replies.next();
    if (reply.value !== expect) throw new Error(`spawner said ${String(reply.value)}, not ${expect}`);
  }
  close(): void {
    this.#child.stdin?.end("exit\n");
  }
}

/** Creates `N` across `spawners`, timed; then kills and reaps them, untimed. */
async function viaSpawners(spawners: Spawner[]): Promise<number> {
  const share = N / spawners.length;
  const t0 = now();
  await Promise.all(spawners.map((s) => s.ask(`go ${share}`, "done")));
  const t1 = now();
  await Promise.all(spawners.map((s) => s.ask("kill", "killed")));
  return t1 - t0;
}

async function viaNode(): Promise<number> {
  const t0 = now();
  const children = await spawnSleepers(N, { detached: true });
  const t1 = now();
  await Promise.all(children.map((child) => new Promise((resolve) => child.once("exit", resolve).kill())));
  return t1 - t0;
}

function hasPython(): boolean {
  try {
    execFileSync(PYTHON, ["-c", "import subprocess; subprocess._USE_VFORK"], { stdio: "ignore" });
    return true;
  } catch {
    process.stderr.write(
      `bench:spawn-floor: no ${PYTHON} with subprocess._USE_VFORK (3.11+), so no Python columns\n`,
    );
    return false;
  }
}

const cores = availableParallelism();
const pools: Record<string, Spawner[]> = {
  nodeProcesses2: Array.from({ length: 2 }, () => new Spawner([process.execPath, "-e", NODE_SPAWNER])),
  nodeProcesses4: Array.from({ length: 4 }, () => new Spawner([process.execPath, "-e", NODE_SPAWNER])),
};
if (hasPython()) {
  pools.python16 = [new Spawner([PYTHON, "-c", PYTHON_SPAWNER, "16", "vfork"])];
  pools.python1 = [new Spawner([PYTHON, "-c", PYTHON_SPAWNER, "1", "vfork"])];
  pools.python16Fork = [new Spawner([PYTHON, "-c", PYTHON_SPAWNER, "16", "fork"])];
}
const stateDir = await mkdtemp(join(tmpdir(), "rk-spawn-floor-"));
const backend = new ProcessBackend({ stateDir, supervisorIdleMs: 5_000, spawners: Math.min(2, cores) });
await backend.supervisorStats();

const samples: Record<string, number[]> = {
  node: [],
  ...Object.fromEntries(Object.keys(pools).map((k) => [k, []])),
};
samples["kernel+spawners"] = [];
const ratios: Record<string, number[]> = Object.fromEntries(Object.keys(samples).map((k) => [k, []]));
const load0 = loadavg()[0] as number;
for (let r = -1; r < ROUNDS; r++) {
  const round: Record<string, number> = { node: await viaNode() };
  for (const [name, spawners] of Object.entries(pools)) round[name] = await viaSpawners(spawners);
  await untilLogPoolHolds(backend, r < 0 ? 128 : 2 * Math.max(64, N));
  round["kernel+spawners"] = (await kernelPhases(backend, `spawn-floor-${r < 0 ? "warm" : r}`, N)).createMs;
  if (r < 0) continue;
  for (const [name, ms] of Object.entries(round)) {
    samples[name]?.push(ms);
    ratios[name]?.push(ms / (round.node as number));
  }
}
const load1 = loadavg()[0] as number;
for (const spawners of Object.values(pools)) for (const s of spawners) s.close();
await backend.stopSupervisor({ force: true });
rmSync(stateDir, { recursive: true, force: true });

const createMs = Object.fromEntries(Object.entries(samples).map(([k, xs]) => [k, round2(median(xs))]));
const createToNode = Object.fromEntries(Object.entries(ratios).map(([k, xs]) => [k, round2(median(xs))]));
console.log(
  JSON.stringify({
    bench: "spawn-floor",
    n: N,
    rounds: ROUNDS,
    cores,
    loadAvg: [round2(load0), round2(load1)],
    createMs,
    createToNode,
    node: process.version,
  }),
);
