/**
 * A provider that fails at each step of the bootstrap. Whatever the step, the error names
 * it, the session (once started) is stopped before the error reaches the caller, and
 * nothing is left running.
 */
import { credentials } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type BootstrapStep,
  createPluginHost,
  dialHostedPlugin,
  HostedPluginError,
  loadGestaltConfig,
  localRuntimeProvider,
  type RuntimeProvider,
  RuntimeProviderError,
} from "../../../src/gestalt/index.js";
import {
  EchoClient,
  expectNothingLeft,
  isRunning,
  type LocalKernel,
  localKernel,
  pluginEnv,
  testPluginCommand,
} from "./helpers.js";

/** The pid of the plugin behind a dial target, asked over its own service. */
async function pluginPid(dialTarget: string): Promise<number> {
  const { channel } = await dialHostedPlugin(dialTarget);
  try {
    return (
      await pluginEnv(new EchoClient("localhost", credentials.createInsecure(), { channelOverride: channel }))
    ).pid;
  } finally {
    channel.close();
  }
}

let local: LocalKernel;
let plugin: { command: string; args: string[] };
beforeAll(async () => {
  local = localKernel();
  plugin = await testPluginCommand();
});
afterAll(async () => {
  await local.teardown();
});

type Fault = (inner: RuntimeProvider) => Partial<RuntimeProvider>;

/** The local provider with one step replaced, recording the sessions started and stopped. */
function faulty(fault: Fault) {
  const inner = localRuntimeProvider({ kernel: local.kernel, sessionRoot: local.sessionRoot });
  const started: string[] = [];
  const stopped: string[] = [];
  const faulted: RuntimeProvider = {
    getSupport: (o) => inner.getSupport(o),
    startSession: (r, o) => inner.startSession(r, o),
    getSession: (r, o) => inner.getSession(r, o),
    listSessions: (o) => inner.listSessions!(o),
    stopSession: (r, o) => inner.stopSession(r, o),
    bindHostService: (r, o) => inner.bindHostService!(r, o),
    startPlugin: (r, o) => inner.startPlugin(r, o),
    ...fault(inner),
  };
  const recorded: RuntimeProvider = {
    ...faulted,
    startSession: async (r, o) => {
      const session = await faulted.startSession(r, o);
      started.push(session.id);
      return session;
    },
    stopSession: async (r, o) => {
      stopped.push(r.sessionId);
      await faulted.stopSession(r, o);
    },
  };
  return { provider: recorded, started, stopped };
}

async function bootstrapWith(fault: Fault, hostOptions: Record<string, unknown> = {}) {
  const f = faulty(fault);
  const host = createPluginHost({
    config: loadGestaltConfig({
      runtime: { providers: { flaky: { driver: "local", default: true } } },
      plugins: {
        support: {
          command: plugin.command,
          args: plugin.args,
          hostServices: ["cache"],
          execution: { mode: "hosted" },
        },
      },
    }),
    kernel: local.kernel,
    providers: { flaky: f.provider },
    hostServices: { cache: { envVar: "GESTALT_CACHE_SOCKET", dialTarget: "unix:///run/cache.sock" } },
    ...hostOptions,
  });
  let error: HostedPluginError | undefined;
  try {
    await host.startPlugin("support");
  } catch (e) {
    error = e as HostedPluginError;
  }
  await host.close();
  if (!error) throw new Error("expected the bootstrap to fail");
  expect(error).toBeInstanceOf(HostedPluginError);
  return { error, ...f };
}

const boom = (what: string) => () =>
  Promise.reject(new RuntimeProviderError("BACKEND_ERROR", what, `${what} exploded`));

describe("a provider that fails", () => {
  it("at GetSupport: nothing starts", async () => {
    const { error, started } = await bootstrapWith(() => ({ getSupport: boom("GetSupport") }));
    expect(error.step).toBe<BootstrapStep>("support");
    expect(error.message).toContain("get runtime provider support: GetSupport exploded");
    expect(started).toEqual([]);
    expectNothingLeft(local);
  });

  it("at StartSession: nothing to stop", async () => {
    const { error, stopped } = await bootstrapWith(() => ({ startSession: boom("StartSession") }));
    expect(error.step).toBe<BootstrapStep>("start-session");
    expect(error.message).toContain(
      'hosted plugin "support" on runtime provider "flaky": start plugin runtime session: StartSession exploded',
    );
    expect(error.sessionId).toBeUndefined();
    expect(stopped).toEqual([]);
    expectNothingLeft(local);
  });

  it("with a session that turns failed while the host waits: stops it", async () => {
    const { error, started, stopped } = await bootstrapWith((inner) => ({
      startSession: async (r, o) => ({ ...(await inner.startSession(r, o)), state: "pending" }),
      getSession: async (r) => ({
        id: r.sessionId,
        state: "failed",
        metadata: {},
        stateReason: "quota",
        stateMessage: "no room",
      }),
    }));
    expect(error.step).toBe<BootstrapStep>("wait-ready");
    expect(error.message).toContain(
      `wait for plugin runtime session "${started[0]}" ready: session is failed (quota: no room)`,
    );
    expect(stopped).toEqual(started);
    expectNothingLeft(local);
  });

  it("with a session that stays pending past the timeout: stops it", async () => {
    const { error, started, stopped } = await bootstrapWith(
      (inner) => ({
        startSession: async (r, o) => ({ ...(await inner.startSession(r, o)), state: "pending" }),
        getSession: async (r, o) => ({ ...(await inner.getSession(r, o)), state: "pending" }),
      }),
      { sessionReadyTimeoutMs: 200 },
    );
    expect(error.step).toBe<BootstrapStep>("wait-ready");
    expect(error.message).toMatch(/ready: still pending after 200 ms/);
    expect(stopped).toEqual(started);
    expectNothingLeft(local);
  });

  it("at GetSession: stops the session", async () => {
    const { error, started, stopped } = await bootstrapWith((inner) => ({
      startSession: async (r, o) => ({ ...(await inner.startSession(r, o)), state: "pending" }),
      getSession: boom("GetSession"),
    }));
    expect(error.step).toBe<BootstrapStep>("wait-ready");
    expect(error.message).toContain("GetSession exploded");
    expect(stopped).toEqual(started);
    expectNothingLeft(local);
  });

  it("at BindHostService: stops the session", async () => {
    const { error, started, stopped } = await bootstrapWith(() => ({
      bindHostService: boom("BindHostService"),
    }));
    expect(error.step).toBe<BootstrapStep>("bind");
    expect(error.message).toContain('bind host service "cache": BindHostService exploded');
    expect(error.sessionId).toBe(started[0]);
    expect(stopped).toEqual(started);
    expectNothingLeft(local);
  });

  it("at StartPlugin, after the plugin really started: stops the session and the plugin with it", async () => {
    let pid = 0;
    const { error, started, stopped } = await bootstrapWith((inner) => ({
      startPlugin: async (r, o) => {
        const info = await inner.startPlugin(r, o);
        pid = await pluginPid(info.dialTarget);
        throw new RuntimeProviderError("BACKEND_ERROR", "StartPlugin", "StartPlugin lost its reply");
      },
    }));
    expect(pid).toBeGreaterThan(0);
    expect(isRunning(pid)).toBe(false);
    expect(error.step).toBe<BootstrapStep>("start-plugin");
    expect(error.message).toContain("start hosted plugin: StartPlugin lost its reply");
    expect(stopped).toEqual(started);
    expectNothingLeft(local);
  });

  it("with a dial target of an unsupported scheme: stops the session", async () => {
    const { error, started, stopped } = await bootstrapWith((inner) => ({
      startPlugin: async (r, o) => ({ ...(await inner.startPlugin(r, o)), dialTarget: "http://127.0.0.1:1" }),
    }));
    expect(error.step).toBe<BootstrapStep>("dial");
    expect(error.message).toContain(
      'dial hosted plugin: hosted plugin dial target "http://127.0.0.1:1": unsupported scheme "http"',
    );
    expect(stopped).toEqual(started);
    expectNothingLeft(local);
  });

  it("with a dial target nobody answers: stops the session after the dial timeout", async () => {
    const { error, started, stopped } = await bootstrapWith(
      (inner) => ({
        startPlugin: async (r, o) => ({
          ...(await inner.startPlugin(r, o)),
          dialTarget: "unix:///nonexistent/plugin.sock",
        }),
      }),
      { dialTimeoutMs: 500 },
    );
    expect(error.step).toBe<BootstrapStep>("dial");
    expect(error.message).toContain("dial hosted plugin: not Ready before the deadline");
    expect(stopped).toEqual(started);
    expectNothingLeft(local);
  });

  it("and whose StopSession fails too: says so, and the error still names the first failure", async () => {
    const { error, started } = await bootstrapWith((inner) => ({
      bindHostService: boom("BindHostService"),
      stopSession: async (r, o) => {
        await inner.stopSession(r, o);
        throw new RuntimeProviderError("CLEANUP_FAILED", "StopSession", "StopSession exploded");
      },
    }));
    expect(error.step).toBe<BootstrapStep>("bind");
    expect(error.message).toContain(`(stopping session "${started[0]}" also failed: StopSession exploded)`);
    expectNothingLeft(local);
  });
});
