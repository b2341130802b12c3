/**
 * The host drives runtime providers the way gestaltd does: it launches the executable a
 * `kind: runtime` manifest (or a `{ command }` source) names, with the GESTALT_* variables
 * and a log host of its own, handshakes with it, and hosts plugins through it. Against
 * `runtime-kernel gestalt-provider`, against a provider with only the current upstream
 * surface, and against providers it must refuse.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  createPluginHost,
  HostedPluginError,
  type LaunchedRuntimeProvider,
  loadGestaltConfig,
} from "../../../src/gestalt/index.js";
import { PROVIDER_COMMAND } from "./gestaltd.js";
import { EchoClient, eventually, isRunning, pluginEnv, testPluginCommand } from "./helpers.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const UPSTREAM_PROVIDER = [
  "--import",
  import.meta.resolve("tsx"),
  join(ROOT, "test/fixtures/gestalt/upstream-provider.ts"),
];

let plugin: { command: string; args: string[] };
let scratch: string;

beforeAll(async () => {
  plugin = await testPluginCommand();
  scratch = mkdtempSync(join(tmpdir(), "rk-glp-"));
});
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const output = (line: string) => void line;

/** The requests a provider fixture recorded, in order. */
function recorded(file: string): { method: string; request: Record<string, unknown> }[] {
  return readFileSync(file, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l));
}

describe("a host that launches runtime-kernel gestalt-provider from its manifest", () => {
  it("handshakes, hosts a plugin, starts it as an integration provider, and stops everything at close", async () => {
    const manifest = join(scratch, "manifest.yaml");
    writeFileSync(
      manifest,
      [
        "kind: runtime",
        "source: example.com/runtime-kernel",
        "version: 0.1.0",
        "entrypoint:",
        `  artifactPath: ${JSON.stringify(PROVIDER_COMMAND.command)}`,
        `  args: ${JSON.stringify(PROVIDER_COMMAND.args)}`,
      ].join("\n"),
    );
    const sessionRoot = join(scratch, "kernel-sessions");
    const host = createPluginHost({
      config: loadGestaltConfig({
        runtime: {
          providers: {
            kernel: {
              source: { path: manifest },
              default: true,
              config: {
                backend: { type: "process", options: { stateDir: join(scratch, "kernel-state") } },
                sessionRoot,
              },
            },
          },
        },
        plugins: {
          support: {
            command: plugin.command,
            args: plugin.args,
            config: { greeting: "hello", retries: 2 },
            execution: { mode: "hosted" },
          },
        },
      }),
      providerOutput: output,
    });
    let pids: number[] = [];
    let providerPid = 0;
    try {
      const started = await host.startPlugin("support");
      providerPid = ((await host.provider("kernel")) as LaunchedRuntimeProvider).pid;
      expect(started.dialTarget.startsWith(`unix://${sessionRoot}/`)).toBe(true);
      // GetMetadata, then StartProvider with the plugin's name, config and protocol 3.
      expect(started.metadata).toMatchObject({ name: "support", maxProtocolVersion: 3 });
      const echo = started.client(EchoClient);
      const { env, pid, ppid, startProvider } = await pluginEnv(echo);
      expect(startProvider).toEqual({
        name: "support",
        config: { greeting: "hello", retries: 2 },
        protocolVersion: 3,
      });
      expect(env.GESTALT_RUNTIME_SESSION_ID).toBe(started.sessionId);
      expect(env.GESTALT_PLUGIN_PARENT_PID).toBe(String(ppid));
      pids = [pid, ppid];

      const [view] = await host.describeProviders();
      expect(view).toMatchObject({
        name: "kernel",
        driver: "source",
        loaded: true,
        sessionCount: 1,
        identity: { kind: "runtime", name: "kernel", description: "runtime-kernel on the process backend" },
      });
      expect(view?.profile?.advertised).toMatchObject({
        canHostPlugins: true,
        supportsPrepareWorkspace: true,
      });
      // The provider appends its sessions' logs to the log host the host serves it.
      await eventually(
        () => started.logs().some((l) => l.includes("serving on unix:")),
        "the plugin's output, appended over the provider's log socket",
      );
      const [session] = await host.describeSessions("kernel");
      expect(session?.logs).toEqual(expect.arrayContaining([expect.stringContaining("serving on unix:")]));
    } finally {
      await host.close();
    }
    // StopSession, then SIGTERM of the provider: nothing it started is left.
    for (const pid of [...pids, providerPid]) expect(isRunning(pid)).toBe(false);
  });
});

describe("a host with a provider of the current upstream surface only", () => {
  it("hosts a plugin without BindHostService: bindings and the session id travel in StartPlugin's env", async () => {
    const record = join(scratch, "upstream.jsonl");
    writeFileSync(record, "");
    const host = createPluginHost({
      config: loadGestaltConfig({
        runtime: {
          providers: {
            upstream: {
              source: { command: process.execPath, args: [...UPSTREAM_PROVIDER, `--record=${record}`] },
              default: true,
              config: { region: "here" },
            },
          },
        },
        plugins: {
          support: {
            command: plugin.command,
            args: plugin.args,
            hostServices: ["cache"],
            runtime: { metadata: { team: "care" } }, // the current gestaltd form
          },
        },
      }),
      hostServices: { cache: { envVar: "GESTALT_CACHE_SOCKET", dialTarget: "unix:///run/cache.sock" } },
      hostCapabilities: { publicBaseUrl: "https://gestalt.example.com", encryptionKey: "k" },
      providerOutput: output,
    });
    try {
      const started = await host.startPlugin("support");
      const { env } = await pluginEnv(started.client(EchoClient));
      // No field 2 in its support: the host relays, as a current gestaltd decides by itself.
      expect(started.profile.advertised.hostServiceAccess).toBe("unspecified");
      expect(started.profile.effective.hostServiceAccess).toBe("relay");
      expect(env.GESTALT_CACHE_SOCKET).toBe("tls://gestalt.example.com:443");
      expect(env.GESTALT_RUNTIME_SESSION_ID).toBe(started.sessionId);

      const calls = recorded(record).filter((c) => c.method !== "GetSession");
      expect(calls.map((c) => c.method)).toEqual([
        "(started)",
        "GetProviderIdentity",
        "ConfigureProvider",
        "GetProviderIdentity",
        "GetSupport",
        "StartSession",
        "StartPlugin",
      ]);
      expect(calls[2]?.request).toMatchObject({ name: "upstream", protocol_version: 3 });
      expect(calls[5]?.request).toMatchObject({
        plugin_name: "support",
        metadata: { team: "care", provider_kind: "plugin", provider_name: "support" },
      });
      await eventually(
        () => started.logs().some((l) => l === `plugin support started`),
        "the provider's AppendLogs to reach the host",
      );
    } finally {
      await host.close();
    }
    expect(recorded(record).at(-1)?.method).toBe("StopSession");
  });

  for (const [why, args, message] of [
    [
      "is not of kind RUNTIME",
      ["--kind=PROVIDER_KIND_INTEGRATION"],
      'runtime provider "upstream" is not a runtime provider: it says it is of kind PROVIDER_KIND_INTEGRATION, not PROVIDER_KIND_RUNTIME',
    ],
    [
      "does not speak protocol 3",
      ["--protocol=4:5"],
      'runtime provider "upstream" does not speak protocol version 3: it speaks 4 to 5',
    ],
  ] as const) {
    it(`refuses a provider that ${why}, saying so, and stops it`, async () => {
      const record = join(scratch, `refused-${args[0]}.jsonl`);
      writeFileSync(record, "");
      const host = createPluginHost({
        config: loadGestaltConfig({
          runtime: {
            providers: {
              upstream: {
                source: {
                  command: process.execPath,
                  args: [...UPSTREAM_PROVIDER, `--record=${record}`, ...args],
                },
                default: true,
              },
            },
          },
          plugins: { support: { command: plugin.command, args: plugin.args, execution: { mode: "hosted" } } },
        }),
        providerOutput: output,
      });
      try {
        const error = await host.startPlugin("support").catch((e: unknown) => e);
        expect(error).toBeInstanceOf(HostedPluginError);
        expect(error).toMatchObject({ step: "select" });
        expect((error as Error).message).toContain(message);
        // Refused at the handshake: it was never configured, no session was asked for, and it was stopped.
        const calls = recorded(record);
        expect(calls.map((c) => c.method)).toEqual(["(started)", "GetProviderIdentity"]);
        expect(isRunning(calls[0]?.request.pid as number)).toBe(false);
      } finally {
        await host.close();
      }
    });
  }
});
