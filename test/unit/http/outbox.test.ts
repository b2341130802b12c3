import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { isRuntimeKernelError } from "../../../src/errors.js";
import { type CallbackLogEntry, CallbackOutbox } from "../../../src/http/outbox.js";
import { verifyCallbackSignature } from "../../../src/http/signature.js";
import { ManualClock } from "../../../src/testing/index.js";
import { type Receiver, startReceiver } from "../../fixtures/http/receiver.js";

let dir: string;
let clock: ManualClock;
let receivers: Receiver[];
let outboxes: CallbackOutbox[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rk-outbox-"));
  clock = new ManualClock();
  receivers = [];
  outboxes = [];
});

afterEach(async () => {
  for (const outbox of outboxes) outbox.close();
  await Promise.all(receivers.map((r) => r.close()));
  rmSync(dir, { recursive: true, force: true });
});

async function receiver(): Promise<Receiver> {
  const r = await startReceiver();
  receivers.push(r);
  return r;
}

/** An outbox on the manual clock whose log a test can wait on. */
function outbox(options: ConstructorParameters<typeof CallbackOutbox>[0] = {}) {
  const log: CallbackLogEntry[] = [];
  const errors: Error[] = [];
  const waiters: Array<{ test(e: CallbackLogEntry): boolean; resolve(e: CallbackLogEntry): void }> = [];
  const box = new CallbackOutbox({
    clock,
    random: () => 1,
    initialBackoffMs: 1_000,
    ...options,
    log: (entry) => {
      log.push(entry);
      for (const w of [...waiters]) {
        if (w.test(entry)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(entry);
        }
      }
    },
    onError: (error) => errors.push(error),
  });
  outboxes.push(box);
  /** Resolves with the `n`th log entry (counting from the first) that matches. */
  const nth = (n: number, event: CallbackLogEntry["event"], workloadId?: string) => {
    const matches = (e: CallbackLogEntry) =>
      e.event === event && (workloadId === undefined || e.workloadId === workloadId);
    const seen = log.filter(matches);
    if (seen.length >= n) return Promise.resolve(seen[n - 1] as CallbackLogEntry);
    let count = seen.length;
    return new Promise<CallbackLogEntry>((resolve) =>
      waiters.push({ test: (e) => matches(e) && ++count === n, resolve }),
    );
  };
  return { box, log, errors, nth };
}

const event = (workloadId: string, state: string) =>
  JSON.stringify({ workloadId, state, at: "2026-01-01T00:00:00.000Z" });
const states = (r: Receiver, workloadId?: string) =>
  r
    .acknowledged()
    .filter((q) => workloadId === undefined || q.json.workloadId === workloadId)
    .map((q) => q.json.state);

describe("CallbackOutbox: delivery", () => {
  it("retries a receiver that fails twice, then delivers every event, in order, with one id per event", async () => {
    const r = await receiver();
    const { box, nth } = outbox();
    r.failNext(500, 503);
    box.watch("w1", r.url);
    box.enqueue("w1", event("w1", "starting"));
    box.enqueue("w1", event("w1", "running"));
    box.enqueue("w1", event("w1", "stopped"));
    expect((await nth(1, "callback_failed")).retryInMs).toBe(1_000);
    // Nothing is sent before the backoff is over, and the later events wait their turn.
    await clock.advance(999);
    expect(r.requests).toHaveLength(1);
    await clock.advance(1);
    expect((await nth(2, "callback_failed")).retryInMs).toBe(2_000);
    expect(r.requests).toHaveLength(2);
    const drained = box.flush(10_000);
    await clock.advance(2_000);
    expect(await drained).toBe(true);
    expect(r.requests.map((q) => q.json.state)).toEqual([
      "starting",
      "starting",
      "starting",
      "running",
      "stopped",
    ]);
    expect(states(r)).toEqual(["starting", "running", "stopped"]);
    const ids = r.requests.map((q) => q.headers["x-runtime-event-id"]);
    expect(new Set(ids.slice(0, 3)).size).toBe(1);
    expect(new Set(ids).size).toBe(3);
    expect(box.pending).toBe(0);
  });

  it("backs off exponentially up to the cap, with jitter between half and all of each step", async () => {
    for (const [random, expected] of [
      [1, [100, 200, 400, 800, 1_000, 1_000]],
      [0, [50, 100, 200, 400, 500, 500]],
    ] as const) {
      const { box, log } = outbox({
        random: () => random,
        initialBackoffMs: 100,
        maxBackoffMs: 1_000,
        post: async () => 503,
      });
      box.watch("w1", "http://127.0.0.1:9/cb");
      box.enqueue("w1", event("w1", "starting"));
      for (let i = 0; i < expected.length; i++) await clock.advance(1_000);
      expect(
        log
          .filter((e) => e.event === "callback_failed")
          .map((e) => e.retryInMs)
          .slice(0, 6),
      ).toEqual(expected);
      box.close();
    }
  });

  it("acknowledges on any 2xx or 3xx, and retries a 4xx or 5xx", async () => {
    const answers = [404, 302, 500, 204];
    const { box, log } = outbox({ post: async () => answers.shift() ?? 200 });
    box.watch("w1", "http://127.0.0.1:9/cb");
    box.enqueue("w1", event("w1", "starting"));
    box.enqueue("w1", event("w1", "running"));
    for (let i = 0; i < 4; i++) await clock.advance(2_000);
    expect(log.map((e) => `${e.event}:${e.status}`)).toEqual([
      "callback_failed:404",
      "callback_delivered:302",
      "callback_failed:500",
      "callback_delivered:204",
    ]);
  });

  it("drops an event after maxAttempts with a CALLBACK_DROPPED error, and goes on with the next", async () => {
    const r = await receiver();
    r.failNext(500, 500, 500);
    const { box, errors, nth } = outbox({ maxAttempts: 3 });
    box.watch("w1", `${r.url}?token=hush`);
    box.enqueue("w1", event("w1", "starting"));
    box.enqueue("w1", event("w1", "running"));
    await nth(1, "callback_failed");
    await clock.advance(1_000);
    await nth(2, "callback_failed");
    await clock.advance(2_000);
    await nth(1, "callback_dropped");
    await nth(1, "callback_delivered");
    expect(states(r)).toEqual(["running"]);
    expect(errors).toHaveLength(1);
    expect(isRuntimeKernelError(errors[0], "CALLBACK_DROPPED")).toBe(true);
    expect(errors[0]).toMatchObject({ workloadId: "w1", attempts: 3 });
    // The receiver's query (which may hold a credential) is never in an error.
    expect(errors[0]?.message).not.toContain("hush");
  });

  it("drops an event older than maxAgeMs after its next failure", async () => {
    const { box, errors, log } = outbox({ maxAgeMs: 10_000, post: async () => 500 });
    box.watch("w1", "http://127.0.0.1:9/cb");
    box.enqueue("w1", event("w1", "starting"));
    await clock.advance(9_000);
    expect(errors).toHaveLength(0);
    await clock.advance(10_000);
    expect(log.at(-1)?.event).toBe("callback_dropped");
    expect(box.pending).toBe(0);
    expect(errors).toHaveLength(1);
  });

  it("never delays a live receiver behind a dead or hanging one", async () => {
    const live = await receiver();
    const hanging = await receiver();
    hanging.hang();
    // A port nobody listens on: connections are refused.
    const closed = await new Promise<number>((resolve) => {
      const s = createServer().listen(0, "127.0.0.1", () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const { box, nth } = outbox({ maxConcurrentPerReceiver: 2, timeoutMs: 60_000 });
    for (let i = 0; i < 5; i++) {
      box.watch(`h${i}`, hanging.url);
      box.enqueue(`h${i}`, event(`h${i}`, "starting"));
      box.watch(`d${i}`, `http://127.0.0.1:${closed}/cb`);
      box.enqueue(`d${i}`, event(`d${i}`, "starting"));
    }
    box.watch("ok", live.url);
    for (const s of ["starting", "running", "stopping", "stopped", "destroyed"])
      box.enqueue("ok", event("ok", s));
    // No clock advance: the live receiver's events need no retry, so they all arrive now.
    await nth(5, "callback_delivered", "ok");
    expect(states(live)).toEqual(["starting", "running", "stopping", "stopped", "destroyed"]);
    expect(box.pending).toBe(10);
  });

  it("signs each attempt so a receiver can verify it, and carries the trace id", async () => {
    const r = await receiver();
    const secret = "a-signing-secret";
    const { box, log, errors } = outbox({ signingSecret: secret });
    box.watch("w1", r.url, "trace-7");
    box.enqueue("w1", event("w1", "running"));
    await r.waitFor(1);
    const [got] = r.requests;
    const now = Math.floor(clock.now() / 1000);
    expect(got?.headers["x-trace-id"]).toBe("trace-7");
    expect(verifyCallbackSignature({ secret, body: got!.body, headers: got!.headers, now })).toBe(true);
    expect(verifyCallbackSignature({ secret: "other", body: got!.body, headers: got!.headers, now })).toBe(
      false,
    );
    expect(verifyCallbackSignature({ secret, body: `${got!.body} `, headers: got!.headers, now })).toBe(
      false,
    );
    expect(verifyCallbackSignature({ secret, body: got!.body, headers: got!.headers, now: now + 301 })).toBe(
      false,
    );
    await box.flush(5_000);
    expect(JSON.stringify([log, errors.map((e) => e.message)])).not.toContain(secret);
  });
});

describe("CallbackOutbox: the file", () => {
  it("keeps what was not acknowledged across a crash, and a restart delivers it in order, with the same ids", async () => {
    const path = join(dir, "state", "outbox.jsonl");
    const r = await receiver();
    r.hang();
    const first = outbox({ outboxPath: path });
    first.box.watch("w1", r.url, "t-1");
    for (const s of ["starting", "running", "stopping"]) first.box.enqueue("w1", event("w1", s));
    await r.waitFor(0);
    // The process dies here: nothing is closed or flushed.
    const live = await receiver();
    const lines = readFileSync(path, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    for (const line of lines) if (line.t === "watch" || line.t === "event") line.url = live.url;
    writeFileSync(path, lines.map((l) => JSON.stringify(l)).join("\n") + "\n");

    const second = outbox({ outboxPath: path });
    expect(second.box.watching("w1")).toEqual({ url: live.url, traceId: "t-1" });
    expect(await second.box.flush(10_000)).toBe(true);
    expect(states(live)).toEqual(["starting", "running", "stopping"]);
    expect(live.requests.every((q) => q.headers["x-trace-id"] === "t-1")).toBe(true);
    const firstIds = lines.filter((l) => l.t === "event").map((l) => l.id);
    expect(live.requests.map((q) => q.headers["x-runtime-event-id"])).toEqual(firstIds);
    second.box.close();

    const third = outbox({ outboxPath: path });
    expect(third.box.pending).toBe(0);
  });

  it("compacts the file once most of it is settled", async () => {
    const path = join(dir, "outbox.jsonl");
    const { box } = outbox({ outboxPath: path, post: async () => 200 });
    box.watch("w1", "http://127.0.0.1:9/cb");
    for (let i = 0; i < 1_500; i++) box.enqueue("w1", event("w1", "running"));
    await box.flush(10_000);
    const lines = readFileSync(path, "utf8").trim().split("\n");
    expect(lines.length).toBeLessThan(1_000);
    box.close();
    expect(outbox({ outboxPath: path }).box.pending).toBe(0);
  });

  it("skips a torn or foreign line, reports it, and keeps every other record", async () => {
    const path = join(dir, "outbox.jsonl");
    const { box } = outbox({ outboxPath: path, post: async () => 500 });
    box.watch("w1", "http://127.0.0.1:9/cb");
    box.enqueue("w1", event("w1", "starting"));
    box.close();
    writeFileSync(path, `${readFileSync(path, "utf8")}null\n{"t":"event","id":"x"}\n{"t":"done","id`, {
      mode: 0o600,
    });
    const reopened = outbox({ outboxPath: path, post: async () => 500 });
    expect(reopened.box.pending).toBe(1);
    expect(reopened.errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/:3 skipped: not an outbox record/),
      expect.stringMatching(/:4 skipped: not an outbox record/),
      expect.stringMatching(/:5 skipped: not JSON/),
    ]);
  });

  it("refuses a file or directory that others could write or read", () => {
    const open = (path: string) => () => new CallbackOutbox({ outboxPath: path });
    const shared = join(dir, "shared");
    open(join(shared, "outbox.jsonl"))().close();
    chmodSync(shared, 0o777);
    expect(open(join(shared, "outbox.jsonl"))).toThrow(/writable by other users/);
    const file = join(dir, "open.jsonl");
    writeFileSync(file, "", { mode: 0o644 });
    chmodSync(file, 0o644);
    expect(open(file)).toThrow(/accessible to other users/);
  });
});
