/**
 * `runtime-kernel gestalt-provider` as a real gestaltd drives it: launched as a child with
 * GESTALT_PLUGIN_SOCKET, GESTALT_PLUGIN_PARENT_PID, GESTALT_PLUGIN_NAME and
 * GESTALT_RUNTIME_LOG_SOCKET, then called step by step by a client built from the .proto
 * files (./gestaltd.ts): handshake, configure, session, workspace, plugin, dial, stop.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeRepository } from "../../fixtures/gestalt/git-repo.js";
import {
  configure,
  type LaunchedProvider,
  launchProvider,
  protocol,
  rpc,
  toStruct,
  unixClient,
  waitForSession,
} from "./gestaltd.js";
import { call, EchoClient, eventually, isRunning, pluginEnv, testPluginCommand } from "./helpers.js";

let plugin: { command: string; args: string[] };
let scratch: string;
let repo: { url: string; feature: string };

beforeAll(async () => {
  plugin = await testPluginCommand();
  scratch = mkdtempSync(join(tmpdir(), "rk-gstd-"));
  mkdirSync(join(scratch, "repo"));
  repo = makeRepository(join(scratch, "repo"));
});

afterAll(() => {
  rmSync(scratch, { recursive: true, force: true });
});

/** A config for the process backend in a private state dir, with a session root that does not exist yet. */
function processConfig(name: string): { config: Record<string, unknown>; sessionRoot: string } {
  const base = join(scratch, name);
  const sessionRoot = join(base, "sessions", "not", "made", "yet");
  return {
    sessionRoot,
    config: {
      backend: { type: "process", options: { stateDir: join(base, "state") } },
      sessionRoot,
    },
  };
}

/** GetSupport, StartSession, GetSession until ready, StartPlugin and a dial, as gestaltd does them. */
async function startPlugin(provider: LaunchedProvider, extraArgs: string[] = []) {
  const session = await rpc<{ id: string; state: string; metadata: Record<string, string> }>(
    provider.runtime,
    "StartSession",
    { plugin_name: "support", metadata: { provider_kind: "plugin", provider_name: "support" } },
  );
  await waitForSession(provider.runtime, session.id);
  const hosted = await rpc<{ id: string; session_id: string; dial_target: string }>(
    provider.runtime,
    "StartPlugin",
    {
      session_id: session.id,
      plugin_name: "support",
      command: plugin.command,
      args: [...plugin.args, ...extraArgs],
      env: { GESTALT_RUNTIME_SESSION_ID: session.id, GREETING: "hi" },
    },
  );
  const socket = hosted.dial_target.replace(/^unix:\/\//, "");
  const echo = new EchoClient(`unix:${socket}`, grpc.credentials.createInsecure(), {
    "grpc.default_authority": "localhost",
  });
  return { session, hosted, socket, echo };
}

describe("runtime-kernel gestalt-provider, driven as gestaltd drives a runtime provider", () => {
  it("handshakes, hosts a plugin in a session with a git workspace, and leaves nothing when stopped", async () => {
    const { config, sessionRoot } = processConfig("whole");
    // As for a relayed log host: gestaltd gives its token beside the socket.
    const provider = await launchProvider({
      name: "kernel",
      env: { GESTALT_RUNTIME_LOG_SOCKET_TOKEN: "relay-token-test" },
    });
    let pids: number[] = [];
    try {
      // The handshake: identity (kind RUNTIME, protocol 3), configure (3 echoed), identity again.
      const identity = await rpc<Record<string, unknown>>(provider.lifecycle, "GetProviderIdentity", {});
      expect(identity).toMatchObject({
        kind: "PROVIDER_KIND_RUNTIME",
        name: "kernel",
        min_protocol_version: 3,
        max_protocol_version: 3,
      });
      expect(await configure(provider, "kernel", config)).toEqual({ protocol_version: 3 });
      expect(await rpc(provider.lifecycle, "GetProviderIdentity", {})).toMatchObject({
        kind: "PROVIDER_KIND_RUNTIME",
        description: "runtime-kernel on the process backend",
      });
      expect(await rpc(provider.lifecycle, "HealthCheck", {})).toEqual({ ready: true, message: "" });
      expect(await rpc(provider.runtime, "GetSupport", {})).toMatchObject({
        can_host_plugins: true,
        supports_prepare_workspace: true,
      });

      const { session, hosted, echo } = await startPlugin(provider);
      // StartSession made the missing session root.
      expect(existsSync(sessionRoot)).toBe(true);
      expect(session.metadata).toEqual({ provider_kind: "plugin", provider_name: "support" });
      expect(hosted.session_id).toBe(session.id);
      expect(hosted.dial_target.startsWith(`unix://${sessionRoot}/`)).toBe(true);

      // The dialled plugin, as gestaltd calls it: GetMetadata, then StartProvider (protocol 3).
      const integration = unixClient(
        protocol().IntegrationProvider,
        hosted.dial_target.slice("unix://".length),
      );
      expect(await rpc(integration, "GetMetadata", {})).toMatchObject({
        name: "support",
        max_protocol_version: 3,
      });
      expect(
        await rpc(integration, "StartProvider", {
          name: "support",
          config: toStruct({ a: 1 }),
          protocol_version: 3,
        }),
      ).toEqual({ protocol_version: 3 });
      integration.close();

      expect(await call(echo.say, echo, { text: "through gestaltd's eyes" })).toEqual({
        text: "through gestaltd's eyes",
        plugin: "support",
      });
      const { env, pid, ppid } = await pluginEnv(echo);
      expect(env.GESTALT_RUNTIME_SESSION_ID).toBe(session.id);
      expect(env.GREETING).toBe("hi");
      // The plugin watches its parent as upstream's SDKs do: it is told the parent it has.
      expect(env.GESTALT_PLUGIN_PARENT_PID).toBe(String(ppid));
      pids = [pid, ppid];

      // A workspace for an agent session: a real checkout of the feature branch.
      const prepared = await rpc<{ workspace: { root: string; cwd: string } }>(
        provider.runtime,
        "PrepareWorkspace",
        {
          session_id: session.id,
          agent_session_id: "agent-1",
          workspace: {
            checkouts: [{ url: repo.url, ref: "feature", path: "checkouts/repo" }],
            cwd: "checkouts/repo/sub",
          },
        },
      );
      const root = prepared.workspace.root;
      expect(root.startsWith(`${sessionRoot}/`)).toBe(true);
      expect(prepared.workspace.cwd).toBe(join(root, "checkouts/repo/sub"));
      expect(readFileSync(join(root, "checkouts/repo/feature.txt"), "utf8")).toBe("feature\n");
      expect(readFileSync(join(prepared.workspace.cwd, "notes.txt"), "utf8")).toBe("notes\n");
      expect(
        execFileSync("git", ["rev-parse", "HEAD"], {
          cwd: join(root, "checkouts/repo"),
          encoding: "utf8",
        }).trim(),
      ).toBe(repo.feature);
      // The same request again is the same workspace; another one under the same agent session is refused.
      expect(
        await rpc(provider.runtime, "PrepareWorkspace", {
          session_id: session.id,
          agent_session_id: "agent-1",
          workspace: {
            checkouts: [{ url: repo.url, ref: "feature", path: "checkouts/repo" }],
            cwd: "checkouts/repo/sub",
          },
        }),
      ).toEqual(prepared);
      await expect(
        rpc(provider.runtime, "PrepareWorkspace", {
          session_id: session.id,
          agent_session_id: "agent-1",
          workspace: {
            checkouts: [{ url: repo.url, ref: "main", path: "checkouts/repo" }],
            cwd: "checkouts/repo",
          },
        }),
      ).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
      expect(
        await rpc(provider.runtime, "RemoveWorkspace", {
          session_id: session.id,
          agent_session_id: "agent-1",
        }),
      ).toEqual({});
      expect(existsSync(root)).toBe(false);

      // One more, left for StopSession to clean.
      const again = await rpc<{ workspace: { root: string } }>(provider.runtime, "PrepareWorkspace", {
        session_id: session.id,
        agent_session_id: "agent-2",
        workspace: { checkouts: [{ url: repo.url, path: "repo" }], cwd: "repo" },
      });
      expect(existsSync(join(again.workspace.root, "repo/README"))).toBe(true);

      // Logs reach the log host: the runtime's own lines and the plugin's output, per session.
      await eventually(
        () =>
          provider.appended.some(
            (a) =>
              a.session_id === session.id &&
              a.logs.some(
                (l) => l.stream === "PLUGIN_RUNTIME_LOG_STREAM_STDOUT" && l.message.includes("serving on"),
              ),
          ),
        "the plugin's output on the log host",
      );
      expect(
        provider.appended
          .flatMap((a) => a.logs)
          .some((l) => l.stream === "PLUGIN_RUNTIME_LOG_STREAM_RUNTIME"),
      ).toBe(true);
      expect(new Set(provider.appended.map((a) => a.relayToken))).toEqual(new Set(["relay-token-test"]));

      echo.close();
      expect(await rpc(provider.runtime, "StopSession", { session_id: session.id })).toEqual({});
      expect(isRunning(pid)).toBe(false);
      expect(existsSync(again.workspace.root)).toBe(false);
      expect(existsSync(join(sessionRoot, session.id))).toBe(false);
      expect(
        (await rpc<{ state: string }>(provider.runtime, "GetSession", { session_id: session.id })).state,
      ).toBe("stopped");
    } finally {
      const how = await provider.stop();
      expect(how, provider.stderr()).toEqual({ code: 0, signal: null });
    }
    // Nothing is left: not the plugin, not the process backend's supervisor.
    for (const pid of pids) expect(isRunning(pid)).toBe(false);
  });

  it("answers runtime calls only once configured, and refuses a bad config or protocol naming why", async () => {
    const provider = await launchProvider({ name: "picky" });
    try {
      await expect(rpc(provider.runtime, "GetSupport", {})).rejects.toMatchObject({
        code: grpc.status.FAILED_PRECONDITION,
        details: expect.stringContaining("not configured yet"),
      });
      expect(await rpc(provider.lifecycle, "HealthCheck", {})).toEqual({
        ready: false,
        message: "not configured yet",
      });
      await expect(
        rpc(provider.lifecycle, "ConfigureProvider", {
          name: "picky",
          config: toStruct({}),
          protocol_version: 2,
        }),
      ).rejects.toMatchObject({
        code: grpc.status.FAILED_PRECONDITION,
        details: "host requested protocol version 2, provider requires 3",
      });
      await expect(configure(provider, "picky", { backend: "vm", graceMs: -1 })).rejects.toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: expect.stringMatching(
          /backend\.type: must be one of process, docker, kubernetes[\s\S]*graceMs: must be > 0/,
        ),
      });
      await expect(
        configure(provider, "picky", { backend: "process", egressMode: "hostname", soket: 1 }),
      ).rejects.toMatchObject({
        code: grpc.status.INVALID_ARGUMENT,
        details: expect.stringContaining("soket"),
      });
      // Nothing was started by the refusals: it still waits for a good config.
      await expect(rpc(provider.runtime, "GetSupport", {})).rejects.toMatchObject({
        code: grpc.status.FAILED_PRECONDITION,
      });
    } finally {
      expect(await provider.stop()).toEqual({ code: 0, signal: null });
    }
  });

  it("on SIGTERM stops every session and exits, leaving nothing running", async () => {
    const { config, sessionRoot } = processConfig("sigterm");
    const provider = await launchProvider();
    await configure(provider, "kernel", config);
    const first = await startPlugin(provider);
    const second = await startPlugin(provider);
    const pids = [];
    for (const { echo } of [first, second]) {
      const { pid, ppid } = await pluginEnv(echo);
      pids.push(pid, ppid);
      echo.close();
    }
    // gestaltd's stop: SIGTERM, then SIGKILL after 2 s. It must not come to the SIGKILL.
    expect(await provider.stop(), provider.stderr()).toEqual({ code: 0, signal: null });
    for (const pid of pids) expect(isRunning(pid)).toBe(false);
    expect(existsSync(join(sessionRoot, first.session.id))).toBe(false);
    expect(existsSync(join(sessionRoot, second.session.id))).toBe(false);
  });

  it("stops every session and exits when its parent dies", async () => {
    const { config } = processConfig("orphan");
    let parent: ChildProcess | undefined;
    // A parent that launches the provider (telling it its own pid, as gestaltd does) and is then killed.
    const provider = await launchProvider({
      via: (command, args, env) => {
        parent = spawn(
          process.execPath,
          [
            "-e",
            `const env = { ...process.env, GESTALT_PLUGIN_PARENT_PID: String(process.pid) };
             const c = require("node:child_process").spawn(${JSON.stringify(command)}, ${JSON.stringify(args)}, { env, stdio: "ignore" });
             process.stdout.write(String(c.pid) + "\\n"); setInterval(() => {}, 1 << 30);`,
          ],
          { env, stdio: ["ignore", "pipe", "ignore"] },
        );
        return parent;
      },
    });
    try {
      const providerPid = await new Promise<number>((resolve) =>
        parent!.stdout!.once("data", (chunk) => resolve(Number(String(chunk).trim()))),
      );
      await configure(provider, "kernel", config);
      const { echo } = await startPlugin(provider);
      const { pid, ppid } = await pluginEnv(echo);
      echo.close();
      expect(isRunning(providerPid)).toBe(true);
      parent!.kill("SIGKILL");
      await eventually(() => !isRunning(providerPid), "the orphaned provider to exit", 15_000);
      // It stopped its sessions on the way out: the plugin and the supervisor are gone too.
      expect(isRunning(pid)).toBe(false);
      expect(isRunning(ppid)).toBe(false);
    } finally {
      // Whatever failed above, the parent goes, and with it (by its own watch) the provider.
      parent?.kill("SIGKILL");
      await provider.stop();
    }
  });
});
