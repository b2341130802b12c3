/**
 * What the Docker integration tests share: the engine and image of the global setup
 * (test/setup/docker.global.ts), requests, and direct engine access for checks behind the
 * backend's back.
 */
import { randomUUID } from "node:crypto";
import Dockerode from "dockerode";
import { inject } from "vitest";
import { LABELS, type StartRequest } from "../../../src/backends/backend.js";
import { DockerBackend, type DockerBackendOptions } from "../../../src/backends/docker/index.js";

/** The test engine's address; the global setup failed loudly if there is none. */
export function dockerHost(): string {
  const host = inject("dockerHost") ?? process.env.DOCKER_HOST;
  if (!host) throw new Error("no test Docker engine: the docker project's global setup did not run");
  return host;
}

/** The imported busybox test image (never pulled). */
export function testImage(): string {
  return inject("testImage") ?? process.env.RK_TEST_IMAGE ?? "runtime-kernel/busybox:test";
}

/** A dockerode client of the test engine, for looking behind the backend's back. */
export function engine(): Dockerode {
  return new Dockerode({ socketPath: dockerHost().replace(/^unix:\/\//, "") });
}

/** A backend on the test engine. */
export function backendFor(options: DockerBackendOptions = {}): DockerBackend {
  return new DockerBackend({ host: dockerHost(), ...options });
}

/** A kernel id unique to one test file's run, so that discover and the leftover check see only it. */
export function testKernelId(name: string): string {
  return `test-${name}-${randomUUID().slice(0, 8)}`;
}

/** A StartRequest for the test image. */
export function startRequest(
  kernelId: string,
  command: string[],
  overrides: Partial<StartRequest> = {},
): StartRequest {
  const workloadId = overrides.workloadId ?? `w-${randomUUID().slice(0, 8)}`;
  const runId = overrides.runId ?? randomUUID();
  return {
    kernelId,
    workloadId,
    runId,
    profile: "test",
    owner: "tester",
    env: {},
    ...overrides,
    runnable: { image: testImage(), command, ...overrides.runnable },
    labels: {
      [LABELS.kernelId]: kernelId,
      [LABELS.workloadId]: workloadId,
      [LABELS.runId]: runId,
      [LABELS.profile]: overrides.profile ?? "test",
      [LABELS.createdAt]: String(Date.now()),
      ...overrides.labels,
    },
  };
}

/** A signal that never aborts. */
export const never = (): { signal: AbortSignal } => ({ signal: new AbortController().signal });

/** Removes every container of `kernelId` (test cleanup; the global teardown checks none is left). */
export async function removeAll(kernelId: string): Promise<void> {
  const docker = engine();
  const list = await docker.listContainers({
    all: true,
    filters: { label: [`${LABELS.kernelId}=${kernelId}`] },
  });
  await Promise.all(
    list.map((c) =>
      docker
        .getContainer(c.Id)
        .remove({ force: true, v: true })
        .catch(() => {}),
    ),
  );
}
