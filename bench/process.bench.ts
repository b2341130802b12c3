/**
 * The process backend against the raw floor, measured in the same run.
 *
 *   node --expose-gc --import tsx bench/process.bench.ts
 *
 * Prints one JSON line. Rounds are interleaved (raw, execa, kernel, ...) and the medians
 * reported, with ratios taken within each round. What is measured:
 * - 1,000 concurrent `sleep 60`: time until all run, and until all are stopped after a stop
 *   of all (SIGTERM), for raw `child_process.spawn` (stdio ignored, the floor), execa with
 *   the cheapest options found (stdio ignored, no buffering, no cleanup hook) and with its
 *   defaults, and the kernel on the ProcessBackend (the supervisor already running).
 * - CPU: the parent's per workload, and the supervisor's (it does the forking); for the stop
 *   of all, the whole machine's too (the dying processes included), which tells whether
 *   the stop is bound by the machine's cores rather than by waiting.
 * - Exit-to-stopped latency for 1,000 short workloads: from the supervisor observing the
 *   exit (its journal's timestamp) to the kernel's `stopped` event.
 * - Parent memory per live workload (RSS and heap, after GC), kernel and raw.
 */
import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { execa } from "execa";
import { ProcessBackend } from "../src/backends/process/index.js";
import { createRuntimeKernel, type RuntimeKernel } from "../src/index.js";
import { FakeBackend } from "../src/testing/index.js";
import { untilLogPoolHolds } from "./kernel-phases.js";
import { spawnSleepers } from "./raw-floor.js";

const N = Number(process.env.BENCH_N ?? 1_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const LATENCY_N = Number(process.env.BENCH_LATENCY_N ?? 1_000);
const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});

const now = () => performance.now();
const epoch = () => performance.timeOrigin + performance.now();
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
};
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
};
const round2 = (x: number) => Math.round(x * 100) / 100;
const cpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
/** utime + stime of another process, in ms. */
const cpuOf = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
};
/**
 * utime + stime of the supervisor and its spawners (which fork for it), in ms, by pid: what
 * the kernel's starts and stops cost the supervisor's side. A spawner launched since `before`
 * counts whole.
 */
const supervisorSideCpu = async (backend: ProcessBackend, before?: Map<number, number>) => {
  const { pid, spawners = [] } = await backend.supervisorStats();
  const now = new Map([pid, ...spawners.map((s) => s.pid)].map((p) => [p, cpuOf(p)]));
  let spent = 0;
  for (const [p, ms] of now) spent += ms - (before?.get(p) ?? 0);
  return { now, spent };
};
/** CPU time all processes of the machine spent busy, in ms (clock ticks of /proc/stat). */
const machineBusyMs = () => {
  const line = readFileSync("/proc/stat", "latin1").split("\n", 1)[0] as string;
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return (user + nice + system + irq + softirq + steal) * 10;
};
const memory = () => {
  gc();
  gc();
  const m = process.memoryUsage();
  return { rss: m.rss, heap: m.heapUsed };
};

interface Sample {
  startMs: number;
  stopMs: number;
  /** CPU the whole machine spent during the stop of all (every process, the dying ones too). */
  stopMachineCpuMs?: number;
  /** CPU this process spent during the stop of all. */
  stopParentCpuMs?: number;
  stopSupervisorCpuMs?: number;
  parentCpuMsPerWorkload: number;
  childCpuMsPerWorkload?: number;
}

async function raw(): Promise<Sample> {
  const cpu0 = cpuMs();
  const t0 = now();
  const children = await spawnSleepers(N);
  const startMs = now() - t0;
  const cpu1 = cpuMs();
  const busy1 = machineBusyMs();
  const t1 = now();
  const exits = children.map((c) => new Promise((resolve) => c.once("exit", resolve)));
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(exits);
  return {
    startMs,
    stopMs: now() - t1,
    stopMachineCpuMs: machineBusyMs() - busy1,
    stopParentCpuMs: cpuMs() - cpu1,
    parentCpuMsPerWorkload: (cpu1 - cpu0) / N,
  };
}

async function viaExeca(cheap: boolean): Promise<Sample> {
  const options = cheap
    ? ({
        stdin: "ignore",
        stdout: "ignore",
        stderr: "ignore",
        buffer: false,
        cleanup: false,
        reject: false,
      } as const)
    : ({ reject: false } as const);
  const cpu0 = cpuMs();
  const t0 = now();
  const subprocesses = Array.from({ length: N }, () => execa("sleep", ["60"], options));
  await Promise.all(subprocesses.map((s) => new Promise((resolve) => s.once("spawn", resolve))));
  const startMs = now() - t0;
  const cpu1 = cpuMs();
  const t1 = now();
  for (const s of subprocesses) s.kill("SIGTERM");
  await Promise.all(subprocesses);
  return { startMs, stopMs: now() - t1, parentCpuMsPerWorkload: (cpu1 - cpu0) / N };
}

async function viaKernel(backend: ProcessBackend, round: number): Promise<Sample> {
  const kernel = createRuntimeKernel({
    backend,
    kernelId: `bench-${round}`,
    reapAfterMs: 600_000,
    maxConcurrentStarts: 256,
    profiles: { sleeper: { runnable: { command: ["sleep", "60"] }, graceMs: 30_000 } },
  });
  const ids = Array.from({ length: N }, (_, i) => `w-${round}-${i}`);
  const side0 = (await supervisorSideCpu(backend)).now;
  const cpu0 = cpuMs();
  const t0 = now();
  await Promise.all(ids.map((workloadId) => kernel.create({ workloadId, profile: "sleeper" })));
  const startMs = now() - t0;
  const cpu1 = cpuMs();
  const side1 = await supervisorSideCpu(backend, side0);
  const busy1 = machineBusyMs();
  const t1 = now();
  await Promise.all(ids.map((id) => kernel.stop(id)));
  const stopMs = now() - t1;
  const stopMachineCpuMs = machineBusyMs() - busy1;
  const stopParentCpuMs = cpuMs() - cpu1;
  const stopSupervisorCpuMs = (await supervisorSideCpu(backend, side1.now)).spent;
  await kernel.shutdown();
  return {
    startMs,
    stopMs,
    stopMachineCpuMs,
    stopParentCpuMs,
    stopSupervisorCpuMs,
    parentCpuMsPerWorkload: (cpu1 - cpu0) / N,
    childCpuMsPerWorkload: side1.spent / N,
  };
}

/** Parent memory per live workload: N live sleepers, raw and under the kernel, each from a settled heap. */
async function memoryPerWorkload(backend: ProcessBackend): Promise<Record<string, number>> {
  const rawBefore = memory();
  const children = await spawnSleepers(N);
  const rawLive = memory();
  await Promise.all(
    children.map((c) => {
      const exited = new Promise((resolve) => c.once("exit", resolve));
      c.kill("SIGKILL");
      return exited;
    }),
  );
  const kernel = createRuntimeKernel({
    backend,
    kernelId: "bench-memory",
    reapAfterMs: 600_000,
    maxConcurrentStarts: 256,
    profiles: { sleeper: { runnable: { command: ["sleep", "60"] }, graceMs: 30_000 } },
  });
  const ids = Array.from({ length: N }, (_, i) => `m-${i}`);
  const before = memory();
  await Promise.all(ids.map((workloadId) => kernel.create({ workloadId, profile: "sleeper" })));
  const live = memory();
  await kernel.shutdown({ graceMs: 0 });
  return {
    kernelRssBytes: Math.round((live.rss - before.rss) / N),
    kernelHeapBytes: Math.round((live.heap - before.heap) / N),
    rawRssBytes: Math.round((rawLive.rss - rawBefore.rss) / N),
    rawHeapBytes: Math.round((rawLive.heap - rawBefore.heap) / N),
  };
}

/** The kernel on the in-memory FakeBackend: the kernel's own share of a create and a stop. */
async function kernelOnFake(round: number): Promise<Sample> {
  const kernel = createRuntimeKernel({
    backend: new FakeBackend(),
    kernelId: `bench-fake-${round}`,
    reapAfterMs: 600_000,
    maxConcurrentStarts: 256,
    profiles: { sleeper: { runnable: { command: ["sleep", "60"] }, graceMs: 30_000 } },
  });
  const ids = Array.from({ length: N }, (_, i) => `f-${round}-${i}`);
  const cpu0 = cpuMs();
  const t0 = now();
  await Promise.all(ids.map((workloadId) => kernel.create({ workloadId, profile: "sleeper" })));
  const startMs = now() - t0;
  const cpu1 = cpuMs();
  const t1 = now();
  await Promise.all(ids.map((id) => kernel.stop(id)));
  const stopMs = now() - t1;
  await kernel.shutdown();
  return { startMs, stopMs, parentCpuMsPerWorkload: (cpu1 - cpu0) / N };
}

/** The backend alone (no kernel): what the supervisor design costs by itself. */
async function viaPort(backend: ProcessBackend, round: number): Promise<Sample> {
  const signal = new AbortController().signal;
  const side0 = (await supervisorSideCpu(backend)).now;
  const cpu0 = cpuMs();
  const t0 = now();
  const handles = await Promise.all(
    Array.from({ length: N }, (_, i) =>
      backend.start(
        {
          kernelId: "bench-port",
          workloadId: `p-${round}-${i}`,
          runId: `p-${round}-${i}`,
          profile: "sleeper",
          runnable: { command: ["sleep", "60"] },
          env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
          labels: {},
        },
        { signal },
      ),
    ),
  );
  const startMs = now() - t0;
  const cpu1 = cpuMs();
  const side1 = await supervisorSideCpu(backend, side0);
  const t1 = now();
  const exits = handles.map((h) => new Promise((resolve) => backend.watchExit(h, resolve)));
  await Promise.all(handles.map((h) => backend.terminate(h, { graceMs: 30_000 })));
  await Promise.all(exits);
  const stopMs = now() - t1;
  await Promise.all(handles.map((h) => backend.cleanup(h)));
  return {
    startMs,
    stopMs,
    parentCpuMsPerWorkload: (cpu1 - cpu0) / N,
    childCpuMsPerWorkload: side1.spent / N,
  };
}

/** 1,000 `true`s, 8 at a time: the supervisor's exit timestamp to the kernel's stopped event. */
async function latency(
  backend: ProcessBackend,
): Promise<{ p50: number; p99: number; createToStoppedP50: number }> {
  const kernel: RuntimeKernel = createRuntimeKernel({
    backend,
    kernelId: "bench-latency",
    reapAfterMs: 600_000,
    profiles: { short: { runnable: { command: ["true"] } } },
  });
  const stoppedAt = new Map<string, number>();
  kernel.on("transition", (e) => {
    if (e.state === "stopped") stoppedAt.set(e.runId, epoch());
  });
  const createToStopped: number[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < LATENCY_N) {
        const id = `l-${next++}`;
        const t0 = epoch();
        await kernel.create({ workloadId: id, profile: "short" });
        await kernel.waitFor(id, "stopped");
        createToStopped.push(epoch() - t0);
      }
    }),
  );
  const exitedAt = new Map<string, number>();
  for (const line of readFileSync(join(backend.stateDir, "journal.ndjson"), "utf8").split("\n")) {
    if (!line.includes('"op":"exit"')) continue;
    const entry = JSON.parse(line) as { runId: string; exit: { at: number } };
    exitedAt.set(entry.runId, entry.exit.at);
  }
  const latencies: number[] = [];
  for (const [runId, at] of stoppedAt) {
    const exited = exitedAt.get(runId);
    if (exited !== undefined) latencies.push(at - exited);
  }
  await kernel.shutdown();
  return { p50: pct(latencies, 50), p99: pct(latencies, 99), createToStoppedP50: median(createToStopped) };
}

async function rawTrue(): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 200; i++) {
    const t0 = now();
    await new Promise((resolve) => spawn("true", [], { stdio: "ignore" }).once("exit", resolve));
    times.push(now() - t0);
  }
  return median(times);
}

const stateDir = await mkdtemp(join(tmpdir(), "rk-bench-"));
const backend = new ProcessBackend({ stateDir, supervisorIdleMs: 5_000 });
const noPoolStateDir = await mkdtemp(join(tmpdir(), "rk-bench-"));
const noPool = new ProcessBackend({ stateDir: noPoolStateDir, supervisorIdleMs: 5_000, logFilePool: false });
const launch0 = now();
await backend.supervisorStats();
const supervisorLaunchMs = now() - launch0;
await noPool.supervisorStats();

const memoryFigures = await memoryPerWorkload(backend);

// The first kernel round on a new state dir: its log-file pool holds 64 pairs, not N.
await untilLogPoolHolds(backend, 128);
const cold = await viaKernel(backend, -1);
await untilLogPoolHolds(backend, 2 * N);

const rounds: Array<Record<string, Sample>> = [];
for (let r = 0; r < ROUNDS; r++) {
  const rawSample = await raw();
  const execaCheap = await viaExeca(true);
  const execaDefault = await viaExeca(false);
  const port = await viaPort(backend, r);
  await untilLogPoolHolds(backend, 2 * N);
  const kernelSample = await viaKernel(backend, r);
  await untilLogPoolHolds(backend, 2 * N);
  const kernelNoPool = await viaKernel(noPool, r);
  const fake = await kernelOnFake(r);
  rounds.push({ raw: rawSample, execaCheap, execaDefault, port, kernel: kernelSample, kernelNoPool, fake });
}
const lat = await latency(backend);
const rawTrueMs = await rawTrue();
const { rss: supervisorRss, spawners = [] } = await backend.supervisorStats();
const spawnerRss = spawners.reduce((sum, s) => sum + s.rss, 0);
await backend.stopSupervisor({ force: true });
await noPool.stopSupervisor({ force: true });
rmSync(stateDir, { recursive: true, force: true });
rmSync(noPoolStateDir, { recursive: true, force: true });

const med = (variant: string, key: keyof Sample) =>
  round2(median(rounds.map((r) => r[variant]?.[key] as number)));
const ratio = (variant: string, key: keyof Sample) =>
  round2(median(rounds.map((r) => (r[variant]?.[key] as number) / (r.raw?.[key] as number))));

process.stdout.write(
  `${JSON.stringify({
    bench: "process",
    n: N,
    rounds: ROUNDS,
    cores: availableParallelism(),
    supervisorLaunchMs: round2(supervisorLaunchMs),
    concurrentSleep: {
      raw: {
        startAllMs: med("raw", "startMs"),
        stopAllMs: med("raw", "stopMs"),
        stopMachineCpuMs: med("raw", "stopMachineCpuMs"),
        stopParentCpuMs: med("raw", "stopParentCpuMs"),
        parentCpuMs: med("raw", "parentCpuMsPerWorkload"),
      },
      execaCheap: {
        startAllMs: med("execaCheap", "startMs"),
        stopAllMs: med("execaCheap", "stopMs"),
        parentCpuMs: med("execaCheap", "parentCpuMsPerWorkload"),
        startRatio: ratio("execaCheap", "startMs"),
      },
      execaDefault: {
        startAllMs: med("execaDefault", "startMs"),
        stopAllMs: med("execaDefault", "stopMs"),
        parentCpuMs: med("execaDefault", "parentCpuMsPerWorkload"),
        startRatio: ratio("execaDefault", "startMs"),
      },
      port: {
        startAllMs: med("port", "startMs"),
        stopAllMs: med("port", "stopMs"),
        parentCpuMs: med("port", "parentCpuMsPerWorkload"),
        supervisorCpuMs: med("port", "childCpuMsPerWorkload"),
        startRatio: ratio("port", "startMs"),
        stopRatio: ratio("port", "stopMs"),
      },
      kernelNoPool: {
        startAllMs: med("kernelNoPool", "startMs"),
        stopAllMs: med("kernelNoPool", "stopMs"),
        supervisorCpuMs: med("kernelNoPool", "childCpuMsPerWorkload"),
        startRatio: ratio("kernelNoPool", "startMs"),
      },
      kernelOnFakeBackend: {
        startAllMs: med("fake", "startMs"),
        stopAllMs: med("fake", "stopMs"),
        parentCpuMs: med("fake", "parentCpuMsPerWorkload"),
      },
      kernelColdPool: { startAllMs: round2(cold.startMs), stopAllMs: round2(cold.stopMs) },
      kernel: {
        startAllMs: med("kernel", "startMs"),
        stopAllMs: med("kernel", "stopMs"),
        stopMachineCpuMs: med("kernel", "stopMachineCpuMs"),
        stopParentCpuMs: med("kernel", "stopParentCpuMs"),
        stopSupervisorCpuMs: med("kernel", "stopSupervisorCpuMs"),
        parentCpuMs: med("kernel", "parentCpuMsPerWorkload"),
        supervisorCpuMs: med("kernel", "childCpuMsPerWorkload"),
        startRatio: ratio("kernel", "startMs"),
        stopRatio: ratio("kernel", "stopMs"),
      },
    },
    exitToStopped: { p50Ms: round2(lat.p50), p99Ms: round2(lat.p99) },
    shortWorkload: {
      kernelCreateToStoppedP50Ms: round2(lat.createToStoppedP50),
      rawSpawnToExitP50Ms: round2(rawTrueMs),
    },
    memoryPerLiveWorkload: {
      ...memoryFigures,
      supervisorRssBytes: supervisorRss,
      spawnerRssBytes: spawnerRss,
    },
    targets: {
      startRatioMax: 1.5,
      stopRatioMax: 1.5,
      memoryPerWorkloadMaxBytes: 65_536,
    },
  })}\n`,
);
