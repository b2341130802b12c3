import { PassThrough } from "node:stream";
import type Dockerode from "dockerode";
import { describe, expect, it, vi } from "vitest";
import type { ExitStatus } from "../../../../src/backends/backend.js";
import { ExitWatcher } from "../../../../src/backends/docker/exit-watcher.js";

/** A stand-in for the engine's /events endpoint: each call opens a stream the test writes to. */
class FakeEvents {
  readonly streams: PassThrough[] = [];
  readonly requests: Array<Record<string, unknown>> = [];
  failNext = 0;
  getEvents = async (opts: Record<string, unknown>) => {
    this.requests.push(opts);
    if (this.failNext > 0) {
      this.failNext--;
      throw Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" });
    }
    const stream = new PassThrough();
    this.streams.push(stream);
    return stream;
  };
  get current(): PassThrough {
    const s = this.streams.at(-1);
    if (!s) throw new Error("no stream open");
    return s;
  }
  emit(action: string, id: string, attributes: Record<string, string> = {}, time = 1_800_000_000): void {
    this.current.write(
      `${JSON.stringify({ Type: "container", Action: action, Actor: { ID: id, Attributes: attributes }, time })}\n`,
    );
  }
}

function setup(states: Record<string, ExitStatus | null | Error> = {}) {
  const events = new FakeEvents();
  const resolveExit = vi.fn(async (id: string) => {
    const state = id in states ? states[id] : null;
    if (state instanceof Error) throw state;
    return state ?? null;
  });
  const watcher = new ExitWatcher(events as unknown as Dockerode, {
    labels: ["runtime-kernel.dev/backend=docker"],
    resolveExit,
    reconnectMs: { initial: 1, max: 4 },
    lingerMs: 20,
  });
  return { events, resolveExit, watcher, states };
}

/** Lets pending stream and promise callbacks run. */
const flush = async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

const until = (cond: () => boolean) =>
  vi.waitFor(() => expect(cond()).toBe(true), { timeout: 2_000, interval: 1 });

describe("ExitWatcher", () => {
  it("opens one stream, filtered on the backend's label and on die/oom/destroy, for every watch", async () => {
    const { events, watcher } = setup();
    watcher.watch("a", () => {});
    watcher.watch("b", () => {});
    await until(() => events.streams.length === 1);
    expect(events.requests).toHaveLength(1);
    expect(events.requests[0]).toMatchObject({
      filters: {
        type: ["container"],
        event: ["die", "oom", "destroy"],
        label: ["runtime-kernel.dev/backend=docker"],
      },
    });
    expect(typeof events.requests[0]?.since).toBe("number");
    watcher.close();
  });

  it("pushes a die with its exit code, without asking the engine again", async () => {
    const { events, watcher, resolveExit } = setup();
    const exits: ExitStatus[] = [];
    watcher.watch("a", (s) => exits.push(s));
    await until(() => events.streams.length === 1);
    await until(() => resolveExit.mock.calls.length === 1); // the reconcile of the new stream
    events.emit("die", "a", { exitCode: "3" });
    await until(() => exits.length === 1);
    expect(exits).toEqual([{ exitCode: 3 }]);
    expect(resolveExit).toHaveBeenCalledTimes(1);
  });

  it("confirms a 137 with the engine, which tells an OOM kill", async () => {
    const { events, watcher, states } = setup();
    const exits: ExitStatus[] = [];
    watcher.watch("a", (s) => exits.push(s));
    await until(() => events.streams.length === 1);
    states.a = { exitCode: 137, signal: "SIGKILL", oomKilled: true };
    events.emit("oom", "a");
    events.emit("die", "a", { exitCode: "137" });
    await until(() => exits.length === 1);
    expect(exits[0]).toEqual({ exitCode: 137, signal: "SIGKILL", oomKilled: true });
  });

  it("reports lost a container destroyed without a death seen", async () => {
    const { events, watcher } = setup();
    const exits: ExitStatus[] = [];
    watcher.watch("a", (s) => exits.push(s));
    await until(() => events.streams.length === 1);
    events.emit("destroy", "a");
    await until(() => exits.length === 1);
    expect(exits[0]).toEqual({ exitCode: null, lost: true });
  });

  it("delivers at most once, and not after unsubscribing", async () => {
    const { events, watcher } = setup();
    const first = vi.fn();
    const second = vi.fn();
    watcher.watch("a", first);
    const off = watcher.watch("a", second);
    off();
    await until(() => events.streams.length === 1);
    events.emit("die", "a", { exitCode: "0" });
    events.emit("destroy", "a");
    await until(() => first.mock.calls.length === 1);
    await flush();
    expect(first).toHaveBeenCalledTimes(1);
    expect(second).not.toHaveBeenCalled();
  });

  it("finds an exit that happened before the watch (reconcile on open)", async () => {
    const { watcher } = setup({ a: { exitCode: 4 } });
    const status = await new Promise<ExitStatus>((resolve) => watcher.watch("a", resolve));
    expect(status).toEqual({ exitCode: 4 });
  });

  it("remembers a recent exit for a watch that arrives after the event", async () => {
    const { events, watcher, resolveExit } = setup();
    watcher.watch("keep-open", () => {});
    await until(() => events.streams.length === 1);
    events.emit("die", "late", { exitCode: "5" });
    await flush();
    const calls = resolveExit.mock.calls.length;
    const status = await new Promise<ExitStatus>((resolve) => watcher.watch("late", resolve));
    expect(status).toEqual({ exitCode: 5 });
    expect(resolveExit).toHaveBeenCalledTimes(calls);
  });

  it("calls back for a recent exit only after watch() has returned, and not once unsubscribed", async () => {
    const { events, watcher } = setup();
    watcher.watch("keep-open", () => {});
    await until(() => events.streams.length === 1);
    events.emit("die", "late", { exitCode: "5" });
    await flush();
    const early = vi.fn();
    const cancelled = vi.fn();
    watcher.watch("late", early);
    expect(early).not.toHaveBeenCalled();
    watcher.watch("late", cancelled)();
    await flush();
    expect(early).toHaveBeenCalledWith({ exitCode: 5 });
    expect(cancelled).not.toHaveBeenCalled();
  });

  it("does not inspect a container created under the open stream", async () => {
    const { events, watcher, resolveExit } = setup();
    watcher.watch("keep-open", () => {});
    await until(() => watcher.openGeneration() !== undefined);
    await watcher.prepare();
    watcher.started("fresh", watcher.openGeneration());
    const calls = resolveExit.mock.calls.length;
    const exits: ExitStatus[] = [];
    watcher.watch("fresh", (s) => exits.push(s));
    expect(resolveExit).toHaveBeenCalledTimes(calls);
    events.emit("die", "fresh", { exitCode: "0" });
    await until(() => exits.length === 1);
  });

  it("reconnects a dropped stream from the last event's time and reconciles what it missed", async () => {
    const { events, watcher, states } = setup();
    const exits: ExitStatus[] = [];
    watcher.watch("a", (s) => exits.push(s));
    await until(() => events.streams.length === 1);
    events.emit("die", "other", { exitCode: "0" }, 1_800_000_123);
    await flush();
    events.failNext = 2; // the engine is away for two attempts
    states.a = { exitCode: 9 };
    events.current.end();
    await until(() => exits.length === 1);
    expect(exits[0]).toEqual({ exitCode: 9 });
    expect(events.requests.length).toBe(4);
    expect(events.requests.at(-1)?.since).toBe(1_800_000_123);
  });

  it("closes the stream a moment after nothing is watched", async () => {
    const { events, watcher } = setup();
    const off = watcher.watch("a", () => {});
    await until(() => events.streams.length === 1);
    off();
    expect(events.current.destroyed).toBe(false);
    await until(() => events.current.destroyed);
    expect(watcher.openGeneration()).toBeUndefined();
  });

  it("opens ahead of a start, so that the start's container needs no inspect", async () => {
    const { events, watcher, resolveExit } = setup();
    await watcher.prepare();
    expect(events.streams).toHaveLength(1);
    const generation = watcher.openGeneration();
    expect(generation).toBeDefined();
    watcher.started("c", generation);
    const exits: ExitStatus[] = [];
    watcher.watch("c", (s) => exits.push(s));
    events.emit("die", "c", { exitCode: "0" });
    await until(() => exits.length === 1);
    expect(resolveExit).not.toHaveBeenCalled();
  });

  it("lets a start go on when the stream cannot open", async () => {
    const { events, watcher } = setup();
    events.failNext = 1;
    await watcher.prepare();
    expect(watcher.openGeneration()).toBeUndefined();
    watcher.started(undefined, undefined);
    watcher.close();
  });
});
