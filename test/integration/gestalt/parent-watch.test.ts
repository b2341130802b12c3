/**
 * GESTALT_PLUGIN_PARENT_PID on the process backend. The test plugin watches its parent as
 * upstream's Go and Rust SDK plugins do (getppid() at start and every 500 ms, and it stops
 * serving when the parent is not the one it was told about), so a provider that names the
 * wrong parent loses every upstream plugin within a second.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createPluginHost, loadGestaltConfig } from "../../../src/gestalt/index.js";
import {
  call,
  connected,
  EchoClient,
  eventuallyAsync,
  type LocalKernel,
  localKernel,
  pluginEnv,
  testPluginCommand,
} from "./helpers.js";

let plugin: { command: string; args: string[] };
let local: LocalKernel;
let dir: string;

beforeAll(async () => {
  plugin = await testPluginCommand();
  local = localKernel();
  dir = mkdtempSync(join(tmpdir(), "rk-gpw-"));
});
afterAll(async () => {
  await local.teardown();
  rmSync(dir, { recursive: true, force: true });
});

function spawnPlugin(parentPid: number) {
  const socket = join(dir, `plugin-${parentPid}.sock`);
  const child = spawn(plugin.command, plugin.args, {
    env: {
      PATH: process.env.PATH ?? "",
      GESTALT_PLUGIN_SOCKET: socket,
      GESTALT_PLUGIN_PARENT_PID: String(parentPid),
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (c) => {
    stderr += c;
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return { child, socket, exited, stderr: () => stderr };
}

describe("the test plugin's parent watch, as upstream's SDKs have it", () => {
  it("stops serving when its parent is not the one it was told about", async () => {
    const p = spawnPlugin(1);
    expect(await p.exited).toBe(0);
    expect(p.stderr()).toContain(`parent is ${process.pid}, not 1: stopping`);
  });

  it("serves while its parent is the one it was told about", async () => {
    const p = spawnPlugin(process.pid);
    try {
      const echo = new EchoClient(`unix:${p.socket}`, credentials.createInsecure());
      await connected(echo);
      await eventuallyAsync(async () => (await pluginEnv(echo)).parentChecks >= 2, "two parent checks");
      expect(await call(echo.say, echo, { text: "x" })).toMatchObject({ text: "x" });
      echo.close();
    } finally {
      p.child.kill("SIGTERM");
      await p.exited;
    }
  });
});

describe("the local provider on the process backend", () => {
  it("tells the plugin its real parent, the supervisor, whatever the request says, and it stays up", async () => {
    const host = createPluginHost({
      config: loadGestaltConfig({
        runtime: { providers: { local: { driver: "local", default: true } } },
        plugins: { support: { command: plugin.command, args: plugin.args, execution: { mode: "hosted" } } },
      }),
      kernel: local.kernel,
      local: { sessionRoot: local.sessionRoot },
    });
    try {
      const started = await host.startPlugin("support", { env: { GESTALT_PLUGIN_PARENT_PID: "1" } });
      const echo = started.client(EchoClient);
      const { env, ppid } = await pluginEnv(echo);
      expect(ppid).toBe((await local.backend.supervisorStats()).pid);
      expect(env.GESTALT_PLUGIN_PARENT_PID).toBe(String(ppid));
      // Past a few of its periodic checks, it still serves.
      await eventuallyAsync(
        async () => (await pluginEnv(echo)).parentChecks >= 3,
        "three parent checks",
        15_000,
      );
      expect(await call(echo.say, echo, { text: "still here" })).toMatchObject({ text: "still here" });
    } finally {
      await host.close();
    }
  });
});
