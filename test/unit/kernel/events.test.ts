import { describe, expect, it } from "vitest";
import { isRuntimeKernelError } from "../../../src/errors.js";
import { EventHub } from "../../../src/kernel/events.js";
import type { TransitionEvent, WorkloadState } from "../../../src/kernel/types.js";

const NEXT: Record<WorkloadState, WorkloadState | null> = {
  starting: "running",
  running: "stopping",
  stopping: "stopped",
  stopped: "destroyed",
  destroyed: null,
};

/** Publishes `state` for `workloadId`, as the kernel does. */
function publish(hub: EventHub, workloadId: string, state: WorkloadState, from: WorkloadState | null = null) {
  return hub.publish({ workloadId, runId: `${workloadId}-run`, profile: "agent", from, state, at: 0 });
}

/** Publishes `n` events for `workloadId`, cycling through the lifecycle. */
function publishMany(hub: EventHub, workloadId: string, n: number): TransitionEvent[] {
  const out: TransitionEvent[] = [];
  let from: WorkloadState | null = null;
  let state: WorkloadState = "starting";
  for (let i = 0; i < n; i++) {
    out.push(publish(hub, workloadId, state, from));
    from = state;
    state = NEXT[state] ?? "starting";
    if (from === "destroyed") from = null;
  }
  return out;
}

/** Collects what an iterator yields until it ends; returns the values and the error it ended with. */
async function drain(iterator: AsyncIterator<TransitionEvent>) {
  const values: TransitionEvent[] = [];
  try {
    for (;;) {
      const next = await iterator.next();
      if (next.done) return { values, error: undefined };
      values.push(next.value);
    }
  } catch (error) {
    return { values, error };
  }
}

const seqs = (events: TransitionEvent[]) => events.map((e) => e.seq);

describe("EventHub", () => {
  describe("seq", () => {
    it("numbers events from 1, strictly increasing", () => {
      const hub = new EventHub(100);
      expect(hub.lastSeq).toBe(0);
      const events = [...publishMany(hub, "a", 3), ...publishMany(hub, "b", 3)];
      expect(seqs(events)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(hub.lastSeq).toBe(6);
    });

    it("returns the published event with its seq", () => {
      const hub = new EventHub(10);
      const event = publish(hub, "a", "starting");
      expect(event).toMatchObject({ workloadId: "a", state: "starting", from: null, seq: 1 });
    });
  });

  describe("listeners", () => {
    it("delivers every event on `transition`, and on the event named for its state", () => {
      const hub = new EventHub(10);
      const seen: string[] = [];
      hub.on("transition", (e) => seen.push(`transition:${e.state}`));
      for (const state of ["starting", "running", "stopping", "stopped", "destroyed"] as const) {
        hub.on(state, (e) => seen.push(`${state}:${e.state}`));
      }
      publishMany(hub, "a", 5);
      expect(seen).toEqual([
        "transition:starting",
        "starting:starting",
        "transition:running",
        "running:running",
        "transition:stopping",
        "stopping:stopping",
        "transition:stopped",
        "stopped:stopped",
        "transition:destroyed",
        "destroyed:destroyed",
      ]);
    });

    it("reports a throwing listener on `error`, and still delivers the event everywhere else", async () => {
      const hub = new EventHub(10);
      const errors: Error[] = [];
      const seen: string[] = [];
      hub.on("error", (error) => errors.push(error));
      hub.on("transition", () => {
        throw new Error("host bug");
      });
      hub.on("transition", (e) => seen.push(`second transition listener:${e.seq}`));
      hub.on("starting", (e) => seen.push(`starting:${e.seq}`));
      const iterator = hub.stream();
      expect(() => publish(hub, "a", "starting")).not.toThrow();
      expect(errors.map((e) => e.message)).toEqual(["host bug"]);
      expect(seen).toEqual(["second transition listener:1", "starting:1"]);
      expect((await iterator.next()).value?.seq).toBe(1);
    });

    it("keeps delivering later events after a listener threw", () => {
      const hub = new EventHub(10);
      const errors: Error[] = [];
      const seen: number[] = [];
      hub.on("error", (error) => errors.push(error));
      hub.on("running", () => {
        throw "not even an Error";
      });
      hub.on("transition", (e) => seen.push(e.seq));
      publishMany(hub, "a", 4);
      expect(seen).toEqual([1, 2, 3, 4]);
      expect(errors).toHaveLength(1);
      expect(errors[0]).toBeInstanceOf(Error);
      expect(errors[0]?.message).toBe("not even an Error");
    });

    it("calls a `once` listener for one event only, even if it throws", () => {
      const hub = new EventHub(10);
      const seen: number[] = [];
      hub.on("error", () => {});
      hub.once("transition", (e) => {
        seen.push(e.seq);
        throw new Error("once, and broken");
      });
      publishMany(hub, "a", 3);
      expect(seen).toEqual([1]);
    });

    it("removes a listener with off, whether it was added with on or once", () => {
      const hub = new EventHub(10);
      const seen: string[] = [];
      const onListener = (e: TransitionEvent) => seen.push(`on:${e.seq}`);
      const onceListener = (e: TransitionEvent) => seen.push(`once:${e.seq}`);
      hub.on("transition", onListener);
      hub.once("transition", onceListener);
      hub.off("transition", onListener);
      hub.off("transition", onceListener);
      publish(hub, "a", "starting");
      expect(seen).toEqual([]);
      expect(hub.listenerCount("transition")).toBe(0);
    });

    it("keeps a listener on one event when it is removed from another", () => {
      const hub = new EventHub(10);
      const seen: string[] = [];
      const listener = (e: TransitionEvent) => seen.push(e.state);
      hub.on("running", listener);
      hub.on("stopped", listener);
      hub.off("running", listener);
      publishMany(hub, "a", 4);
      expect(seen).toEqual(["stopped"]);
    });

    it("survives an `error` listener that throws too", () => {
      const hub = new EventHub(10);
      hub.on("error", () => {
        throw new Error("error listener bug");
      });
      hub.on("transition", () => {
        throw new Error("host bug");
      });
      expect(() => publish(hub, "a", "starting")).not.toThrow();
      expect(() => hub.fault(new Error("background"))).not.toThrow();
    });

    it("reports background faults on `error`", () => {
      const hub = new EventHub(10);
      const errors: Error[] = [];
      hub.on("error", (error) => errors.push(error));
      hub.fault(new Error("cleanup failed"));
      expect(errors.map((e) => e.message)).toEqual(["cleanup failed"]);
    });

    it("does not throw on a fault when nobody listens for `error`", () => {
      expect(() => new EventHub(10).fault(new Error("unheard"))).not.toThrow();
    });
  });

  describe("async iterator", () => {
    it("yields future events in order", async () => {
      const hub = new EventHub(10);
      publish(hub, "a", "starting");
      const iterator = hub.stream();
      publishMany(hub, "b", 3);
      hub.endStreams();
      expect(seqs((await drain(iterator)).values)).toEqual([2, 3, 4]);
    });

    it("waits for the next event when none is buffered", async () => {
      const hub = new EventHub(10);
      const iterator = hub.stream();
      const next = iterator.next();
      publish(hub, "a", "starting");
      expect((await next).value).toMatchObject({ workloadId: "a", seq: 1 });
    });

    it("yields only one workload's events with `workloadId`", async () => {
      const hub = new EventHub(10);
      const iterator = hub.stream({ workloadId: "b" });
      publish(hub, "a", "starting");
      publish(hub, "b", "starting");
      publish(hub, "a", "running", "starting");
      publish(hub, "b", "running", "starting");
      hub.endStreams();
      const { values } = await drain(iterator);
      expect(values.map((e) => `${e.workloadId}:${e.state}`)).toEqual(["b:starting", "b:running"]);
    });

    it("works with for await", async () => {
      const hub = new EventHub(10);
      const iterator = hub.stream();
      publishMany(hub, "a", 2);
      const seen: number[] = [];
      for await (const event of iterator) {
        seen.push(event.seq);
        if (seen.length === 2) break;
      }
      expect(seen).toEqual([1, 2]);
      // Breaking out of the loop unsubscribed the iterator.
      publish(hub, "a", "starting");
      expect(await iterator.next()).toEqual({ value: undefined, done: true });
    });
  });

  describe("replay with sinceSeq", () => {
    it("replays retained events with a greater seq, then continues live", async () => {
      const hub = new EventHub(100);
      publishMany(hub, "a", 5);
      const iterator = hub.stream({ sinceSeq: 3 });
      publish(hub, "a", "starting");
      hub.endStreams();
      expect(seqs((await drain(iterator)).values)).toEqual([4, 5, 6]);
    });

    it("replays everything retained with sinceSeq 0", async () => {
      const hub = new EventHub(100);
      publishMany(hub, "a", 3);
      const iterator = hub.stream({ sinceSeq: 0 });
      hub.endStreams();
      expect(seqs((await drain(iterator)).values)).toEqual([1, 2, 3]);
    });

    it("replays only what the retention ring still holds, oldest first", () => {
      const hub = new EventHub(3);
      publishMany(hub, "a", 7);
      expect(seqs(hub.replay(0))).toEqual([5, 6, 7]);
      expect(seqs(hub.replay(5))).toEqual([6, 7]);
      expect(seqs(hub.replay(7))).toEqual([]);
    });

    it("filters the replay by workloadId", () => {
      const hub = new EventHub(10);
      publish(hub, "a", "starting");
      publish(hub, "b", "starting");
      publish(hub, "a", "running", "starting");
      expect(hub.replay(0, "a").map((e) => e.seq)).toEqual([1, 3]);
    });

    it("retains nothing with a retention of 0", () => {
      const hub = new EventHub(0);
      publishMany(hub, "a", 3);
      expect(hub.replay(0)).toEqual([]);
    });

    it("never yields an event twice across the replay and live delivery", async () => {
      const hub = new EventHub(10);
      publishMany(hub, "a", 2);
      const iterator = hub.stream({ sinceSeq: 1 });
      publishMany(hub, "a", 2);
      hub.endStreams();
      expect(seqs((await drain(iterator)).values)).toEqual([2, 3, 4]);
    });
  });

  describe("overflow", () => {
    it("ends a consumer that falls more than highWaterMark behind with EVENTS_OVERFLOW, after what it had", async () => {
      const hub = new EventHub(100);
      const iterator = hub.stream({ highWaterMark: 3 });
      publishMany(hub, "a", 5);
      const { values, error } = await drain(iterator);
      expect(seqs(values)).toEqual([1, 2, 3]);
      expect(isRuntimeKernelError(error, "EVENTS_OVERFLOW")).toBe(true);
      expect((error as Error).message).toMatch(/sinceSeq/);
    });

    it("lets the consumer resume with sinceSeq without missing an event", async () => {
      const hub = new EventHub(100);
      const first = hub.stream({ highWaterMark: 2 });
      publishMany(hub, "a", 6);
      const { values } = await drain(first);
      const last = values.at(-1)?.seq ?? 0;
      const resumed = hub.stream({ sinceSeq: last });
      hub.endStreams();
      const rest = (await drain(resumed)).values;
      expect(seqs([...values, ...rest])).toEqual([1, 2, 3, 4, 5, 6]);
    });

    it("counts only undelivered events toward the mark", async () => {
      const hub = new EventHub(100);
      const iterator = hub.stream({ highWaterMark: 1 });
      for (let i = 0; i < 5; i++) {
        publish(hub, "a", "starting");
        expect((await iterator.next()).done).toBe(false);
      }
    });

    it("does not disturb other consumers", async () => {
      const hub = new EventHub(100);
      const slow = hub.stream({ highWaterMark: 1 });
      const fast = hub.stream();
      publishMany(hub, "a", 3);
      hub.endStreams();
      expect((await drain(slow)).error).toBeDefined();
      expect(seqs((await drain(fast)).values)).toEqual([1, 2, 3]);
    });
  });

  describe("ending", () => {
    it("ends when its abort signal aborts, even while waiting", async () => {
      const hub = new EventHub(10);
      const controller = new AbortController();
      const iterator = hub.stream({ signal: controller.signal });
      const pending = iterator.next();
      controller.abort();
      expect(await pending).toEqual({ value: undefined, done: true });
      publish(hub, "a", "starting");
      expect((await iterator.next()).done).toBe(true);
    });

    it("ends at once with a signal that is already aborted", async () => {
      const hub = new EventHub(10);
      const iterator = hub.stream({ signal: AbortSignal.abort() });
      publish(hub, "a", "starting");
      expect((await iterator.next()).done).toBe(true);
    });

    it("delivers what was already buffered before an abort ends it", async () => {
      const hub = new EventHub(10);
      const controller = new AbortController();
      const iterator = hub.stream({ signal: controller.signal });
      publishMany(hub, "a", 2);
      controller.abort();
      expect(seqs((await drain(iterator)).values)).toEqual([1, 2]);
    });

    it("ends every iterator on endStreams (kernel shutdown)", async () => {
      const hub = new EventHub(10);
      const a = hub.stream();
      const b = hub.stream({ workloadId: "x" });
      const pending = [a.next(), b.next()];
      hub.endStreams();
      expect(await Promise.all(pending)).toEqual([
        { value: undefined, done: true },
        { value: undefined, done: true },
      ]);
    });

    it("ends on return() and drops what was buffered", async () => {
      const hub = new EventHub(10);
      const iterator = hub.stream();
      publishMany(hub, "a", 3);
      await iterator.return?.();
      expect((await iterator.next()).done).toBe(true);
    });
  });
});
