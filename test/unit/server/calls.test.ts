import { EventEmitter } from "node:events";
import {
  Metadata,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { describe, expect, it } from "vitest";
import { WorkloadNotFoundError } from "../../../src/errors.js";
import { GrpcStatus } from "../../../src/grpc/status.js";
import { ServedCalls } from "../../../src/server/calls.js";

const TOKEN = "Bearer right";

/** Metadata with `authorization`, or none when it is null. */
function metadata(authorization: string | null): Metadata {
  const m = new Metadata();
  if (authorization !== null) m.set("authorization", authorization);
  return m;
}

/** A server whose only token is TOKEN, recording what it reports. */
function served() {
  const reported: { error: unknown; method: string }[] = [];
  const calls = new ServedCalls(
    (m) => m.get("authorization")[0] === TOKEN,
    (error, { method }) => reported.push({ error, method }),
  );
  return { calls, reported };
}

/** A unary call as grpc-js hands it to a handler, and every answer given to it. */
function unaryCall<Req>(request: Req, authorization: string | null = TOKEN) {
  const answers: { error: Partial<ServiceError> | null; response?: unknown }[] = [];
  const call = { request, metadata: metadata(authorization) } as ServerUnaryCall<Req, unknown>;
  const callback: sendUnaryData<unknown> = (error, response) => {
    answers.push({ error: error as Partial<ServiceError> | null, response });
  };
  return { call, callback, answers };
}

/**
 * A server-streaming call: `write` returns what `writable` says (false is the client's flow
 * control pushing back), and everything written, ended or emitted is recorded.
 */
class FakeStream<Req> extends EventEmitter {
  readonly written: unknown[] = [];
  readonly sentMetadata: Metadata[] = [];
  ended = false;
  errors: Partial<ServiceError>[] = [];
  cancelled = false;
  writable = true;
  readonly metadata: Metadata;

  constructor(
    readonly request: Req,
    authorization: string | null = TOKEN,
  ) {
    super();
    this.metadata = metadata(authorization);
    this.on("error", (error: Partial<ServiceError>) => this.errors.push(error));
  }

  write(item: unknown): boolean {
    this.written.push(item);
    return this.writable;
  }
  end(): void {
    this.ended = true;
  }
  sendMetadata(m: Metadata): void {
    this.sentMetadata.push(m);
  }
  cancel(): void {
    this.cancelled = true;
    this.emit("cancelled");
  }
  get asCall(): ServerWritableStream<Req, unknown> {
    return this as unknown as ServerWritableStream<Req, unknown>;
  }
}

/** Lets the handler's promise chains run to where they wait next. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

/** A source the test feeds by hand, recording how many items were asked for and its signal. */
function handFedSource<Item>() {
  const queue: Item[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  const state = { pulls: 0, signal: undefined as AbortSignal | undefined, finished: false };
  return {
    state,
    push(item: Item) {
      queue.push(item);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    source: async function* (_request: unknown, signal: AbortSignal): AsyncIterable<Item> {
      state.signal = signal;
      signal.addEventListener("abort", () => wake?.());
      try {
        for (;;) {
          while (queue.length === 0 && !ended && !signal.aborted) await new Promise<void>((r) => (wake = r));
          if (queue.length === 0) return;
          state.pulls++;
          yield queue.shift() as Item;
        }
      } finally {
        state.finished = true;
      }
    },
  };
}

describe("ServedCalls: the gate", () => {
  it("refuses a unary call without the right bearer token, UNAUTHENTICATED, without running the handler", async () => {
    const { calls } = served();
    let ran = 0;
    const handler = calls.unary("Get", () => ++ran);
    for (const authorization of [null, "Bearer wrong"]) {
      const c = unaryCall({}, authorization);
      handler(c.call, c.callback);
      await settle();
      expect(c.answers).toEqual([{ error: expect.objectContaining({ code: GrpcStatus.UNAUTHENTICATED }) }]);
    }
    expect(ran).toBe(0);
  });

  it("runs a unary call with the right token and answers with the handler's result", async () => {
    const { calls } = served();
    const c = unaryCall({ id: "w1" });
    calls.unary("Get", (request: { id: string }) => ({ got: request.id }))(c.call, c.callback);
    await settle();
    expect(c.answers).toEqual([{ error: null, response: { got: "w1" } }]);
  });

  it("refuses a stream without the right token, UNAUTHENTICATED, without subscribing", async () => {
    const { calls } = served();
    const fed = handFedSource<number>();
    const stream = new FakeStream({}, "Bearer wrong");
    calls.streaming("Watch", fed.source, (n) => n)(stream.asCall);
    await settle();
    expect(stream.errors).toEqual([expect.objectContaining({ code: GrpcStatus.UNAUTHENTICATED })]);
    expect(fed.state.signal).toBeUndefined();
  });

  it("once closed, refuses new unary and streaming calls UNAVAILABLE, even with the right token", async () => {
    const { calls } = served();
    let ran = 0;
    const handler = calls.unary("Get", () => ++ran);
    const fed = handFedSource<number>();
    const watch = calls.streaming("Watch", fed.source, (n) => n);
    calls.close();
    const c = unaryCall({});
    handler(c.call, c.callback);
    const stream = new FakeStream({});
    watch(stream.asCall);
    await settle();
    expect(c.answers).toEqual([
      {
        error: expect.objectContaining({
          code: GrpcStatus.UNAVAILABLE,
          details: expect.stringMatching(/shutting down/),
        }),
      },
    ]);
    expect(stream.errors).toEqual([expect.objectContaining({ code: GrpcStatus.UNAVAILABLE })]);
    expect(ran).toBe(0);
    expect(fed.state.signal).toBeUndefined();
  });
});

describe("ServedCalls: a unary call is answered exactly once", () => {
  it("answers a kernel error with its status, reporting nothing", async () => {
    const { calls, reported } = served();
    const c = unaryCall({});
    calls.unary("Get", () => {
      throw new WorkloadNotFoundError("w1");
    })(c.call, c.callback);
    await settle();
    expect(c.answers).toEqual([{ error: expect.objectContaining({ code: GrpcStatus.NOT_FOUND }) }]);
    expect(reported).toEqual([]);
  });

  it("answers any other failure INTERNAL and reports it with the method", async () => {
    const { calls, reported } = served();
    const c = unaryCall({});
    const bug = new TypeError("a bug");
    calls.unary("Get", async () => {
      throw bug;
    })(c.call, c.callback);
    await settle();
    expect(c.answers).toEqual([{ error: expect.objectContaining({ code: GrpcStatus.INTERNAL }) }]);
    expect(reported).toEqual([{ error: bug, method: "Get" }]);
  });

  it("cutPending answers a call still waiting UNAVAILABLE, and the kernel's later answer is dropped", async () => {
    const { calls } = served();
    let answer: (value: string) => void = () => {};
    const c = unaryCall({});
    calls.unary("Stop", () => new Promise<string>((r) => (answer = r)))(c.call, c.callback);
    await settle();
    expect(c.answers).toEqual([]);
    calls.cutPending();
    expect(c.answers).toEqual([
      {
        error: expect.objectContaining({
          code: GrpcStatus.UNAVAILABLE,
          details: expect.stringMatching(/shut down/),
        }),
      },
    ]);
    answer("late");
    await settle();
    calls.cutPending();
    expect(c.answers).toHaveLength(1);
  });

  it("cutPending leaves a call already answered alone", async () => {
    const { calls } = served();
    const c = unaryCall({});
    calls.unary("Get", () => "done")(c.call, c.callback);
    await settle();
    calls.cutPending();
    expect(c.answers).toEqual([{ error: null, response: "done" }]);
  });

  it("close() lets unary calls in flight finish with the kernel's answer", async () => {
    const { calls } = served();
    let answer: (value: string) => void = () => {};
    const c = unaryCall({});
    calls.unary("Stop", () => new Promise<string>((r) => (answer = r)))(c.call, c.callback);
    await settle();
    calls.close();
    answer("stopped");
    await settle();
    expect(c.answers).toEqual([{ error: null, response: "stopped" }]);
  });

  it("when grpc-js cannot send the answer, reports it and answers with a bare INTERNAL status", async () => {
    const { calls, reported } = served();
    const answers: unknown[] = [];
    const unsendable = new Error("cannot encode");
    const callback: sendUnaryData<unknown> = (error, response) => {
      answers.push(error ?? response);
      if (answers.length === 1) throw unsendable;
    };
    calls.unary("Get", () => "unencodable")(unaryCall({}).call, callback);
    await settle();
    expect(answers).toEqual(["unencodable", expect.objectContaining({ code: GrpcStatus.INTERNAL })]);
    expect(reported).toEqual([{ error: unsendable, method: "Get" }]);
  });
});

describe("ServedCalls: a streaming call", () => {
  it("sends the headers, then each item encoded, and ends when the source ends", async () => {
    const { calls } = served();
    const fed = handFedSource<number>();
    const headers = new Metadata();
    headers.set("x-seq", "7");
    const stream = new FakeStream({});
    calls.streaming(
      "Watch",
      fed.source,
      (n) => ({ n }),
      () => headers,
    )(stream.asCall);
    fed.push(1);
    fed.push(2);
    await settle();
    expect(stream.sentMetadata).toEqual([headers]);
    expect(stream.written).toEqual([{ n: 1 }, { n: 2 }]);
    expect(stream.ended).toBe(false);
    fed.end();
    await settle();
    expect(stream.ended).toBe(true);
    expect(stream.errors).toEqual([]);
  });

  it("asks the source for nothing more while the client pushes back, and goes on at drain", async () => {
    const { calls } = served();
    const fed = handFedSource<number>();
    const stream = new FakeStream({});
    stream.writable = false;
    calls.streaming("Watch", fed.source, (n) => n)(stream.asCall);
    fed.push(1);
    fed.push(2);
    fed.push(3);
    await settle();
    expect(stream.written).toEqual([1]);
    expect(fed.state.pulls).toBe(1);
    stream.writable = true;
    stream.emit("drain");
    await settle();
    expect(stream.written).toEqual([1, 2, 3]);
  });

  it("stops the source when the client cancels, sending nothing after", async () => {
    const { calls } = served();
    const fed = handFedSource<number>();
    const stream = new FakeStream({});
    calls.streaming("Watch", fed.source, (n) => n)(stream.asCall);
    fed.push(1);
    await settle();
    stream.cancel();
    await settle();
    expect(fed.state.signal?.aborted).toBe(true);
    expect(fed.state.finished).toBe(true);
    expect(stream.written).toEqual([1]);
    expect(stream.ended).toBe(false);
    expect(stream.errors).toEqual([]);
  });

  it("close() ends an open stream UNAVAILABLE, even one held by the client's flow control", async () => {
    const { calls } = served();
    const waiting = handFedSource<number>();
    const held = handFedSource<number>();
    const idle = new FakeStream({});
    const pushedBack = new FakeStream({});
    pushedBack.writable = false;
    calls.streaming("Watch", waiting.source, (n) => n)(idle.asCall);
    calls.streaming("Watch", held.source, (n) => n)(pushedBack.asCall);
    held.push(1);
    held.push(2);
    await settle();
    calls.close();
    await settle();
    for (const [stream, fed] of [
      [idle, waiting],
      [pushedBack, held],
    ] as const) {
      expect(fed.state.signal?.aborted).toBe(true);
      expect(fed.state.finished).toBe(true);
      expect(stream.ended).toBe(false);
      expect(stream.errors).toEqual([
        expect.objectContaining({
          code: GrpcStatus.UNAVAILABLE,
          details: expect.stringMatching(/shutting down/),
        }),
      ]);
    }
    expect(pushedBack.written).toEqual([1]);
  });

  it("ends with the source's error as its status, reporting only what is not a kernel error", async () => {
    const { calls, reported } = served();
    const kernel = new FakeStream({});
    const bug = new FakeStream({});
    const failure = new TypeError("a bug");
    calls.streaming(
      "Watch",
      // biome-ignore lint/correctness/useYield: a source that fails before its first item
      async function* () {
        throw new WorkloadNotFoundError("w1");
      },
      (n: number) => n,
    )(kernel.asCall);
    calls.streaming(
      "Logs",
      // biome-ignore lint/correctness/useYield: a source that fails before its first item
      async function* () {
        throw failure;
      },
      (n: number) => n,
    )(bug.asCall);
    await settle();
    expect(kernel.errors).toEqual([expect.objectContaining({ code: GrpcStatus.NOT_FOUND })]);
    expect(bug.errors).toEqual([expect.objectContaining({ code: GrpcStatus.INTERNAL })]);
    expect(kernel.ended || bug.ended).toBe(false);
    expect(reported).toEqual([{ error: failure, method: "Logs" }]);
  });
});

describe("ServedCalls: what it holds", () => {
  it("counts a unary call while it waits, and lets go of it however it ends", async () => {
    const { calls } = served();
    let answer: (value: string) => void = () => {};
    const answered = unaryCall({});
    const cut = unaryCall({});
    calls.unary("Stop", () => new Promise<string>((r) => (answer = r)))(answered.call, answered.callback);
    calls.unary("Get", () => Promise.reject(new WorkloadNotFoundError("w1")))(unaryCall({}).call, () => {});
    calls.unary("Get", () => {
      throw new Error("bug");
    })(unaryCall({}).call, () => {});
    calls.unary("Get", () => "done")(unaryCall({}).call, () => {});
    calls.unary("Watch", () => new Promise<string>(() => {}))(cut.call, cut.callback);
    await settle();
    expect(calls.inFlight).toEqual({ unary: 2, streams: 0 });
    answer("stopped");
    await settle();
    expect(calls.inFlight).toEqual({ unary: 1, streams: 0 });
    calls.cutPending();
    expect(calls.inFlight).toEqual({ unary: 0, streams: 0 });
  });

  it("counts an open stream, and lets go of it when it ends, is cancelled or fails", async () => {
    const { calls } = served();
    const ending = handFedSource<number>();
    const cancelled = new FakeStream({});
    const handlers = [
      calls.streaming("Watch", ending.source, (n) => n),
      calls.streaming("Watch", handFedSource<number>().source, (n) => n),
      calls.streaming(
        "Watch",
        // biome-ignore lint/correctness/useYield: a source that fails before its first item
        async function* () {
          throw new WorkloadNotFoundError("w1");
        },
        (n: number) => n,
      ),
    ];
    handlers[0]?.(new FakeStream({}).asCall);
    handlers[1]?.(cancelled.asCall);
    handlers[2]?.(new FakeStream({}).asCall);
    await settle();
    expect(calls.inFlight).toEqual({ unary: 0, streams: 2 });
    ending.end();
    cancelled.cancel();
    await settle();
    expect(calls.inFlight).toEqual({ unary: 0, streams: 0 });
  });
});
