/**
 * `client.events({ resume })`: an event stream that outlives its server. The server really
 * goes away (its unix socket closed and removed) and a new one comes up on the same address.
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createRuntimeKernel, type RuntimeKernel, type TransitionEvent } from "../../../src/index.js";
import {
  createRuntimeClient,
  EVENTS_EPOCH_HEADER,
  type RuntimeClient,
  type RuntimeKernelServer,
  type RuntimeServiceError,
  serveRuntimeKernel,
} from "../../../src/server/index.js";
import { FakeBackend } from "../../../src/testing/index.js";
import { PROFILES, socketDir } from "./harness.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A unix address in a temp dir of its own, removed after the test. */
function newAddress(): string {
  const dir = socketDir();
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return `unix:${join(dir, "rk.sock")}`;
}

function newKernel(): RuntimeKernel {
  const kernel = createRuntimeKernel({ backend: new FakeBackend(), profiles: PROFILES });
  cleanups.push(() => kernel.shutdown());
  return kernel;
}

/** Serves `kernel` on `address`; closing the server leaves the kernel alone. */
async function serve(kernel: RuntimeKernel, address: string): Promise<RuntimeKernelServer> {
  const server = await serveRuntimeKernel(kernel, { address, onClose: "keep-kernel" });
  cleanups.push(() => server.close());
  return server;
}

function dial(address: string): RuntimeClient {
  // Redial a lost server quickly: grpc-js waits a second by default.
  const client = createRuntimeClient(address, {
    channelOptions: { "grpc.initial_reconnect_backoff_ms": 20, "grpc.max_reconnect_backoff_ms": 100 },
  });
  cleanups.push(() => client.close());
  return client;
}

/** Reads `iterator` in the background; `next(n)` waits until n events have arrived in all. */
function reader(iterator: AsyncIterator<TransitionEvent>) {
  const seen: TransitionEvent[] = [];
  let waiting: { n: number; resolve: () => void } | undefined;
  const done = (async () => {
    for (;;) {
      const { value, done } = await iterator.next();
      if (done) return;
      seen.push(value);
      if (waiting && seen.length >= waiting.n) waiting.resolve();
    }
  })();
  // A failure is for the test to read from `done`, whenever it gets there.
  done.catch(() => {});
  return {
    seen,
    done,
    until: (n: number) =>
      seen.length >= n ? Promise.resolve() : new Promise<void>((resolve) => (waiting = { n, resolve })),
  };
}

const label = (e: TransitionEvent) => `${e.seq} ${e.workloadId}:${e.state}`;

describe("client.events({ resume })", () => {
  it("goes on after the last event seen when the same kernel is served again: no gap, no duplicate", async () => {
    const address = newAddress();
    const kernel = newKernel();
    const first = await serve(kernel, address);
    const client = dial(address);
    const stop = new AbortController();
    cleanups.push(() => stop.abort());
    // Live events only: what happened before the stream opened is not wanted.
    await kernel.create({ workloadId: "before", profile: "default" });
    const events = reader(client.events({ resume: { initialDelayMs: 10 }, signal: stop.signal }));
    await client.list(); // the stream is open once a later call has been answered
    await client.create({ workloadId: "w1", profile: "default" });
    await events.until(2);

    await first.close();
    // While no server is there, the kernel goes on.
    await kernel.create({ workloadId: "w2", profile: "default" });
    await kernel.stop("w1");
    await serve(kernel, address);
    await kernel.stop("w2");

    await events.until(8);
    expect(events.seen.map(label)).toEqual([
      "3 w1:starting",
      "4 w1:running",
      "5 w2:starting",
      "6 w2:running",
      "7 w1:stopping",
      "8 w1:stopped",
      "9 w2:stopping",
      "10 w2:stopped",
    ]);
  });

  it("goes on with everything a new kernel behind the address retains, though its seqs start over", async () => {
    const address = newAddress();
    const old = newKernel();
    const first = await serve(old, address);
    const client = dial(address);
    const stop = new AbortController();
    cleanups.push(() => stop.abort());
    const events = reader(
      client.events({ sinceSeq: 0, resume: { initialDelayMs: 10 }, signal: stop.signal }),
    );
    await old.create({ workloadId: "a", profile: "default" });
    await old.create({ workloadId: "b", profile: "default" });
    await events.until(4);

    await first.close();
    const restarted = newKernel();
    await restarted.create({ workloadId: "c", profile: "default" });
    await serve(restarted, address);

    await events.until(6);
    // Asking the new kernel for what follows seq 4 would have skipped c's first two events.
    expect(events.seen.map(label)).toEqual([
      "1 a:starting",
      "2 a:running",
      "3 b:starting",
      "4 b:running",
      "1 c:starting",
      "2 c:running",
    ]);
  });

  it("resumes after EVENTS_OVERFLOW: a reader that fell behind still gets every event, once", async () => {
    const address = newAddress();
    // Retention covers the whole test, so that the resumed stream can replay what overflowed.
    const kernel = createRuntimeKernel({
      backend: new FakeBackend(),
      profiles: PROFILES,
      eventRetention: 20_000,
    });
    cleanups.push(() => kernel.shutdown());
    await serve(kernel, address);
    const client = dial(address);
    const iterator = client.events({ sinceSeq: 0, resume: { initialDelayMs: 1 } });
    await kernel.create({ workloadId: "first", profile: "default" });
    const seen = [(await iterator.next()).value as TransitionEvent];
    // Not reading: gRPC flow control stops the server's writes, and the kernel's iterator for
    // this stream fills up to its bound of 10,000 undelivered events, then fails.
    const cycles = 2_500;
    for (let i = 0; i < cycles; i++) {
      await kernel.create({ workloadId: `w${i}`, profile: "default" });
      await kernel.destroy(`w${i}`);
    }
    const total = kernel.lastEventSeq;
    expect(total).toBeGreaterThan(10_000);
    while (seen.length < total) seen.push((await iterator.next()).value as TransitionEvent);
    await iterator.return?.();
    expect(seen.map((e) => e.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 1));
  });

  it("fails with the last error after maxAttempts failed reconnects", async () => {
    const address = newAddress();
    const kernel = newKernel();
    const server = await serve(kernel, address);
    const client = dial(address);
    const events = reader(client.events({ resume: { initialDelayMs: 1, maxAttempts: 3 } }));
    await client.list();
    await server.close();
    const failure = (await events.done.catch((e: unknown) => e)) as RuntimeServiceError;
    expect(failure.statusName).toBe("UNAVAILABLE");
    expect(failure.retryable).toBe(true);
  });

  it("without resume, fails as soon as the server goes away", async () => {
    const address = newAddress();
    const server = await serve(newKernel(), address);
    const client = dial(address);
    const events = reader(client.events());
    await client.list();
    await server.close();
    const failure = (await events.done.catch((e: unknown) => e)) as RuntimeServiceError;
    expect(failure.statusName).toBe("UNAVAILABLE");
  });

  it("opens each stream with the kernel's epoch: one per kernel, the same across servers", async () => {
    const address = newAddress();
    const kernel = newKernel();
    const epochOf = async (server: RuntimeKernelServer) => {
      const { RuntimeClient: Raw } = await import("../../../src/gen/runtime/v1/runtime.js");
      const { credentials } = await import("@grpc/grpc-js");
      const raw = new Raw(server.address, credentials.createInsecure());
      try {
        const call = raw.watchEvents({});
        const headers = await new Promise<import("@grpc/grpc-js").Metadata>((resolve) =>
          call.once("metadata", resolve),
        );
        call.cancel();
        call.on("error", () => {});
        return headers.get(EVENTS_EPOCH_HEADER)[0];
      } finally {
        raw.close();
      }
    };
    const first = await serve(kernel, address);
    const epoch = await epochOf(first);
    expect(epoch).toMatch(/^[0-9a-f-]{36}$/);
    await first.close();
    expect(await epochOf(await serve(kernel, address))).toBe(epoch);
    const other = await serve(newKernel(), newAddress());
    expect(await epochOf(other)).not.toBe(epoch);
  });
});
