/**
 * The HTTP surface's overhead and its callbacks' throughput, measured in one run beside the
 * in-process kernel and the gRPC service.
 *
 *   node --expose-gc --import tsx bench/http.bench.ts
 *
 * Prints one JSON line.
 * - cycles: each round runs 1,000 cycles of create + stop + destroy (each on a fresh workload
 *   id) from 16 concurrent callers against one kernel on the fake backend: in process (the
 *   floor), over gRPC (a unix socket, one channel per client: the service bench's transport),
 *   and over HTTP (loopback TCP, one kept-alive connection per client, JSON bodies). Rounds
 *   alternate after a warm-up; medians over rounds are reported, ratios taken within a round.
 *   Clients and servers share this one process, so each figure counts both ends of every call;
 *   cpuMsPerCycle is this process's CPU time per cycle.
 * - callbacks: 2,000 workloads created and destroyed over HTTP with a `callbackUrl`, so
 *   10,000 transitions go through the durable outbox (a real file) to a local receiver; the
 *   run checks that every event arrived, once, in order per workload.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { Agent, createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serveRuntimeHttp } from "../src/http/index.js";
import { createRuntimeKernel, type RuntimeKernel } from "../src/index.js";
import { createRuntimeClient, serveRuntimeKernel } from "../src/server/index.js";
import { FakeBackend } from "../src/testing/index.js";
import { type Calls, median, type RoundResult, r3, round, summary } from "./cycles.js";

const CYCLES = Number(process.env.BENCH_CYCLES ?? 1_000);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 1);
const CALLBACK_WORKLOADS = Number(process.env.BENCH_CALLBACK_WORKLOADS ?? 2_000);

/** One JSON request over a kept-alive connection; rejects on anything but the expected status. */
function httpCall(
  agent: Agent,
  base: URL,
  method: string,
  path: string,
  expected: number,
  body?: unknown,
): Promise<unknown> {
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        agent,
        host: base.hostname,
        port: base.port,
        method,
        path,
        headers: payload
          ? { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }
          : {},
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk) => (text += chunk));
        res.on("end", () =>
          res.statusCode === expected
            ? resolve(JSON.parse(text))
            : reject(new Error(`${method} ${path}: ${res.statusCode} ${text}`)),
        );
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const dir = mkdtempSync(join(tmpdir(), "rk-hbench-"));
const kernel: RuntimeKernel = createRuntimeKernel({
  backend: new FakeBackend(),
  profiles: { default: { runnable: { command: ["agent"] } } },
  maxConcurrentStarts: CONCURRENCY,
  reapAfterMs: 600_000,
});
const grpcServer = await serveRuntimeKernel(kernel, {
  address: `unix:${join(dir, "rk.sock")}`,
  onClose: "keep-kernel",
});
const httpServer = await serveRuntimeHttp(kernel, {
  address: "127.0.0.1:0",
  backend: "process",
  onClose: "keep-kernel",
  callbacks: { outboxPath: join(dir, "outbox", "outbox.jsonl") },
});
const base = new URL(httpServer.url);
const grpcClients = Array.from({ length: CONCURRENCY }, () => createRuntimeClient(grpcServer.address));
await Promise.all(grpcClients.map((c) => c.waitForReady(5_000)));
const agents = Array.from({ length: CONCURRENCY }, () => new Agent({ keepAlive: true, maxSockets: 1 }));

const inProcess: Calls[] = Array.from({ length: CONCURRENCY }, () => ({
  create: (id) => kernel.create({ workloadId: id, profile: "default" }),
  stop: (id) => kernel.stop(id),
  destroy: (id) => kernel.destroy(id),
}));
const overGrpc: Calls[] = grpcClients.map((client) => ({
  create: (id) => client.create({ workloadId: id, profile: "default" }),
  stop: (id) => client.stop(id),
  destroy: (id) => client.destroy(id),
}));
const overHttp: Calls[] = agents.map((agent) => ({
  create: (id) =>
    httpCall(agent, base, "POST", "/workloads", 201, { workloadId: id, profile: "default", env: {} }),
  stop: (id) => httpCall(agent, base, "POST", `/workloads/${id}/stop`, 200),
  destroy: (id) => httpCall(agent, base, "DELETE", `/workloads/${id}`, 200),
}));

const sides = { inProcess, grpc: overGrpc, http: overHttp };
type Side = keyof typeof sides;
const names = Object.keys(sides) as Side[];
for (let i = 0; i < WARMUP; i++) for (const name of names) await round(sides[name], CYCLES);
const results: Record<Side, RoundResult[]> = { inProcess: [], grpc: [], http: [] };
const httpVsGrpcCpu: number[] = [];
const httpVsGrpcWall: number[] = [];
const httpVsInProcessCpu: number[] = [];
for (let i = 0; i < ROUNDS; i++) {
  // Rotate which side goes first, so none always runs on a warmer heap.
  const order = names.map((_, k) => names[(i + k) % names.length] as Side);
  const got = {} as Record<Side, RoundResult>;
  for (const name of order) got[name] = await round(sides[name], CYCLES);
  for (const name of names) results[name].push(got[name]);
  httpVsGrpcCpu.push(got.http.cpuMs / got.grpc.cpuMs);
  httpVsGrpcWall.push(got.http.wallMs / got.grpc.wallMs);
  httpVsInProcessCpu.push(got.http.cpuMs / got.inProcess.cpuMs);
}

// ── callbacks: 10,000 transitions through the outbox to a local receiver ──
const received = new Map<string, string[]>();
const eventIds = new Set<string>();
let duplicates = 0;
let delivered = 0;
const expectedEvents = CALLBACK_WORKLOADS * 5;
let allDelivered!: () => void;
const done = new Promise<void>((resolve) => {
  allDelivered = resolve;
});
const receiver = createServer((req, res) => {
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    const id = req.headers["x-runtime-event-id"] as string;
    if (eventIds.has(id)) duplicates++;
    else {
      eventIds.add(id);
      const event = JSON.parse(body) as { workloadId: string; state: string };
      const list = received.get(event.workloadId) ?? [];
      list.push(event.state);
      received.set(event.workloadId, list);
      if (++delivered === expectedEvents) allDelivered();
    }
    res.writeHead(204).end();
  });
});
await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
const callbackUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/cb`;
globalThis.gc?.();
const cbCpu0 = process.cpuUsage();
const cbStart = performance.now();
let next = 0;
await Promise.all(
  agents.map(async (agent) => {
    while (next < CALLBACK_WORKLOADS) {
      const id = `cb-${next++}`;
      await httpCall(agent, base, "POST", "/workloads", 201, {
        workloadId: id,
        profile: "default",
        env: {},
        callbackUrl,
      });
      await httpCall(agent, base, "DELETE", `/workloads/${id}`, 200);
    }
  }),
);
const requestsMs = performance.now() - cbStart;
const timeout = setTimeout(() => allDelivered(), 120_000);
await done;
clearTimeout(timeout);
const callbacksMs = performance.now() - cbStart;
const cbCpu = process.cpuUsage(cbCpu0);
const lifecycle = ["starting", "running", "stopping", "stopped", "destroyed"].join(",");
let outOfOrder = 0;
let lost = 0;
for (let i = 0; i < CALLBACK_WORKLOADS; i++) {
  const states = received.get(`cb-${i}`) ?? [];
  if (states.length < 5) lost += 5 - states.length;
  else if (states.join(",") !== lifecycle) outOfOrder++;
}

for (const client of grpcClients) client.close();
for (const agent of agents) agent.destroy();
await httpServer.close();
await grpcServer.close();
await kernel.shutdown();
receiver.close();
rmSync(dir, { recursive: true, force: true });

const ratio = {
  httpVsGrpcCpuPerCycle: r3(median(httpVsGrpcCpu)),
  httpVsGrpcWall: r3(median(httpVsGrpcWall)),
  httpVsInProcessCpuPerCycle: r3(median(httpVsInProcessCpu)),
};
console.log(
  JSON.stringify({
    bench: "http",
    workload: `${CYCLES} x create+stop+destroy, ${CONCURRENCY} concurrent callers, fake backend`,
    rounds: ROUNDS,
    node: process.version,
    inProcess: summary(results.inProcess, CYCLES),
    grpc: summary(results.grpc, CYCLES),
    http: summary(results.http, CYCLES),
    ratio,
    target: { httpVsGrpcCpuPerCycle: 1.5, met: ratio.httpVsGrpcCpuPerCycle <= 1.5 },
    callbacks: {
      workloads: CALLBACK_WORKLOADS,
      expected: expectedEvents,
      delivered,
      lost,
      outOfOrderWorkloads: outOfOrder,
      duplicates,
      eventsPerSec: r3((delivered / callbacksMs) * 1000),
      requestsMs: r3(requestsMs),
      lastCallbackAfterRequestsMs: r3(callbacksMs - requestsMs),
      cpuMsPerEvent: r3((cbCpu.user + cbCpu.system) / 1000 / delivered),
      outbox: "file",
    },
    leftoverWorkloads: kernel.list().length,
  }),
);
