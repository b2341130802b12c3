/**
 * Wire compatibility: a client built with @grpc/proto-loader straight from the project's
 * .proto files (no generated code) drives `serveRuntimeProvider` through a whole session,
 * and checks the hosted plugin with the standard health service.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  localRuntimeProvider,
  type RuntimeProvider,
  type ServedEndpoint,
  SessionLogBuffer,
  serveRuntimeLogHost,
  serveRuntimeProvider,
} from "../../../src/gestalt/index.js";
import { expectNothingLeft, type LocalKernel, localKernel, testPluginCommand } from "./helpers.js";

const protoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../../../proto");

function load(file: string): grpc.GrpcObject {
  const definition = protoLoader.loadSync(file, {
    // google/protobuf/*.proto are built into protobufjs.
    includeDirs: [protoRoot],
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition);
}

type AnyClient = grpc.Client & Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>;

function rpc<T>(client: AnyClient, method: string, request: unknown): Promise<T> {
  return new Promise((resolvePromise, reject) =>
    client[method]!(request, (error: grpc.ServiceError | null, response: T) =>
      error ? reject(error) : resolvePromise(response),
    ),
  );
}

let local: LocalKernel;
let dir: string;
let endpoint: ServedEndpoint;
let bare: ServedEndpoint;
let client: AnyClient;
let plugin: { command: string; args: string[] };

beforeAll(async () => {
  local = localKernel();
  plugin = await testPluginCommand();
  dir = mkdtempSync(join(tmpdir(), "rk-gpl-"));
  const provider = localRuntimeProvider({ kernel: local.kernel, sessionRoot: local.sessionRoot });
  endpoint = await serveRuntimeProvider(provider, `unix://${join(dir, "provider.sock")}`);
  // The same provider without ListSessions, to see UNIMPLEMENTED on the wire.
  const { listSessions: _, ...withoutList } = provider;
  bare = await serveRuntimeProvider(withoutList as RuntimeProvider, "127.0.0.1:0");
  const pkg = load("gestalt/provider/v1/provider.proto") as unknown as {
    gestalt: { provider: { v1: { PluginRuntimeProvider: grpc.ServiceClientConstructor } } };
  };
  client = new pkg.gestalt.provider.v1.PluginRuntimeProvider(
    endpoint.address,
    grpc.credentials.createInsecure(),
  ) as AnyClient;
});

afterAll(async () => {
  client?.close();
  await endpoint?.close();
  await bare?.close();
  await local.teardown();
  rmSync(dir, { recursive: true, force: true });
});

describe("serveRuntimeProvider, called by a proto-loader client", () => {
  it("runs a whole session: support, start, bind, start plugin, list, stop", async () => {
    const support = await rpc(client, "GetSupport", {});
    expect(support).toEqual({
      can_host_plugins: true,
      host_service_access: "PLUGIN_RUNTIME_HOST_SERVICE_ACCESS_DIRECT",
      egress_mode: "PLUGIN_RUNTIME_EGRESS_MODE_HOSTNAME",
      supports_prepare_workspace: true,
    });

    const session = await rpc<{
      id: string;
      state: string;
      metadata: Record<string, string>;
      lifecycle: { started_at: unknown };
    }>(client, "StartSession", {
      plugin_name: "support",
      metadata: { provider_kind: "plugin", provider_name: "support" },
    });
    expect(session.state).toBe("ready");
    expect(session.metadata).toEqual({ provider_kind: "plugin", provider_name: "support" });
    expect(session.lifecycle.started_at).toBeTruthy();

    const binding = await rpc(client, "BindHostService", {
      session_id: session.id,
      env_var: "GESTALT_CACHE_SOCKET",
      relay: { dial_target: "unix:///run/cache.sock" },
    });
    expect(binding).toMatchObject({
      session_id: session.id,
      env_var: "GESTALT_CACHE_SOCKET",
      relay: { dial_target: "unix:///run/cache.sock" },
    });

    const hosted = await rpc<{ id: string; session_id: string; plugin_name: string; dial_target: string }>(
      client,
      "StartPlugin",
      {
        session_id: session.id,
        plugin_name: "support",
        command: plugin.command,
        args: plugin.args,
        env: { GREETING: "hi" },
      },
    );
    expect(hosted.session_id).toBe(session.id);
    expect(hosted.dial_target).toMatch(/^unix:\/\/.*\/plugin\.sock$/);

    // The plugin serves the standard health service, checked with a proto-loader client too.
    const health = load("grpc/health/v1/health.proto") as unknown as {
      grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
    };
    const checker = new health.grpc.health.v1.Health(
      `unix:${hosted.dial_target.replace(/^unix:\/\//, "")}`,
      grpc.credentials.createInsecure(),
    ) as AnyClient;
    expect(await rpc(checker, "Check", { service: "" })).toEqual({ status: "SERVING" });
    checker.close();

    const listed = await rpc<{ sessions: { id: string; state: string }[] }>(client, "ListSessions", {});
    expect(listed.sessions.map((s) => [s.id, s.state])).toEqual([[session.id, "running"]]);

    expect(await rpc(client, "StopSession", { session_id: session.id })).toEqual({});
    const after = await rpc<{ state: string }>(client, "GetSession", { session_id: session.id });
    expect(after.state).toBe("stopped");
    expectNothingLeft(local);
  });

  it("answers NOT_FOUND for an unknown session, and FAILED_PRECONDITION for a second plugin", async () => {
    await expect(rpc(client, "GetSession", { session_id: "nope" })).rejects.toMatchObject({
      code: grpc.status.NOT_FOUND,
      details: 'no plugin runtime session "nope"',
    });
    const session = await rpc<{ id: string }>(client, "StartSession", { plugin_name: "x" });
    await rpc(client, "StartPlugin", {
      session_id: session.id,
      plugin_name: "x",
      command: plugin.command,
      args: plugin.args,
    });
    await expect(
      rpc(client, "StartPlugin", {
        session_id: session.id,
        plugin_name: "x",
        command: plugin.command,
        args: plugin.args,
      }),
    ).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });
    await rpc(client, "StopSession", { session_id: session.id });
    // Stopping again, or an unknown session, succeeds.
    await rpc(client, "StopSession", { session_id: session.id });
    await rpc(client, "StopSession", { session_id: "never-was" });
    expectNothingLeft(local);
  });

  it("answers INVALID_ARGUMENT for a request without a plugin name", async () => {
    await expect(rpc(client, "StartSession", {})).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
    });
  });

  it("answers UNIMPLEMENTED for a method the provider lacks", async () => {
    const pkg = load("gestalt/provider/v1/provider.proto") as unknown as {
      gestalt: { provider: { v1: { PluginRuntimeProvider: grpc.ServiceClientConstructor } } };
    };
    const other = new pkg.gestalt.provider.v1.PluginRuntimeProvider(
      bare.address,
      grpc.credentials.createInsecure(),
    ) as AnyClient;
    try {
      await expect(rpc(other, "ListSessions", {})).rejects.toMatchObject({ code: grpc.status.UNIMPLEMENTED });
    } finally {
      other.close();
    }
  });

  it("serves a log host that appends what providers send", async () => {
    const buffer = new SessionLogBuffer();
    const served = await serveRuntimeLogHost(buffer, `unix://${join(dir, "logs.sock")}`);
    const pkg = load("gestalt/provider/v1/provider.proto") as unknown as {
      gestalt: { provider: { v1: { PluginRuntimeLogHost: grpc.ServiceClientConstructor } } };
    };
    const logs = new pkg.gestalt.provider.v1.PluginRuntimeLogHost(
      served.address,
      grpc.credentials.createInsecure(),
    ) as AnyClient;
    try {
      const response = await rpc(logs, "AppendLogs", {
        session_id: "s1",
        logs: [
          {
            stream: "PLUGIN_RUNTIME_LOG_STREAM_STDERR",
            message: "boom",
            source_seq: 7,
            observed_at: { seconds: 1, nanos: 0 },
          },
        ],
      });
      expect(response).toEqual({ last_seq: 7 });
      expect(buffer.tail("s1")).toEqual([
        { stream: "stderr", message: "boom", sourceSeq: 7, observedAt: new Date(1000) },
      ]);
    } finally {
      logs.close();
      await served.close();
    }
  });
});
