/**
 * The runtime.v1 service's overhead: the same workload of calls over gRPC and on the kernel
 * in process, measured in the same run.
 *
 *   node --expose-gc --import tsx bench/service.bench.ts
 *
 * Prints one JSON line. Each round runs 1,000 cycles of Create + Stop + Destroy (each on a
 * fresh workload id) from 16 concurrent callers against one kernel on the fake backend:
 * - inProcess: 16 loops calling `kernel.create/stop/destroy` directly (the floor);
 * - grpc: 16 loops, each with its own `createRuntimeClient` (its own channel and connection),
 *   calling a `serveRuntimeKernel` server on a unix socket (the default transport).
 * Rounds alternate (after a warm-up) and the medians over rounds are reported, with the
 * ratios grpc/inProcess taken within each round. Clients and server share this one process
 * and its event loop, so the gRPC figures include both ends of every call (encode, send,
 * decode, on both sides); cpuMsPerCycle is this process's CPU time per cycle.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRuntimeKernel, type RuntimeKernel } from "../src/index.js";
import { createRuntimeClient, serveRuntimeKernel } from "../src/server/index.js";
import { FakeBackend } from "../src/testing/index.js";

const CYCLES = Number(process.env.BENCH_CYCLES ?? 1_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1);

/** The three calls of one cycle, on either side. */
interface Calls {
  create(id: string): Promise<unknown>;
  stop(id: string): Promise<unknown>;
  destroy(id: string): Promise<unknown>;
}

interface RoundResult {
  wallMs: number;
  cpuMs: number;
  cycleMs: number[];
  callMs: number[];
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
};
const median = (xs: number[]) => pct(xs, 50);
const r3 = (x: number) => Math.round(x * 1000) / 1000;

let serial = 0;

/** 1,000 cycles from `callers.length` concurrent loops; every call and cycle timed. */
async function round(callers: Calls[]): Promise<RoundResult> {
  globalThis.gc?.();
  const cycleMs: number[] = [];
  const callMs: number[] = [];
  let remaining = CYCLES;
  const timed = async (call: () => Promise<unknown>) => {
    const t = performance.now();
    await call();
    callMs.push(performance.now() - t);
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    callers.map(async (calls) => {
      while (remaining > 0) {
        remaining--;
        const id = `w-${++serial}`;
        const t = performance.now();
        await timed(() => calls.create(id));
        await timed(() => calls.stop(id));
        await timed(() => calls.destroy(id));
        cycleMs.push(performance.now() - t);
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { wallMs, cpuMs: (cpu.user + cpu.system) / 1000, cycleMs, callMs };
}

function summary(results: RoundResult[]) {
  return {
    cyclesPerSec: r3(median(results.map((r) => (CYCLES / r.wallMs) * 1000))),
    callsPerSec: r3(median(results.map((r) => ((3 * CYCLES) / r.wallMs) * 1000))),
    cycleP50Ms: r3(median(results.map((r) => pct(r.cycleMs, 50)))),
    cycleP99Ms: r3(median(results.map((r) => pct(r.cycleMs, 99)))),
    callP50Ms: r3(median(results.map((r) => pct(r.callMs, 50)))),
    callP99Ms: r3(median(results.map((r) => pct(r.callMs, 99)))),
    cpuMsPerCycle: r3(median(results.map((r) => r.cpuMs / CYCLES))),
  };
}

const dir = mkdtempSync(join(tmpdir(), "rk-sbench-"));
// Every cycle destroys its workload, so nothing accumulates across rounds.
const kernel: RuntimeKernel = createRuntimeKernel({
  backend: new FakeBackend(),
  profiles: { default: { runnable: { command: ["agent"] } } },
  maxConcurrentStarts: CONCURRENCY,
});
const server = await serveRuntimeKernel(kernel, {
  address: `unix:${join(dir, "rk.sock")}`,
  onClose: "keep-kernel",
});
const clients = Array.from({ length: CONCURRENCY }, () => createRuntimeClient(server.address));
await Promise.all(clients.map((c) => c.waitForReady(5_000)));

const inProcess: Calls[] = Array.from({ length: CONCURRENCY }, () => ({
  create: (id) => kernel.create({ workloadId: id, profile: "default" }),
  stop: (id) => kernel.stop(id),
  destroy: (id) => kernel.destroy(id),
}));
const overGrpc: Calls[] = clients.map((client) => ({
  create: (id) => client.create({ workloadId: id, profile: "default" }),
  stop: (id) => client.stop(id),
  destroy: (id) => client.destroy(id),
}));

for (let i = 0; i < WARMUP; i++) {
  await round(inProcess);
  await round(overGrpc);
}
const local: RoundResult[] = [];
const remote: RoundResult[] = [];
const throughputRatios: number[] = [];
const p99Ratios: number[] = [];
const cpuRatios: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  // Alternate which side goes first, so neither always runs on a warmer heap.
  const [a, b] = i % 2 === 0 ? [inProcess, overGrpc] : [overGrpc, inProcess];
  const first = await round(a);
  const second = await round(b);
  const [l, g] = i % 2 === 0 ? [first, second] : [second, first];
  local.push(l);
  remote.push(g);
  throughputRatios.push(g.wallMs / l.wallMs);
  p99Ratios.push(pct(g.cycleMs, 99) / pct(l.cycleMs, 99));
  cpuRatios.push(g.cpuMs / l.cpuMs);
}

for (const client of clients) client.close();
await server.close();
await kernel.shutdown();
rmSync(dir, { recursive: true, force: true });

const leftover = kernel.list().length;
console.log(
  JSON.stringify({
    bench: "service",
    workload: `${CYCLES} x Create+Stop+Destroy, ${CONCURRENCY} concurrent callers, fake backend`,
    transport: "unix socket, one channel per client, clients and server in one process",
    rounds: ROUNDS,
    node: process.version,
    inProcess: summary(local),
    grpc: summary(remote),
    // grpc / inProcess, within each round: wall time for the 1,000 cycles (the inverse of the
    // throughput ratio), p99 cycle latency, and CPU per cycle.
    ratio: {
      wall: r3(median(throughputRatios)),
      cycleP99: r3(median(p99Ratios)),
      cpuPerCycle: r3(median(cpuRatios)),
    },
    leftoverWorkloads: leftover,
  }),
);
