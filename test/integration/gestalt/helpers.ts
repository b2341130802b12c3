/**
 * What the Gestalt integration tests share: a real kernel on the process backend (private
 * state dir), the bundled test plugin, and checks that nothing is left behind.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Client } from "@grpc/grpc-js";
import { expect } from "vitest";
import { ProcessBackend } from "../../../src/backends/process/index.js";
import { GESTALT_PLUGIN_PROFILE } from "../../../src/gestalt/index.js";
import { createRuntimeKernel, type RuntimeKernel } from "../../../src/index.js";
import { testPluginCommand } from "../../fixtures/gestalt/build.js";
import { call, EchoClient, type EnvResponse } from "../../fixtures/gestalt/echo-service.js";

export { call, EchoClient, testPluginCommand };

/** A kernel on a fresh process backend, with the plugin profile. */
export interface LocalKernel {
  kernel: RuntimeKernel;
  backend: ProcessBackend;
  /** A private folder for session folders, so the test can see what is left in it. */
  sessionRoot: string;
  teardown(): Promise<void>;
}

export function localKernel(): LocalKernel {
  const stateDir = mkdtempSync(join(tmpdir(), "rk-gst-"));
  const sessionRoot = mkdtempSync(join(tmpdir(), "rk-gss-"));
  const backend = new ProcessBackend({ stateDir, supervisorIdleMs: 5_000 });
  const kernel = createRuntimeKernel({ backend, profiles: { [GESTALT_PLUGIN_PROFILE]: { runnable: {} } } });
  return {
    kernel,
    backend,
    sessionRoot,
    async teardown() {
      await kernel.shutdown();
      await backend.stopSupervisor({ force: true }).catch(() => {});
      await backend.close().catch(() => {});
      rmSync(stateDir, { recursive: true, force: true });
      rmSync(sessionRoot, { recursive: true, force: true });
    },
  };
}

/** Whether a process with this pid exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "latin1");
    const state = text.slice(text.lastIndexOf(")") + 2).split(" ")[0];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Waits for the substrate (a process dying, a file going away); never for a fixed time. */
export async function eventually(check: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** {@link eventually} with an asynchronous check (a call to a plugin, for example), polled every 50 ms. */
export async function eventuallyAsync(
  check: () => Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Resolves once `client` is connected. A plugin's socket file exists from bind(), and a
 * connection made before its listen() is refused: serving means accepting a connection.
 */
export function connected(client: Client, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) =>
    client.waitForReady(Date.now() + timeoutMs, (error) => (error ? reject(error) : resolve())),
  );
}

/** Nothing the kernel started is alive, and no session folder is left. */
export function expectNothingLeft(local: LocalKernel): void {
  const live = local.kernel.list().filter((s) => s.state !== "destroyed");
  expect(live, "no workload may be left in the kernel").toEqual([]);
  expect(readdirSync(local.sessionRoot), "no session folder may be left").toEqual([]);
}

/** The plugin's environment and pid, asked over its own gRPC service. */
export function pluginEnv(client: EchoClient): Promise<EnvResponse> {
  return call(client.env, client, {});
}

export { existsSync };
