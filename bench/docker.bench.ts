/**
 * 50 containers started concurrently and stopped, through the kernel on the Docker backend,
 * beside the raw floor measured in the same run: the same create/start/stop/remove calls made
 * directly with dockerode, with the same create body. Rounds alternate kernel and raw; the
 * medians and their ratio are printed as one JSON line. Target: kernel/raw <= 1.2.
 *
 *   node --expose-gc --import tsx bench/docker.bench.ts
 *
 * Uses DOCKER_HOST when set (and RK_TEST_IMAGE for the image); otherwise starts a private
 * engine with test/setup/docker-engine.sh and stops it afterwards.
 */
import { execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type Dockerode from "dockerode";
import { LABELS, type StartRequest } from "../src/backends/backend.js";
import { DockerBackend } from "../src/backends/docker/index.js";
import { createRuntimeKernel } from "../src/index.js";

const N = Number(process.env.RK_BENCH_CONTAINERS ?? 50);
const ROUNDS = Number(process.env.RK_BENCH_ROUNDS ?? 3);
const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), "../test/setup/docker-engine.sh");

function engine(): { host: string; image: string; stop?: () => void } {
  if (process.env.DOCKER_HOST) {
    return {
      host: process.env.DOCKER_HOST,
      image: process.env.RK_TEST_IMAGE ?? "runtime-kernel/busybox:test",
    };
  }
  const env = {
    ...process.env,
    RK_DOCKER_DIR: join(tmpdir(), "runtime-kernel", `docker-bench-${process.pid}`),
  };
  const out = execFileSync("bash", [SCRIPT, "start"], {
    env,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  const host = /^DOCKER_HOST=(.+)$/m.exec(out)?.[1];
  const image = /^RK_TEST_IMAGE=(.+)$/m.exec(out)?.[1];
  if (!host || !image) throw new Error(`docker-engine.sh start printed no DOCKER_HOST:\n${out}`);
  return { host, image, stop: () => execFileSync("bash", [SCRIPT, "stop"], { env, stdio: "ignore" }) };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const round1 = (x: number) => Math.round(x * 10) / 10;

interface Sample {
  runningMs: number;
  destroyedMs: number;
}

/** The kernel: create() x N concurrently (resolves when running), then destroy() x N. */
async function kernelRound(host: string, image: string): Promise<Sample> {
  const kernelId = `bench-${randomUUID().slice(0, 8)}`;
  const kernel = createRuntimeKernel({
    kernelId,
    backend: new DockerBackend({ host }),
    profiles: { sleeper: { runnable: { image, command: ["sleep", "600"] }, graceMs: 10_000 } },
    maxConcurrentStarts: N,
  });
  const ids = Array.from({ length: N }, (_, i) => `bench-${i}`);
  const t0 = performance.now();
  await Promise.all(ids.map((workloadId) => kernel.create({ workloadId, profile: "sleeper" })));
  const t1 = performance.now();
  await Promise.all(ids.map((id) => kernel.destroy(id)));
  const t2 = performance.now();
  await kernel.shutdown();
  return { runningMs: t1 - t0, destroyedMs: t2 - t1 };
}

/** The floor: the same create body, createContainer + start, then stop (SIGTERM, wait) + remove. */
async function rawRound(host: string, image: string): Promise<Sample> {
  const backend = new DockerBackend({ host });
  const docker = backend.docker as Dockerode;
  const kernelId = `bench-raw-${randomUUID().slice(0, 8)}`;
  const bodies = Array.from({ length: N }, (_, i) => {
    const runId = randomUUID();
    const request: StartRequest = {
      kernelId,
      workloadId: `bench-${i}`,
      runId,
      profile: "sleeper",
      runnable: { image, command: ["sleep", "600"] },
      env: {},
      labels: { [LABELS.kernelId]: kernelId, [LABELS.runId]: runId },
    };
    return backend.containerSpec(request).options;
  });
  const t0 = performance.now();
  const containers = await Promise.all(
    bodies.map(async (body) => {
      const c = await docker.createContainer(body);
      await c.start();
      return c;
    }),
  );
  const t1 = performance.now();
  await Promise.all(
    containers.map(async (c) => {
      await c.stop({ t: 10 });
      await c.remove({ force: true, v: true });
    }),
  );
  const t2 = performance.now();
  await backend.close();
  return { runningMs: t1 - t0, destroyedMs: t2 - t1 };
}

async function main(): Promise<void> {
  const { host, image, stop } = engine();
  try {
    // Warm-up: the engine's first containers pay for lazy setup that no round should.
    await rawRound(host, image);
    const kernel: Sample[] = [];
    const raw: Sample[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      // Alternate which goes first so neither always meets a warmer engine.
      if (r % 2 === 0) {
        kernel.push(await kernelRound(host, image));
        raw.push(await rawRound(host, image));
      } else {
        raw.push(await rawRound(host, image));
        kernel.push(await kernelRound(host, image));
      }
      (globalThis as { gc?: () => void }).gc?.();
    }
    const ratio = (pick: (s: Sample) => number) =>
      Math.round(median(kernel.map((k, i) => pick(k) / pick(raw[i]!))) * 100) / 100;
    const result = {
      bench: "docker",
      containers: N,
      rounds: ROUNDS,
      kernel: {
        runningMs: round1(median(kernel.map((s) => s.runningMs))),
        destroyedMs: round1(median(kernel.map((s) => s.destroyedMs))),
      },
      raw: {
        runningMs: round1(median(raw.map((s) => s.runningMs))),
        destroyedMs: round1(median(raw.map((s) => s.destroyedMs))),
      },
      ratio: { running: ratio((s) => s.runningMs), destroyed: ratio((s) => s.destroyedMs) },
      target: 1.2,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    stop?.();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
