/**
 * The sandboxed process backend beside the unsandboxed one and raw spawn, in the same run.
 *
 *   npm run bench:sandbox    (node --expose-gc --import tsx bench/sandbox.bench.ts)
 *
 * Prints one JSON line. Rounds are interleaved (raw, process, bwrap, sandboxed, ...) and
 * medians reported, with ratios taken within each round. What is measured, for N (default
 * 1,000) concurrent `sleep 60`:
 * - the time until all run (`create` resolved for each; in a sandbox, also its command
 *   running, past bubblewrap's setup), and until all are stopped after a stop of all
 *   (SIGTERM), for raw `child_process.spawn` (stdio ignored: the floor), the kernel
 *   on `ProcessBackend`, raw bubblewrap (the very argv the sandboxed backend spawns, spawned
 *   with `child_process.spawn` and signalled by process group: the sandbox's own floor), and
 *   the kernel on `ProcessBackend({ sandbox: {} })`;
 * - the memory each live workload costs the machine: the proportional set size (Pss) of all
 *   its processes (the command, and in a sandbox bubblewrap's monitor and init), for a sample
 *   of the live workloads of each.
 */

import type { ChildProcess } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProcessBackend, type ProcessHandle } from "../src/backends/process/index.js";
import { sleeperKernel } from "./kernel-phases.js";
import { tree, untilCommandsRun } from "./proc-tree.js";
import { AS_THE_SUPERVISOR_SPAWNS, sandboxedSleepArgv, spawnAll, spawnSleepers } from "./raw-floor.js";

const N = Number(process.env.BENCH_N ?? 1_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const MEMORY_SAMPLE = 50;

const now = () => performance.now();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] as number;
const round2 = (x: number) => Math.round(x * 100) / 100;

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
  return sampleThenStop(children, now() - t0, (c) => c.kill("SIGTERM"));
}

/** Samples the memory of live children, then times their stop (`stop` each) until all exited. */
async function sampleThenStop(
  children: ChildProcess[],
  startMs: number,
  stop: (child: ChildProcess) => void,
): Promise<Sample> {
  const sample = children.slice(0, MEMORY_SAMPLE).map((c) => tree(c.pid as number));
  const memory = sample.flat().reduce((sum, pid) => sum + pss(pid), 0);
  const t1 = now();
  const exits = children.map((c) => new Promise((resolve) => c.once("exit", resolve)));
  for (const c of children) stop(c);
  await Promise.all(exits);
  return {
    startMs,
    stopMs: now() - t1,
    pssBytesPerWorkload: memory / sample.length,
    processesPerWorkload: sample.flat().length / sample.length,
  };
}

/**
 * Raw bubblewrap: the argv the sandboxed backend spawns for `sleep 60`, spawned as the
 * supervisor spawns it (its own process group, stdio not the kernel's); started once each has
 * spawned, stopped by a SIGTERM to each group once every command runs.
 */
async function bwrap(): Promise<Sample> {
  const argv = sandboxedSleepArgv();
  const t0 = now();
  const children = await spawnAll(argv, N, AS_THE_SUPERVISOR_SPAWNS);
  await untilCommandsRun(children.map((c) => c.pid as number));
  return sampleThenStop(children, now() - t0, (c) => process.kill(-(c.pid as number), "SIGTERM"));
}

/**
 * Waits until every sandbox of `pids` runs its command. A start resolves once bubblewrap is
 * spawned, and its setup (namespaces, mounts) goes on after: counted in the start, so that it
 * does not spill into the stop measured next.
 */
async function viaKernel(
  backend: ProcessBackend,
  label: string,
  round: number,
  sandbox = false,
): Promise<Sample> {
  const kernelId = `bench-${label}-${round}`;
  const kernel = sleeperKernel(backend, kernelId);
  const ids = Array.from({ length: N }, (_, i) => `w-${round}-${i}`);
  const t0 = now();
  await Promise.all(ids.map((workloadId) => kernel.create({ workloadId, profile: "sleeper" })));
  const found = (await backend.discover({ kernelId })).map((f) => (f.handle as ProcessHandle).pid);
  if (sandbox) await untilCommandsRun(found);
  const startMs = now() - t0;
  const trees = found.slice(0, MEMORY_SAMPLE).map(tree);
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

const samples: Record<"raw" | "process" | "bwrap" | "sandbox", Sample[]> = {
  raw: [],
  process: [],
  bwrap: [],
  sandbox: [],
};
const ratios = {
  sandboxStart: [] as number[],
  sandboxStop: [] as number[],
  processStart: [] as number[],
  processStop: [] as number[],
  bwrapStop: [] as number[],
  sandboxToBwrapStop: [] as number[],
};
try {
  // Warm both supervisors (and their log file pools) outside the measurements.
  await plain.supervisorStats();
  await sandboxed.supervisorStats();
  for (let round = 0; round < ROUNDS; round++) {
    const r = await raw();
    const p = await viaKernel(plain, "process", round);
    const b = await bwrap();
    const s = await viaKernel(sandboxed, "sandbox", round, true);
    samples.raw.push(r);
    samples.process.push(p);
    samples.bwrap.push(b);
    samples.sandbox.push(s);
    ratios.sandboxStart.push(s.startMs / p.startMs);
    ratios.sandboxStop.push(s.stopMs / p.stopMs);
    ratios.processStart.push(p.startMs / r.startMs);
    ratios.processStop.push(p.stopMs / r.stopMs);
    ratios.bwrapStop.push(b.stopMs / r.stopMs);
    ratios.sandboxToBwrapStop.push(s.stopMs / b.stopMs);
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
    bwrap: summary(samples.bwrap),
    sandbox: summary(samples.sandbox),
    ratio: {
      sandboxToProcessStart: round2(median(ratios.sandboxStart)),
      sandboxToProcessStop: round2(median(ratios.sandboxStop)),
      processToRawStart: round2(median(ratios.processStart)),
      processToRawStop: round2(median(ratios.processStop)),
      // The substrate's own floor: raw bubblewrap's stop against raw spawn's, and the
      // sandboxed kernel's against raw bubblewrap's.
      bwrapToRawStop: round2(median(ratios.bwrapStop)),
      sandboxToBwrapStop: round2(median(ratios.sandboxToBwrapStop)),
      target: "sandboxed start and stop at most 1.5x the unsandboxed backend",
    },
  }),
);
