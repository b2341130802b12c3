/**
 * Global setup of the `docker` test project: a real Docker engine for the run.
 *
 * - `RK_TEST_DOCKER_HOST` set: the tests use that engine (the script only imports the test
 *   image there) and nothing is stopped afterwards.
 * - Otherwise a private engine is started through test/setup/docker-engine.sh, in
 *   `RK_DOCKER_DIR` when set (an engine already running there is reused and left running), else
 *   in a folder of this run's own, so that two runs on one machine never share (or stop) each
 *   other's engine. Engines of runs that died without their teardown are stopped first.
 * - Tests read `DOCKER_HOST` and `RK_TEST_IMAGE` from `process.env` or `inject(...)`.
 * - Teardown fails the run loudly when a container labelled by a test kernel is left behind
 *   (after removing it), and stops the engine this setup started.
 * If the engine cannot start, setup throws: the suite fails, it never skips.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import Dockerode from "dockerode";
import type { TestProject } from "vitest/node";
import { LABELS } from "../../src/backends/backend.js";
import { alive } from "./processes.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The test engine's address (`unix:///.../docker.sock`). */
    dockerHost: string;
    /** The imported busybox image every Docker test runs (`runtime-kernel/busybox:test`). */
    testImage: string;
  }
}

const run = promisify(execFile);
const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), "docker-engine.sh");
const RUN_DIRS = join(tmpdir(), "runtime-kernel");
const RUN_DIR_PREFIX = "docker-test-";

async function script(command: "start" | "stop" | "status", env: NodeJS.ProcessEnv): Promise<string> {
  try {
    const { stdout } = await run("bash", [SCRIPT, command], {
      env,
      maxBuffer: 16 * 1024 * 1024,
      timeout: 600_000,
    });
    return stdout;
  } catch (error) {
    const e = error as { stderr?: string; code?: number; message: string };
    if (command === "status" && e.code === 3) return "stopped";
    throw new Error(`docker-engine.sh ${command} failed (exit ${e.code}): ${e.stderr?.trim() || e.message}`);
  }
}

function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) env[m[1]!] = m[2]!;
  }
  return env;
}

/** Stops the engines of earlier runs whose vitest process is gone (killed before its teardown). */
async function reapAbandonedEngines(): Promise<void> {
  if (!existsSync(RUN_DIRS)) return;
  for (const name of readdirSync(RUN_DIRS)) {
    if (!name.startsWith(RUN_DIR_PREFIX)) continue;
    const pid = Number(name.slice(RUN_DIR_PREFIX.length));
    if (!Number.isInteger(pid) || alive(pid)) continue;
    await script("stop", { ...process.env, RK_DOCKER_DIR: join(RUN_DIRS, name), RK_TEST_DOCKER_HOST: "" });
  }
}

function dockerFor(host: string): Dockerode {
  if (host.startsWith("unix://")) return new Dockerode({ socketPath: host.slice("unix://".length) });
  const url = new URL(host.replace(/^tcp:/, "http:"));
  return new Dockerode({ host: url.hostname, port: url.port, protocol: "http" });
}

/** Containers carrying a kernel id label: every runtime-kernel workload, of any test kernel. */
async function kernelContainers(docker: Dockerode): Promise<Dockerode.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: { label: [LABELS.kernelId] } });
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const external = process.env.RK_TEST_DOCKER_HOST || undefined;
  const env: NodeJS.ProcessEnv = { ...process.env };
  let startedHere = false;
  if (!external) {
    await reapAbandonedEngines();
    env.RK_DOCKER_DIR = process.env.RK_DOCKER_DIR || join(RUN_DIRS, `${RUN_DIR_PREFIX}${process.pid}`);
    startedHere = (await script("status", env)).startsWith("stopped");
  }
  const values = parseEnv(await script("start", env));
  const dockerHost = values.DOCKER_HOST;
  const testImage = values.RK_TEST_IMAGE;
  if (!dockerHost || !testImage)
    throw new Error("docker-engine.sh start printed no DOCKER_HOST / RK_TEST_IMAGE");

  const docker = dockerFor(dockerHost);
  try {
    await docker.ping();
    await docker.getImage(testImage).inspect();
  } catch (error) {
    throw new Error(
      `The test Docker engine at ${dockerHost} does not answer, or lacks ${testImage}: ${error}`,
    );
  }
  // A reused engine may hold containers from before this run: only what this run leaves counts.
  const before = new Set((await kernelContainers(docker)).map((c) => c.Id));

  process.env.DOCKER_HOST = dockerHost;
  process.env.RK_TEST_IMAGE = testImage;
  if (env.RK_DOCKER_DIR) process.env.RK_DOCKER_DIR = env.RK_DOCKER_DIR;
  project.provide("dockerHost", dockerHost);
  project.provide("testImage", testImage);

  return async () => {
    const left = (await kernelContainers(docker)).filter((c) => !before.has(c.Id));
    await Promise.allSettled(left.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true })));
    if (startedHere) await script("stop", env);
    if (left.length > 0) {
      const names = left.map(
        (c) =>
          `${c.Names?.[0]?.replace(/^\//, "")} (kernel ${c.Labels?.[LABELS.kernelId]}, workload ${c.Labels?.[LABELS.workloadId]}, ${c.State})`,
      );
      // vitest only logs an error thrown by a global teardown: set the exit code so the run fails.
      process.exitCode = 1;
      throw new Error(
        `Docker tests left ${left.length} container(s) behind (now removed): ${names.join("; ")}`,
      );
    }
  };
}
