/**
 * The sandboxed process backend beside the unsandboxed one and raw spawn, in the same run.
 *
 *   npm run bench:sandbox    (node --expose-gc --import tsx bench/sandbox.bench.ts)
 *
 * Prints one JSON line. Rounds are interleaved (raw, process, sandboxed, ...) and medians
 * reported, with ratios taken within each round. What is measured, for N (default 1,000)
 * concurrent `sleep 60`:
 * - the time until all run (`create` resolved for each), and until all are stopped after a
 *   stop of all (SIGTERM), for raw `child_process.spawn` (stdio ignored: the floor), the kernel
 *   on `ProcessBackend`, and the kernel on `ProcessBackend({ sandbox: {} })`;
 * - the memory each live workload costs the machine: the proportional set size (Pss) of all
 *   its processes (the command, and in a sandbox the waiting shell and bubblewrap's two), for
 *   a sample of the live workloads of each backend.
 */
import { readFileSync, rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProcessBackend, type ProcessHandle } from "../src/backends/process/index.js";
import { createRuntimeKernel } from "../src/index.js";
import { spawnSleepers } from "./raw-floor.js";

const N = Number(process.env.BENCH_N ?? 1_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const MEMORY_SAMPLE = 50;

const now = () => performance.now();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] as number;
const round2 = (x: number) => Math.round(x * 100) / 100;

/** A process and all its descendants, by /proc's children lists. */
function tree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i] as number;
    try {
      for (const child of readFileSync(`/proc/${p}/task/${p}/children`, "latin1").split(" ")) {
        if (child.trim()) out.push(Number(child));
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** Proportional set size of a process, in bytes (its share of pages it shares with others). */
function pss(pid: number): number {
  try {
    const kb = /^Pss:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, "latin1"))?.[1];
    return Number(kb ?? 0) * 1024;
  } catch {
    return 0;
  }
}

interface Sample {
  startMs: number;
  stopMs: number;
  /** Pss of a live workload's processes, mean over the sample. */
  pssBytesPerWorkload: number;
  processesPerWorkload: number;
}

async function raw(): Promise<Sample> {
  const t0 = now();
  const children = await spawnSleepers(N);
  const startMs = now() - t0;
  const sample = children.slice(0, MEMORY_SAMPLE).map((c) => tree(c.pid as number));
  const memory = sample.flat().reduce((sum, pid) => sum + pss(pid), 0);
  const t1 = now();
  const exits = children.map((c) => new Promise((resolve) => c.once("exit", resolve)));
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(exits);
  return {
    startMs,
    stopMs: now() - t1,
    pssBytesPerWorkload: memory / sample.length,
    processesPerWorkload: sample.flat().length / sample.length,
  };
}

async function viaKernel(backend: ProcessBackend, label: string, round: number): Promise<Sample> {
  const kernelId = `bench-${label}-${round}`;
  const kernel = createRuntimeKernel({
    backend,
    kernelId,
    reapAfterMs: 600_000,
    maxConcurrentStarts: 256,
    profiles: { sleeper: { runnable: { command: ["sleep", "60"] }, graceMs: 30_000 } },
  });
  const ids = Array.from({ length: N }, (_, i) => `w-${round}-${i}`);
  const t0 = now();
  await Promise.all(ids.map((workloadId) => kernel.create({ workloadId, profile: "sleeper" })));
  const startMs = now() - t0;
  // Everything a sandbox holds exists once the command runs: wait for that before sampling.
  const found = (await backend.discover({ kernelId })).slice(0, MEMORY_SAMPLE);
  const trees = found.map((f) => tree((f.handle as ProcessHandle).pid));
  const memory = trees.flat().reduce((sum, pid) => sum + pss(pid), 0);
  const t1 = now();
  await Promise.all(ids.map((id) => kernel.stop(id)));
  const stopMs = now() - t1;
  await kernel.shutdown();
  return {
    startMs,
    stopMs,
    pssBytesPerWorkload: memory / trees.length,
    processesPerWorkload: trees.flat().length / trees.length,
  };
}

const stateDirs = [
  await mkdtemp(join(tmpdir(), "rk-bench-plain-")),
  await mkdtemp(join(tmpdir(), "rk-bench-sbx-")),
];
const plain = new ProcessBackend({ stateDir: stateDirs[0] as string, maxWorkloads: N * 2 });
const sandboxed = new ProcessBackend({ stateDir: stateDirs[1] as string, maxWorkloads: N * 2, sandbox: {} });

const samples: Record<"raw" | "process" | "sandbox", Sample[]> = { raw: [], process: [], sandbox: [] };
const ratios = { sandboxStart: [] as number[], sandboxStop: [] as number[], processStart: [] as number[] };
try {
  // Warm both supervisors (and their log file pools) outside the measurements.
  await plain.supervisorStats();
  await sandboxed.supervisorStats();
  for (let round = 0; round < ROUNDS; round++) {
    const r = await raw();
    const p = await viaKernel(plain, "process", round);
    const s = await viaKernel(sandboxed, "sandbox", round);
    samples.raw.push(r);
    samples.process.push(p);
    samples.sandbox.push(s);
    ratios.sandboxStart.push(s.startMs / p.startMs);
    ratios.sandboxStop.push(s.stopMs / p.stopMs);
    ratios.processStart.push(p.startMs / r.startMs);
  }
} finally {
  for (const backend of [plain, sandboxed]) {
    await backend.stopSupervisor({ force: true }).catch(() => {});
    await backend.close();
  }
  for (const dir of stateDirs) rmSync(dir, { recursive: true, force: true });
}

const summary = (xs: Sample[]) => ({
  startMs: round2(median(xs.map((x) => x.startMs))),
  stopMs: round2(median(xs.map((x) => x.stopMs))),
  pssKiBPerWorkload: round2(median(xs.map((x) => x.pssBytesPerWorkload)) / 1024),
  processesPerWorkload: round2(median(xs.map((x) => x.processesPerWorkload))),
});
console.log(
  JSON.stringify({
    bench: "sandbox",
    n: N,
    rounds: ROUNDS,
    raw: summary(samples.raw),
    process: summary(samples.process),
    sandbox: summary(samples.sandbox),
    ratio: {
      sandboxToProcessStart: round2(median(ratios.sandboxStart)),
      sandboxToProcessStop: round2(median(ratios.sandboxStop)),
      processToRawStart: round2(median(ratios.processStart)),
      target: "sandboxed start and stop at most 1.5x the unsandboxed backend",
    },
  }),
);
