import { join, resolve } from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRuntimeClient } from "../../../src/server/index.js";
import { type ServeProcess, startServeProcess } from "./serve-process.js";

/**
 * Random and hostile messages, for every runtime.v1 method, against a live `serve`
 * subprocess (fake backend): through a client built at test time from runtime.proto with
 * @grpc/proto-loader (well-formed messages with hostile values), and as raw bytes (messages
 * that are not protobuf at all). Every call gets a status, none is INTERNAL or UNKNOWN (a bug
 * the server did not classify), and the server never exits.
 */
const PROTO_ROOT = resolve(import.meta.dirname, "../../../proto");
const UNARY = ["Create", "Get", "List", "Touch", "Stop", "Destroy"] as const;
const STREAMING = ["Logs", "WatchEvents"] as const;
type Method = (typeof UNARY)[number] | (typeof STREAMING)[number];

let serve: ServeProcess;
let client: grpc.Client &
  Record<string, (...args: unknown[]) => grpc.ClientUnaryCall & grpc.ClientReadableStream<unknown>>;
let raw: grpc.Client;

beforeAll(async () => {
  serve = await startServeProcess();
  const definition = protoLoader.loadSync(join(PROTO_ROOT, "runtime/v1/runtime.proto"), {
    includeDirs: [PROTO_ROOT],
    keepCase: false,
    longs: String,
    enums: Number,
    defaults: false,
    oneofs: true,
  });
  const runtime = (
    grpc.loadPackageDefinition(definition) as { runtime: { v1: { Runtime: grpc.ServiceClientConstructor } } }
  ).runtime.v1.Runtime;
  client = new runtime(`unix:${serve.socket}`, grpc.credentials.createInsecure()) as typeof client;
  raw = new grpc.Client(`unix:${serve.socket}`, grpc.credentials.createInsecure());
}, 60_000);

afterAll(async () => {
  client?.close();
  raw?.close();
  await serve?.stop();
}, 60_000);

/** Statuses that mean "the server classified this": anything but a crash or an unclassified throw. */
const CLASSIFIED = new Set([
  grpc.status.OK,
  grpc.status.INVALID_ARGUMENT,
  grpc.status.NOT_FOUND,
  grpc.status.FAILED_PRECONDITION,
  grpc.status.RESOURCE_EXHAUSTED,
  grpc.status.UNAVAILABLE,
  grpc.status.ABORTED,
  grpc.status.UNIMPLEMENTED,
  // The backstop deadline of a stream that legitimately waits (logs -f, events).
  grpc.status.DEADLINE_EXCEEDED,
]);

// ── hostile values ──────────────────────────────────────────────────────────

const hostileString = fc.oneof(
  fc.constantFrom("", "w1", "fz-1", "wörk", "é", "line\nbreak", "%E0%A4%A", "\u0000", "../../etc", "default"),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.nat({ max: 70_000 }).map((n) => "x".repeat(n)),
);
/** Ids of workloads a plausible Create starts, so the other calls meet live workloads too. */
const liveId = fc.constantFrom("fz-1", "fz-2", "fz-3");
const workloadId = fc.oneof({ arbitrary: liveId, weight: 2 }, { arbitrary: hostileString, weight: 3 });
const uint64 = fc.oneof(
  fc.constantFrom("0", "1", "9007199254740991", "9007199254740992", "18446744073709551615"),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String),
  fc.nat({ max: 400_000_000_000 }).map(String),
);
const enumValue = fc.oneof(fc.integer({ min: -1, max: 12 }), fc.integer());
const stringMap = fc.dictionary(hostileString, hostileString, { maxKeys: 4 });
const jsonish = fc
  .jsonValue({ maxDepth: 4 })
  .map((v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? v : { v }));

const spec = fc.record(
  {
    workloadId: hostileString,
    profile: fc.oneof(fc.constant("default"), hostileString),
    owner: hostileString,
    env: stringMap,
    runnable: fc.record(
      {
        command: fc.array(hostileString, { maxLength: 4 }),
        image: hostileString,
        cwd: hostileString,
        extra: jsonish.map((value) => protoStruct(value as Record<string, unknown>)),
      },
      { requiredKeys: [] },
    ),
    resources: fc.record(
      {
        cpu: fc.double(),
        memoryMb: fc.nat(),
        gpu: fc.nat(),
        pids: fc.nat(),
      },
      { requiredKeys: [] },
    ),
    workspace: hostileString,
    idleTimeoutMs: uint64,
    maxLifetimeMs: uint64,
    graceMs: uint64,
    labels: stringMap,
  },
  { requiredKeys: [] },
);

/** A JSON object as a google.protobuf.Struct, the way protobufjs wants it. */
function protoStruct(object: Record<string, unknown>): unknown {
  const value = (v: unknown): unknown => {
    if (v === null) return { nullValue: 0 };
    if (typeof v === "number") return { numberValue: v };
    if (typeof v === "string") return { stringValue: v };
    if (typeof v === "boolean") return { boolValue: v };
    if (Array.isArray(v)) return { listValue: { values: v.map(value) } };
    return { structValue: protoStruct(v as Record<string, unknown>) };
  };
  return { fields: Object.fromEntries(Object.entries(object).map(([k, v]) => [k, value(v)])) };
}

/** A spec the kernel accepts, with hostile values only where they are still valid. */
const plausibleSpec = fc.record(
  {
    workloadId: liveId,
    profile: fc.constant("default"),
    env: fc.dictionary(fc.constantFrom("A", "B_2", "_C"), hostileString, { maxKeys: 3 }),
    graceMs: fc.nat({ max: 31_536_000_000 }).map(String),
    idleTimeoutMs: fc.nat({ max: 31_536_000_000 }).map(String),
  },
  { requiredKeys: ["workloadId", "profile"] },
);

const REQUESTS: Record<Method, fc.Arbitrary<unknown>> = {
  Create: fc.oneof(fc.record({ spec: plausibleSpec }), fc.record({ spec }, { requiredKeys: [] })),
  Get: fc.record({ workloadId }, { requiredKeys: [] }),
  List: fc.record(
    { owner: hostileString, states: fc.array(enumValue, { maxLength: 4 }), profile: hostileString },
    { requiredKeys: [] },
  ),
  Touch: fc.record({ workloadId }, { requiredKeys: [] }),
  Stop: fc.record({ workloadId, reason: enumValue, graceMs: uint64 }, { requiredKeys: [] }),
  Destroy: fc.record({ workloadId, graceMs: uint64 }, { requiredKeys: [] }),
  Logs: fc.record(
    { workloadId, follow: fc.boolean(), tail: fc.nat({ max: 2 ** 32 - 1 }) },
    { requiredKeys: [] },
  ),
  WatchEvents: fc.record({ workloadId: hostileString, sinceSeq: uint64 }, { requiredKeys: [] }),
};

/** A stream's outcome: OK at its first sign of life (headers, an item, its end), else its error status. */
function firstSign(call: grpc.ClientReadableStream<unknown>): Promise<number> {
  return new Promise((done) => {
    let finished = false;
    const finish = (code: number) => {
      if (finished) return;
      finished = true;
      call.cancel();
      done(code);
    };
    call.on("metadata", () => finish(grpc.status.OK));
    call.on("data", () => finish(grpc.status.OK));
    call.on("error", (error: grpc.ServiceError) => finish(error.code));
    call.on("end", () => finish(grpc.status.OK));
  });
}

/** The status code a unary call ended with. */
const unaryOutcome = (start: (callback: (error: grpc.ServiceError | null) => void) => void) =>
  new Promise<number>((done) => start((error) => done(error?.code ?? grpc.status.OK)));

/** Calls `method` with `request` through the proto-loader client; resolves with the status code. */
function callOnce(method: Method, request: unknown): Promise<number> {
  const name = method[0]!.toLowerCase() + method.slice(1);
  // A backstop for streams that rightly wait (logs -f of a silent workload): DEADLINE_EXCEEDED.
  const options = { deadline: Date.now() + 2_000 };
  if ((UNARY as readonly string[]).includes(method)) {
    return unaryOutcome((callback) => client[name]!(request, new grpc.Metadata(), options, callback));
  }
  return firstSign(client[name]!(request, new grpc.Metadata(), options));
}

/** Sends `bytes` as the request of `path`; resolves with the status code. */
function rawCall(path: string, streaming: boolean, bytes: Uint8Array): Promise<number> {
  const serialize = (b: Uint8Array) => Buffer.from(b);
  const deserialize = (b: Buffer) => b;
  const options = { deadline: Date.now() + 2_000 };
  if (!streaming) {
    return unaryOutcome((callback) =>
      raw.makeUnaryRequest(path, serialize, deserialize, bytes, new grpc.Metadata(), options, callback),
    );
  }
  return firstSign(
    raw.makeServerStreamRequest(path, serialize, deserialize, bytes, new grpc.Metadata(), options),
  );
}

describe("the runtime.v1 service under random and hostile messages", () => {
  it("answers every well-formed message with hostile values with a classified status", async () => {
    const method = fc.constantFrom<Method>(...UNARY, ...STREAMING);
    await fc.assert(
      fc.asyncProperty(
        method.chain((m) => REQUESTS[m].map((request) => [m, request] as const)),
        async ([m, request]) => {
          const code = await callOnce(m, request);
          expect(CLASSIFIED, `${m} answered ${grpc.status[code]}`).toContain(code);
          expect(serve.alive(), serve.output()).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  }, 300_000);

  it("answers bytes that are not a message, on every method and on methods that do not exist", async () => {
    const target = fc.oneof(
      fc.constantFrom<Method>(...UNARY, ...STREAMING).map((m) => ({
        path: `/runtime.v1.Runtime/${m}`,
        streaming: (STREAMING as readonly string[]).includes(m),
      })),
      fc
        .constantFrom(
          "/runtime.v1.Runtime/Nope",
          "/other.Service/Create",
          "/",
          "/grpc.health.v1.Health/Check",
        )
        .map((path) => ({ path, streaming: false })),
    );
    await fc.assert(
      fc.asyncProperty(target, fc.uint8Array({ maxLength: 4_096 }), async ({ path, streaming }, bytes) => {
        const code = await rawCall(path, streaming, bytes);
        expect(CLASSIFIED, `${path} answered ${grpc.status[code]}`).toContain(code);
        expect(serve.alive(), serve.output()).toBe(true);
      }),
      { numRuns: 300 },
    );
  }, 300_000);

  it("is still serving afterwards, and logged no crash", async () => {
    const fresh = createRuntimeClient(`unix:${serve.socket}`);
    try {
      expect(await fresh.health({ timeoutMs: 10_000 })).toBe("SERVING");
      expect(Array.isArray(await fresh.list({}, { timeoutMs: 10_000 }))).toBe(true);
    } finally {
      fresh.close();
    }
    expect(serve.alive()).toBe(true);
    expect(serve.output()).not.toMatch(/Unhandled|TypeError|RangeError|failed inside the server/);
  }, 60_000);
});
