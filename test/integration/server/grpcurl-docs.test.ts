import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { type Client, credentials, Metadata, makeGenericClientConstructor } from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HealthCheckRequest, HealthService } from "../../../src/gen/grpc/health/v1/health.js";
import * as wire from "../../../src/gen/runtime/v1/runtime.js";
import { type Harness, startHarness } from "./harness.js";

/**
 * docs/service.md shows the service through grpcurl, which is not installed here. This test
 * does what grpcurl does with each documented command: parse the `-d` JSON with the proto3
 * JSON mapping of the method's request type, call the method, and expect OK. If a field name
 * or an enum name in the docs drifts from the .proto, this fails.
 */
const DOC = readFileSync(resolve(import.meta.dirname, "../../../docs/service.md"), "utf8");

interface DocCall {
  service: string;
  method: string;
  json: unknown;
}

function documentedCalls(): DocCall[] {
  const text = DOC.replace(/\\\n\s*/g, " ");
  const calls: DocCall[] = [];
  for (const match of text.matchAll(
    /-d '(\{.*?\})'.*?(runtime\.v1\.Runtime|grpc\.health\.v1\.Health)\/(\w+)/g,
  )) {
    calls.push({ json: JSON.parse(match[1]!), service: match[2]!, method: match[3]! });
  }
  return calls;
}

const REQUESTS: Record<string, { fromJSON(o: unknown): unknown; toJSON(m: never): unknown }> = {
  Create: wire.CreateRequest,
  Get: wire.GetRequest,
  List: wire.ListRequest,
  Touch: wire.TouchRequest,
  Logs: wire.LogsRequest,
  WatchEvents: wire.WatchEventsRequest,
  Stop: wire.StopRequest,
  Destroy: wire.DestroyRequest,
  Check: HealthCheckRequest,
};

/** Every key of `given` is one the message knows (proto3 JSON drops unknown ones silently). */
function expectKnownFields(given: unknown, parsed: unknown, path = ""): void {
  if (given === null || typeof given !== "object" || Array.isArray(given)) return;
  for (const [key, value] of Object.entries(given)) {
    expect(parsed, `${path}${key}`).toHaveProperty([key]);
    expectKnownFields(value, (parsed as Record<string, unknown>)[key], `${path}${key}.`);
  }
}

let h: Harness;
let runtime: Client & Record<string, (...args: unknown[]) => unknown>;
let health: Client & Record<string, (...args: unknown[]) => unknown>;

beforeAll(async () => {
  h = await startHarness();
  // The fake backend prints nothing unless told: give the documented job a line for Logs.
  h.fake.behave("job-1", { output: ["hello"] });
  const Runtime = makeGenericClientConstructor(wire.RuntimeService, "runtime.v1.Runtime");
  const Health = makeGenericClientConstructor(HealthService, "grpc.health.v1.Health");
  runtime = new Runtime(h.server.address, credentials.createInsecure()) as typeof runtime;
  health = new Health(h.server.address, credentials.createInsecure()) as typeof health;
});

afterAll(async () => {
  runtime?.close();
  health?.close();
  await h?.close();
});

describe("the grpcurl commands of docs/service.md", () => {
  const calls = documentedCalls();

  it("cover every method of the service, in a runnable order", () => {
    expect(calls.map((c) => c.method)).toEqual([
      "Create",
      "Get",
      "List",
      "Touch",
      "Logs",
      "WatchEvents",
      "Stop",
      "Destroy",
      "Check",
    ]);
  });

  it("use only field and enum names the .proto knows, and succeed against a server", async () => {
    for (const call of calls) {
      const type = REQUESTS[call.method]!;
      const request = type.fromJSON(call.json);
      expectKnownFields(call.json, type.toJSON(request as never));
      const client = call.service === "runtime.v1.Runtime" ? runtime : health;
      const name = call.method.charAt(0).toLowerCase() + call.method.slice(1);
      const method = (client[name] as (...args: unknown[]) => unknown).bind(client);
      const streaming = call.method === "Logs" || call.method === "WatchEvents";
      if (streaming) {
        // Read the first message, then hang up, as a person would with Ctrl-C.
        const stream = method(request, new Metadata()) as NodeJS.EventEmitter & { cancel(): void };
        await new Promise<void>((resolve, reject) => {
          stream.once("data", () => {
            stream.cancel();
            resolve();
          });
          stream.once("error", reject);
        });
        continue;
      }
      await new Promise<void>((resolve, reject) =>
        method(request, (error: Error | null) =>
          error ? reject(new Error(`${call.method}: ${error.message}`)) : resolve(),
        ),
      );
    }
    expect(await h.client.get("job-1")).toBeUndefined();
  });
});
