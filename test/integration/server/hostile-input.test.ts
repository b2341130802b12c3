import { statSync } from "node:fs";
import { Client, credentials, type ServiceError, status } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthClient } from "../../../src/gen/grpc/health/v1/health.js";
import * as wire from "../../../src/gen/runtime/v1/runtime.js";
import {
  createRuntimeClient,
  ERROR_METADATA,
  type RuntimeClient,
  type RuntimeServiceError,
} from "../../../src/server/index.js";
import { type ServeProcess, startServeProcess } from "./serve-process.js";

/**
 * A real `runtime-kernel serve` subprocess (fake backend, a socket path of the test's
 * choosing, started under umask 000) against hostile input: no call may take it down, and
 * its socket is private whatever the umask.
 */

/** Ids that once crashed `serve` (grpc-js refused them in a trailer) or were echoed whole. */
const HOSTILE_IDS = ["wörk", "é", "line\nbreak", "\u{1F4A5}", "x".repeat(1 << 20)];

let serve: ServeProcess;
let socket: string;
let client: RuntimeClient;

/** Opens WatchEvents for `id` and resolves "opened" once the server answered with the stream's headers. */
function watchOpened(id: string): Promise<string> {
  const raw = new wire.RuntimeClient(`unix:${socket}`, credentials.createInsecure());
  return new Promise<string>((resolve, reject) => {
    const call = raw.watchEvents({ workloadId: id, sinceSeq: 0 });
    call.on("metadata", () => {
      call.cancel();
      resolve("opened");
    });
    call.on("error", (error: Error & { code?: number }) => {
      if (error.code !== status.CANCELLED) reject(error);
    });
  }).finally(() => raw.close());
}

const alive = () => serve.alive();

beforeAll(async () => {
  // umask 000: were the socket to follow it, every local user could drive this kernel.
  serve = await startServeProcess({ umask: "000", socketName: "shared/rk.sock" });
  socket = serve.socket;
  client = createRuntimeClient(`unix:${socket}`);
}, 60_000);

afterAll(async () => {
  client?.close();
  await serve?.stop();
}, 60_000);

describe("runtime-kernel serve under hostile input", () => {
  it("creates a socket at a chosen path private to its user (0600) under umask 000", () => {
    const stat = statSync(socket);
    expect(stat.isSocket()).toBe(true);
    expect((stat.mode & 0o777).toString(8)).toBe("600");
  });

  it("answers get, stop, destroy and logs of non-ASCII and multi-line ids from the CLI, and keeps serving", async () => {
    for (const id of ["wörk", "é", "line\nbreak"]) {
      for (const command of [["get"], ["stop"], ["destroy"], ["logs"]]) {
        const result = await serve.run([...command, id]);
        expect(result.code, `${command} ${JSON.stringify(id)}: ${result.stderr}`).toBe(1);
        expect(result.stderr).toMatch(/no workload/i);
        expect(alive(), serve.output()).toBe(true);
      }
    }
    const listed = await serve.run(["ls"]);
    expect(listed.code).toBe(0);
  }, 120_000);

  it("answers every RPC about a hostile id with a status, echoing a bounded amount, and keeps serving", async () => {
    const calls: [string, (id: string) => Promise<unknown>][] = [
      ["Create", (id) => client.create({ workloadId: id, profile: "default" })],
      ["Get", (id) => client.get(id)],
      ["Touch", (id) => client.touch(id)],
      ["Stop", (id) => client.stop(id, { graceMs: 10 })],
      ["Destroy", (id) => client.destroy(id)],
      [
        "Logs",
        async (id) => {
          for await (const _ of client.logs(id)) return "a line";
        },
      ],
      ["WatchEvents", (id) => watchOpened(id)],
    ];
    for (const id of HOSTILE_IDS) {
      for (const [name, call] of calls) {
        const outcome = await call(id).then(
          (value) => ({ value }),
          (error: RuntimeServiceError) => ({ error }),
        );
        const label = `${name}(${id.length > 20 ? `${id.length} chars` : JSON.stringify(id)})`;
        if ("error" in outcome) {
          expect(outcome.error.fromKernel, `${label}: ${outcome.error.message}`).toBe(true);
          expect(["WORKLOAD_NOT_FOUND", "INVALID_SPEC"]).toContain(outcome.error.code);
          expect(outcome.error.message.length, label).toBeLessThan(4_096);
        } else {
          // Get answers "no such workload" as undefined; watching an unknown id is a valid
          // subscription (the server opened it: it sent the stream's headers).
          expect([name, outcome.value], label).toEqual(
            name === "Get" ? ["Get", undefined] : ["WatchEvents", "opened"],
          );
        }
        expect(alive(), `${label}\n${serve.output()}`).toBe(true);
      }
    }
    // The health service echoes a service name it does not know: bounded too.
    const health = new HealthClient(`unix:${socket}`, credentials.createInsecure());
    for (const service of HOSTILE_IDS) {
      const error = await new Promise<ServiceError | null>((r) => health.check({ service }, (e) => r(e)));
      expect(error?.code).toBe(status.NOT_FOUND);
      expect(error?.details.length).toBeLessThan(4_096);
    }
    health.close();
    expect(await client.health()).toBe("SERVING");
    expect(await client.list()).toEqual([]);
    // A fresh client is served at once: nothing above poisoned the server.
    const fresh = createRuntimeClient(`unix:${socket}`);
    try {
      expect(await fresh.list({}, { timeoutMs: 5_000 })).toEqual([]);
    } finally {
      fresh.close();
    }
    expect(serve.output()).not.toMatch(/illegal characters|Unhandled|TypeError/);
  }, 120_000);

  describe("numbers the kernel cannot take", () => {
    /** Sends `bytes` as the request of `method` and resolves with the status (code, details, kernel code). */
    function rawCall(method: string, bytes: Uint8Array) {
      const raw = new Client(`unix:${socket}`, credentials.createInsecure());
      return new Promise<{ code: number; details: string; kernelCode: unknown }>((resolve) => {
        const done = (error: ServiceError | null) => {
          raw.close();
          resolve({
            code: error?.code ?? status.OK,
            details: error?.details ?? "",
            kernelCode: error?.metadata.get(ERROR_METADATA.code)[0],
          });
        };
        if (method === "WatchEvents") {
          const call = raw.makeServerStreamRequest(
            `/runtime.v1.Runtime/${method}`,
            (b: Uint8Array) => Buffer.from(b),
            (b: Buffer) => b,
            bytes,
          );
          call.on("data", () => {});
          call.on("error", done);
          call.on("end", () => done(null));
        } else {
          raw.makeUnaryRequest(
            `/runtime.v1.Runtime/${method}`,
            (b: Uint8Array) => Buffer.from(b),
            (b: Buffer) => b,
            bytes,
            (error) => done(error),
          );
        }
      });
    }

    const huge = (2n ** 60n) as unknown as number;
    const spec = {
      workloadId: "w1",
      profile: "default",
      env: {},
      labels: {},
      mounts: [],
      runnable: undefined,
      resources: undefined,
    };

    it.each<[string, string, Uint8Array]>([
      [
        "Create",
        "spec.idleTimeoutMs",
        wire.CreateRequest.encode({ spec: { ...spec, idleTimeoutMs: huge } }).finish(),
      ],
      [
        "Create",
        "spec.maxLifetimeMs",
        wire.CreateRequest.encode({ spec: { ...spec, maxLifetimeMs: huge } }).finish(),
      ],
      ["Create", "spec.graceMs", wire.CreateRequest.encode({ spec: { ...spec, graceMs: huge } }).finish()],
      ["Stop", "graceMs", wire.StopRequest.encode({ workloadId: "w1", graceMs: huge }).finish()],
      ["Destroy", "graceMs", wire.DestroyRequest.encode({ workloadId: "w1", graceMs: huge }).finish()],
      ["WatchEvents", "sinceSeq", wire.WatchEventsRequest.encode({ sinceSeq: huge }).finish()],
      ["Stop", "graceMs", wire.StopRequest.encode({ workloadId: "w1", graceMs: 2 ** 53 - 1 }).finish()],
      ["Get", "request", new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])],
    ])("%s whose %s cannot be taken answers INVALID_SPEC naming it", async (method, field, bytes) => {
      const answer = await rawCall(method, bytes);
      expect(answer).toMatchObject({ code: status.INVALID_ARGUMENT, kernelCode: "INVALID_SPEC" });
      expect(answer.details).toContain(`${field}: `);
      expect(alive()).toBe(true);
    });
  });
});
