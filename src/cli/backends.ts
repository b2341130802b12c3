/**
 * Loads the backend `serve` was asked for, and only that one: each is a dynamic import,
 * so dockerode or the Kubernetes client load only when chosen.
 * @module
 */
import { homedir } from "node:os";
import { isAbsolute, join } from "node:path";
import type { Backend } from "../index.js";
import type { BackendType } from "./config.js";

/**
 * Where the process backend keeps its supervisor's state (socket, journal, logs) when the
 * config gives no `stateDir`: per kernel id, under `$XDG_STATE_HOME` (else `~/.local/state`),
 * so a `serve` restarted with the same kernel id finds its workloads again.
 */
export function defaultStateDir(kernelId: string, env: NodeJS.ProcessEnv = process.env): string {
  const base =
    env.XDG_STATE_HOME && isAbsolute(env.XDG_STATE_HOME)
      ? env.XDG_STATE_HOME
      : join(homedir(), ".local", "state");
  return join(base, "runtime-kernel", kernelId);
}

/**
 * Creates a backend of `type` with `options` (from the config file's `backend.options`,
 * passed as they are: each backend validates its own).
 */
export async function loadBackend(
  type: BackendType,
  options: Record<string, unknown>,
  context: { kernelId: string; env: NodeJS.ProcessEnv },
): Promise<Backend> {
  switch (type) {
    case "process": {
      const { ProcessBackend } = await import("../backends/process/index.js");
      return new ProcessBackend({
        stateDir: defaultStateDir(context.kernelId, context.env),
        ...options,
      } as ConstructorParameters<typeof ProcessBackend>[0]) as Backend;
    }
    case "docker": {
      const { DockerBackend } = await import("../backends/docker/index.js");
      return new DockerBackend(options as ConstructorParameters<typeof DockerBackend>[0]) as Backend;
    }
    case "kubernetes": {
      const { KubernetesBackend } = await import("../backends/kubernetes/index.js");
      return new KubernetesBackend(options as ConstructorParameters<typeof KubernetesBackend>[0]) as Backend;
    }
    case "fake": {
      const { FakeBackend } = await import("../testing/fake-backend.js");
      return new FakeBackend(options as ConstructorParameters<typeof FakeBackend>[0]) as Backend;
    }
  }
}
