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
import { type Calls, median, pct, type RoundResult, r3, round, summary } from "./cycles.js";

const CYCLES = Number(process.env.BENCH_CYCLES ?? 1_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1);

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
  await round(inProcess, CYCLES);
  await round(overGrpc, CYCLES);
}
const local: RoundResult[] = [];
const remote: RoundResult[] = [];
const throughputRatios: number[] = [];
const p99Ratios: number[] = [];
const cpuRatios: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  // Alternate which side goes first, so neither always runs on a warmer heap.
  const [a, b] = i % 2 === 0 ? [inProcess, overGrpc] : [overGrpc, inProcess];
  const first = await round(a, CYCLES);
  const second = await round(b, CYCLES);
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
    inProcess: summary(local, CYCLES),
    grpc: summary(remote, CYCLES),
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
