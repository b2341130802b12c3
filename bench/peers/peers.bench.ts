/**
 * runtime-kernel beside its peers, in one run: the same 200 `sleep 60` workloads created at
 * once (until all run), stopped (until all have exited), and destroyed, through
 *
 * - **raw**: plain `child_process.spawn` (stdio ignored), `kill()`, and as the destroy the
 *   release of each `ChildProcess` (an exited child leaves nothing to reclaim): the floor;
 * - **runtime-kernel**: the kernel on its ProcessBackend (the supervisor already running);
 * - **runtime-kernel+spawners**: the same with `spawners` (one per core, two at most), so that
 *   every run shows what the spawner pool trades: faster creates, a longer way for each exit;
 * - **the kernel on the FakeBackend** (in memory), the same scenario: the kernel's own share of
 *   each phase, printed in the runtime-kernel lines as the floor of their destroy (`floor`,
 *   `vsFloor`): what is left above it is the backend's;
 * - **vexa**: Vexa's Python kernel on its process backend, driven in process from 16 threads
 *   (bench/peers/vexa.py), when its source is given:
 *
 *   VEXA_SOURCE=/tmp/vexa/core/runtime npm run bench:peers
 *
 * (see docs/performance.md for how to get it; nothing here needs the network). Then a short
 * workload's round trip, 200 times one after the other: `true` from spawn to exit (raw), and
 * from `create` to its `stopped` event (runtime-kernel), p50 and p99. Rounds
 * alternate between the implementations after one warm-up round each; every phase is the median of
 * the measured rounds, and each ratio is taken against raw within its round. Prints one JSON
 * line per implementation.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { ProcessBackend } from "../../src/backends/process/index.js";
import { createRuntimeKernel } from "../../src/index.js";
import { FakeBackend } from "../../src/testing/index.js";
import { kernelPhases, type Phases, untilLogPoolHolds } from "../kernel-phases.js";
import { spawnSleepers } from "../raw-floor.js";

const N = Number(process.env.BENCH_N ?? 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SHORT_N = Number(process.env.BENCH_SHORT_N ?? 200);
const PYTHON = process.env.PYTHON ?? "python3";

type Phase = keyof Phases;
const PHASES: Phase[] = ["createMs", "stopMs", "destroyMs"];

const now = () => performance.now();
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
};
const median = (xs: number[]) => pct(xs, 50);
const round2 = (x: number) => Math.round(x * 100) / 100;
const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise<void>((resolve) => child.once("exit", () => resolve()));

async function raw(): Promise<Phases> {
  const t0 = now();
  const children = await spawnSleepers(N, { detached: true });
  const t1 = now();
  const exits = children.map(exited);
  for (const child of children) child.kill("SIGTERM");
  await Promise.all(exits);
  const t2 = now();
  // A reaped child leaves nothing on the system to reclaim; a group sweep by pid now could hit
  // a process that reused the pid. Releasing the handles is all a destroy needs here.
  for (const child of children) child.removeAllListeners();
  const t3 = now();
  return { createMs: t1 - t0, stopMs: t2 - t1, destroyMs: t3 - t2 };
}

/** Spawn to exit of one `true`, `SHORT_N` times one after the other: the floor of a short workload. */
async function rawShort(): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < SHORT_N; i++) {
    const t0 = now();
    await exited(spawn("true", [], { stdio: "ignore", detached: true }));
    times.push(now() - t0);
  }
  return times;
}

/** `create` of a `true` until its `stopped`, `SHORT_N` times one after the other (each destroyed after). */
async function kernelShort(backend: ProcessBackend, round: string): Promise<number[]> {
  const kernel = createRuntimeKernel({
    backend,
    kernelId: `peers-short-${round}`,
    reapAfterMs: 600_000,
    profiles: { short: { runnable: { command: ["true"] } } },
  });
  const times: number[] = [];
  for (let i = 0; i < SHORT_N; i++) {
    const workloadId = `s-${round}-${i}`;
    const t0 = now();
    await kernel.create({ workloadId, profile: "short" });
    await kernel.waitFor(workloadId, "stopped");
    times.push(now() - t0);
    await kernel.destroy(workloadId);
  }
  await kernel.shutdown();
  return times;
}

/** Where Vexa's `runtime_kernel` package is, from VEXA_SOURCE (its repo, `core/runtime`, or `src`). */
function vexaSource(): string | undefined {
  const given = process.env.VEXA_SOURCE;
  if (!given) return undefined;
  for (const dir of [join(given, "core/runtime/src"), join(given, "src"), given]) {
    if (existsSync(join(dir, "runtime_kernel/kernel.py"))) return dir;
  }
  throw new Error(`VEXA_SOURCE=${given} holds no runtime_kernel/kernel.py (nor core/runtime/src/...)`);
}

function viaVexa(source: string, round: string): Phases {
  const script = join(dirname(fileURLToPath(import.meta.url)), "vexa.py");
  const out = execFileSync(PYTHON, [script, source, String(N), round], { encoding: "utf8" });
  return JSON.parse(out) as Phases;
}

const source = vexaSource();
if (!source) {
  process.stderr.write(
    "bench:peers: VEXA_SOURCE not set, so no Vexa column (docs/performance.md says how to get its source)\n",
  );
}
const stateDirs = [await mkdtemp(join(tmpdir(), "rk-peers-")), await mkdtemp(join(tmpdir(), "rk-peers-"))];
const kernels = {
  "runtime-kernel": new ProcessBackend({ stateDir: stateDirs[0] as string, supervisorIdleMs: 5_000 }),
  "runtime-kernel+spawners": new ProcessBackend({
    stateDir: stateDirs[1] as string,
    supervisorIdleMs: 5_000,
    spawners: Math.min(2, availableParallelism()),
  }),
};
for (const backend of Object.values(kernels)) await backend.supervisorStats();

const samples: Record<string, Phases[]> = {
  raw: [],
  "runtime-kernel": [],
  "runtime-kernel+spawners": [],
  vexa: [],
  fake: [],
};
const short: Record<string, number[][]> = { raw: [], "runtime-kernel": [], "runtime-kernel+spawners": [] };
const load0 = loadavg()[0] as number;
for (let r = -1; r < ROUNDS; r++) {
  const round = r < 0 ? "warm" : String(r);
  const rawSample = await raw();
  const rawShortSample = await rawShort();
  const kernelSamples: Array<[string, Phases, number[]]> = [];
  for (const [implementation, backend] of Object.entries(kernels)) {
    await untilLogPoolHolds(backend, r < 0 ? 128 : 2 * Math.max(64, N));
    const phases = await kernelPhases(backend, `peers-${round}`, N);
    await untilLogPoolHolds(backend, 2 * Math.max(64, N));
    kernelSamples.push([implementation, phases, await kernelShort(backend, round)]);
  }
  const fakeSample = await kernelPhases(new FakeBackend(), `peers-fake-${round}`, N);
  const vexaSample = source ? viaVexa(source, round) : undefined;
  if (r < 0) continue;
  samples.fake?.push(fakeSample);
  samples.raw?.push(rawSample);
  short.raw?.push(rawShortSample);
  for (const [implementation, phases, shorts] of kernelSamples) {
    samples[implementation]?.push(phases);
    short[implementation]?.push(shorts);
  }
  if (vexaSample) samples.vexa?.push(vexaSample);
}
const load1 = loadavg()[0] as number;
for (const backend of Object.values(kernels)) await backend.stopSupervisor({ force: true });
for (const dir of stateDirs) rmSync(dir, { recursive: true, force: true });

const raws = samples.raw as Phases[];
const fakes = samples.fake as Phases[];
for (const [implementation, runs] of Object.entries(samples)) {
  if (runs.length === 0 || implementation === "fake") continue;
  const line: Record<string, unknown> = {
    bench: "peers",
    implementation,
    workloads: N,
    rounds: ROUNDS,
    cores: availableParallelism(),
    loadAvg: [round2(load0), round2(load1)],
  };
  for (const phase of PHASES) line[phase] = round2(median(runs.map((s) => s[phase])));
  const shortRuns = short[implementation];
  if (shortRuns) {
    line.shortP50Ms = round2(median(shortRuns.flat()));
    line.shortP99Ms = round2(pct(shortRuns.flat(), 99));
  }
  if (implementation !== "raw") {
    line.vsRaw = Object.fromEntries(
      PHASES.map((phase) => [
        phase.replace(/Ms$/, ""),
        round2(median(runs.map((s, i) => s[phase] / (raws[i] as Phases)[phase]))),
      ]),
    );
    if (shortRuns) {
      const rawShorts = short.raw as number[][];
      line.vsRaw = {
        ...(line.vsRaw as object),
        shortP50: round2(median(shortRuns.map((s, i) => median(s) / median(rawShorts[i] as number[])))),
      };
    }
  }
  if (implementation.startsWith("runtime-kernel")) {
    // The kernel's own work per destroy (an event per transition), measured on the FakeBackend.
    line.floor = { destroyOnFakeMs: round2(median(fakes.map((s) => s.destroyMs))) };
    line.vsFloor = {
      destroy: round2(median(runs.map((s, i) => s.destroyMs / (fakes[i] as Phases).destroyMs))),
    };
  }
  if (implementation.startsWith("runtime-kernel") && samples.vexa?.length) {
    const vexa = samples.vexa;
    line.vsVexa = Object.fromEntries(
      PHASES.map((phase) => [
        phase.replace(/Ms$/, ""),
        round2(median(runs.map((s, i) => s[phase] / (vexa[i] as Phases)[phase]))),
      ]),
    );
  }
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
