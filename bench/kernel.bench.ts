/**
 * Kernel overhead, measured beside its floor in the same run.
 *
 * - lifecycle: N workloads go create -> running -> stop -> stopped -> destroyed on the
 *   FakeBackend, through the kernel; the baseline drives the same backend calls through a
 *   bare XState actor per workload (the same five states, no kernel around it).
 *   Rounds are interleaved and the ratio is taken within each round.
 * - heap: bytes of heap per live running workload at 10,000 and 100,000 workloads, for
 *   the kernel and for the bare actors.
 *
 * Run: npm run bench:kernel  (node --expose-gc --import tsx bench/kernel.bench.ts)
 * Prints one JSON line.
 */
import { createActor } from "xstate";
import { createRuntimeKernel, type ExitStatus, lifecycleMachine, type StartRequest } from "../src/index.js";
import { FakeBackend, type FakeHandle } from "../src/testing/index.js";

const N = Number(process.env.BENCH_N ?? 10_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc");

const profiles = { agent: { runnable: { command: ["agent"] }, graceMs: 1_000 } };

/**
 * The bare baseline: the kernel's own lifecycle machine (its actions left as no-ops), one
 * actor per workload, driven event by event with the same backend calls, no kernel around it.
 */
type Bare = ReturnType<typeof createActor<typeof lifecycleMachine>>;

function request(i: number): StartRequest {
  const id = `w${i}`;
  return {
    kernelId: "bench",
    workloadId: id,
    runId: `r${i}`,
    profile: "agent",
    runnable: { command: ["agent"] },
    env: {},
    labels: {},
  };
}

async function bareStart(backend: FakeBackend, n: number) {
  const signal = new AbortController().signal;
  return Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const actor: Bare = createActor(lifecycleMachine, {
        input: { workloadId: `w${i}`, runId: `r${i}`, graceMs: 1_000, idleTimeoutMs: 0, maxLifetimeMs: 0 },
      }).start();
      actor.send({ type: "LAUNCH" });
      const handle = await backend.start(request(i), { signal });
      actor.send({ type: "STARTED", handle, now: Date.now() });
      return actor;
    }),
  );
}

async function bareLifecycle(n: number): Promise<number> {
  const backend = new FakeBackend();
  const t0 = performance.now();
  const actors = await bareStart(backend, n);
  await Promise.all(
    actors.map(async (actor) => {
      const handle = actor.getSnapshot().context.handle as FakeHandle;
      const exited = new Promise<ExitStatus>((resolve) => backend.watchExit(handle, resolve));
      actor.send({ type: "STOP", reason: "requested" });
      await backend.terminate(handle, { graceMs: 1_000 });
      actor.send({ type: "EXITED", status: await exited });
      actor.send({ type: "DESTROY" });
      await backend.cleanup(handle);
      actor.send({ type: "CLEANED" });
    }),
  );
  return ((performance.now() - t0) * 1_000) / n;
}

async function kernelLifecycle(n: number): Promise<number> {
  const kernel = createRuntimeKernel({ backend: new FakeBackend(), profiles, maxConcurrentStarts: n });
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: n }, (_, i) => kernel.create({ workloadId: `w${i}`, profile: "agent" })),
  );
  await Promise.all(Array.from({ length: n }, (_, i) => kernel.destroy(`w${i}`)));
  const us = ((performance.now() - t0) * 1_000) / n;
  await kernel.shutdown();
  return us;
}

async function heapPerWorkload(n: number, which: "kernel" | "bare"): Promise<number> {
  gc?.();
  gc?.();
  const before = process.memoryUsage().heapUsed;
  let keep: unknown;
  let close: () => Promise<void>;
  if (which === "kernel") {
    const kernel = createRuntimeKernel({ backend: new FakeBackend(), profiles, maxConcurrentStarts: 1_000 });
    for (let i = 0; i < n; i += 10_000) {
      const batch = Array.from({ length: Math.min(10_000, n - i) }, (_, j) =>
        kernel.create({ workloadId: `w${i + j}`, profile: "agent" }),
      );
      await Promise.all(batch);
    }
    if (kernel.list({ state: "running" }).length !== n) throw new Error("not all running");
    keep = kernel;
    close = () => kernel.shutdown({ graceMs: 0 });
  } else {
    const backend = new FakeBackend();
    keep = [backend, await bareStart(backend, n)];
    close = async () => {};
  }
  gc?.();
  gc?.();
  const bytes = (process.memoryUsage().heapUsed - before) / n;
  void keep;
  await close();
  keep = undefined;
  return Math.round(bytes);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

// Warm up both paths so the JIT has seen them.
await bareLifecycle(2_000);
await kernelLifecycle(2_000);

const kernelUs: number[] = [];
const bareUs: number[] = [];
const ratios: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  gc();
  const b = await bareLifecycle(N);
  gc();
  const k = await kernelLifecycle(N);
  bareUs.push(b);
  kernelUs.push(k);
  ratios.push(k / b);
}

const heap10k = {
  kernel: await heapPerWorkload(10_000, "kernel"),
  bareXState: await heapPerWorkload(10_000, "bare"),
};
const heap100k = {
  kernel: await heapPerWorkload(100_000, "kernel"),
  bareXState: await heapPerWorkload(100_000, "bare"),
};

console.log(
  JSON.stringify({
    bench: "kernel",
    n: N,
    rounds: ROUNDS,
    lifecycleUs: { kernel: +median(kernelUs).toFixed(1), bareXState: +median(bareUs).toFixed(1) },
    lifecycleRatio: +median(ratios).toFixed(2),
    heapBytesPerRunningWorkload: { n10k: heap10k, n100k: heap100k },
    targets: { lifecycleRatioMax: 1.5, heapBytesAt100kMax: 8192 },
    liveWorkloads100k: "ok",
    node: process.version,
  }),
);
