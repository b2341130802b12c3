import { describe, expect, it } from "vitest";
import { Scheduler } from "../../../src/kernel/scheduler.js";
import { ManualClock } from "../../../src/testing/index.js";

function setup() {
  const clock = new ManualClock();
  const scheduler = new Scheduler(clock);
  const fired: string[] = [];
  const record = (name: string) => () => fired.push(name);
  return { clock, scheduler, fired, record, t0: clock.now() };
}

describe("Scheduler", () => {
  it("arms a deadline beyond what a timer holds (24.8 days) in steps, and fires it on time", async () => {
    const clock = new ManualClock();
    const delays: number[] = [];
    const recording = {
      now: () => clock.now(),
      setTimeout: (callback: () => void, ms: number) => {
        delays.push(ms);
        return clock.setTimeout(callback, ms);
      },
      clearTimeout: (handle: unknown) => clock.clearTimeout(handle),
    };
    const scheduler = new Scheduler(recording);
    const fired: number[] = [];
    const thirtyDays = 30 * 24 * 60 * 60 * 1000;
    scheduler.after(thirtyDays, () => fired.push(clock.now()));
    expect(Math.max(...delays)).toBeLessThanOrEqual(2 ** 31 - 1);
    await clock.advance(thirtyDays - 1);
    expect(fired).toEqual([]);
    await clock.advance(1);
    expect(fired).toHaveLength(1);
    expect(delays.every((ms) => ms <= 2 ** 31 - 1)).toBe(true);
  });

  describe("one clock timer for many tasks", () => {
    it("arms a single clock timer however many tasks are scheduled", () => {
      const { clock, scheduler, record } = setup();
      for (let i = 0; i < 1_000; i++) scheduler.after(1_000 + i, record(`t${i}`));
      expect(scheduler.size).toBe(1_000);
      expect(clock.pending).toBe(1);
    });

    it("keeps that timer armed for the earliest task", async () => {
      const { clock, scheduler, fired, record } = setup();
      scheduler.after(500, record("late"));
      scheduler.after(100, record("early"));
      await clock.advance(100);
      expect(fired).toEqual(["early"]);
      expect(clock.pending).toBe(1);
      await clock.advance(400);
      expect(fired).toEqual(["early", "late"]);
    });
  });

  describe("ordering", () => {
    it("fires tasks in order of their due time, whatever the order they were scheduled in", async () => {
      const { clock, scheduler, fired, record, t0 } = setup();
      for (const ms of [300, 100, 500, 200, 400]) scheduler.at(t0 + ms, record(String(ms)));
      await clock.advance(1_000);
      expect(fired).toEqual(["100", "200", "300", "400", "500"]);
    });

    it("fires tasks due at the same time in the order they were scheduled", async () => {
      const { clock, scheduler, fired, record } = setup();
      for (const name of ["a", "b", "c", "d", "e", "f", "g", "h"]) scheduler.after(100, record(name));
      await clock.advance(100);
      expect(fired).toEqual(["a", "b", "c", "d", "e", "f", "g", "h"]);
    });

    it("orders by time then insertion across a large random set (the heap stays a heap)", async () => {
      const { clock, scheduler, t0 } = setup();
      const fired: Array<{ at: number; order: number }> = [];
      let seed = 7;
      const rand = () => {
        seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
        return seed;
      };
      for (let order = 0; order < 500; order++) {
        const at = t0 + (rand() % 50) * 10;
        scheduler.at(at, () => fired.push({ at, order }));
      }
      await clock.advance(1_000);
      expect(fired).toHaveLength(500);
      const sorted = [...fired].sort((x, y) => x.at - y.at || x.order - y.order);
      expect(fired).toEqual(sorted);
    });

    it("does not fire a task before its due time", async () => {
      const { clock, scheduler, fired, record } = setup();
      scheduler.after(100, record("t"));
      await clock.advance(99);
      expect(fired).toEqual([]);
      await clock.advance(1);
      expect(fired).toEqual(["t"]);
    });

    it("fires a task whose due time has already passed on the next tick", async () => {
      const { clock, scheduler, fired, record, t0 } = setup();
      scheduler.at(t0 - 5_000, record("overdue"));
      await clock.advance(0);
      expect(fired).toEqual(["overdue"]);
    });

    it("fires a task scheduled by a firing task once it is due", async () => {
      const { clock, scheduler, fired } = setup();
      scheduler.after(100, () => {
        fired.push("first");
        scheduler.after(0, () => fired.push("now"));
        scheduler.after(50, () => fired.push("later"));
      });
      await clock.advance(100);
      expect(fired).toEqual(["first", "now"]);
      await clock.advance(50);
      expect(fired).toEqual(["first", "now", "later"]);
    });

    it("reports the time of the clock to a firing task", async () => {
      const { clock, scheduler, t0 } = setup();
      let seen = 0;
      scheduler.at(t0 + 250, () => {
        seen = clock.now();
      });
      await clock.advance(1_000);
      expect(seen).toBe(t0 + 250);
    });
  });

  describe("cancel", () => {
    it("never fires a cancelled task", async () => {
      const { clock, scheduler, fired, record } = setup();
      const task = scheduler.after(100, record("cancelled"));
      scheduler.after(200, record("kept"));
      task.cancel();
      await clock.advance(1_000);
      expect(fired).toEqual(["kept"]);
    });

    it("counts only tasks that are neither cancelled nor fired", async () => {
      const { clock, scheduler, record } = setup();
      const a = scheduler.after(100, record("a"));
      scheduler.after(200, record("b"));
      scheduler.after(300, record("c"));
      expect(scheduler.size).toBe(3);
      a.cancel();
      expect(scheduler.size).toBe(2);
      await clock.advance(200);
      expect(scheduler.size).toBe(1);
    });

    it("ignores a second cancel, and a cancel after the task fired", async () => {
      const { clock, scheduler, fired, record } = setup();
      const fires = scheduler.after(10, record("fires"));
      const twice = scheduler.after(20, record("twice"));
      scheduler.after(30, record("kept"));
      await clock.advance(10);
      fires.cancel();
      twice.cancel();
      twice.cancel();
      expect(scheduler.size).toBe(1);
      await clock.advance(100);
      expect(fired).toEqual(["fires", "kept"]);
    });

    it("lets a firing task cancel another task due at the same time", async () => {
      const { clock, scheduler, fired } = setup();
      let second: { cancel(): void } | undefined;
      scheduler.after(100, () => {
        fired.push("first");
        second?.cancel();
      });
      second = scheduler.after(100, () => fired.push("second"));
      await clock.advance(100);
      // Both were due in the same tick: a cancel still wins over a task not yet fired.
      expect(fired).toEqual(["first"]);
      expect(scheduler.size).toBe(0);
      expect(clock.pending).toBe(0);
    });

    it("moves the timer on when the earliest task is cancelled", async () => {
      const { clock, scheduler, fired, record } = setup();
      const early = scheduler.after(100, record("early"));
      scheduler.after(300, record("late"));
      early.cancel();
      await clock.advance(299);
      expect(fired).toEqual([]);
      await clock.advance(1);
      expect(fired).toEqual(["late"]);
    });
  });

  describe("clear", () => {
    it("cancels every task and leaves no clock timer", async () => {
      const { clock, scheduler, fired, record } = setup();
      for (let i = 0; i < 10; i++) scheduler.after(i * 10, record(`t${i}`));
      scheduler.clear();
      expect(scheduler.size).toBe(0);
      expect(clock.pending).toBe(0);
      await clock.advance(1_000);
      expect(fired).toEqual([]);
    });

    it("makes the handles of cleared tasks inert", () => {
      const { scheduler, record } = setup();
      const task = scheduler.after(10, record("t"));
      scheduler.clear();
      task.cancel();
      expect(scheduler.size).toBe(0);
    });

    it("stops the rest of a tick when a firing task clears the scheduler", async () => {
      const { clock, scheduler, fired } = setup();
      scheduler.after(100, () => {
        fired.push("first");
        scheduler.clear();
      });
      scheduler.after(100, () => fired.push("same tick"));
      scheduler.after(200, () => fired.push("later"));
      await clock.advance(1_000);
      expect(fired).toEqual(["first"]);
      expect(scheduler.size).toBe(0);
      expect(clock.pending).toBe(0);
    });

    it("keeps working after a clear", async () => {
      const { clock, scheduler, fired, record } = setup();
      scheduler.after(10, record("before"));
      scheduler.clear();
      scheduler.after(10, record("after"));
      await clock.advance(10);
      expect(fired).toEqual(["after"]);
    });
  });

  describe("re-arming", () => {
    it("re-arms the clock timer when an earlier task arrives", async () => {
      const { clock, scheduler, fired, record } = setup();
      scheduler.after(10_000, record("late"));
      await clock.advance(1_000);
      scheduler.after(100, record("early"));
      expect(clock.pending).toBe(1);
      await clock.advance(100);
      expect(fired).toEqual(["early"]);
    });

    it("leaves the timer alone when a later task arrives", () => {
      const { clock, scheduler, record } = setup();
      scheduler.after(100, record("early"));
      const armed = clock.pending;
      scheduler.after(10_000, record("late"));
      expect(armed).toBe(1);
      expect(clock.pending).toBe(1);
    });

    it("re-arms for the next task after a tick", async () => {
      const { clock, scheduler, fired, record } = setup();
      scheduler.after(100, record("a"));
      scheduler.after(5_000, record("b"));
      await clock.advance(100);
      expect(clock.pending).toBe(1);
      await clock.advance(4_900);
      expect(fired).toEqual(["a", "b"]);
    });
  });

  describe("when idle", () => {
    it("holds no clock timer before anything is scheduled", () => {
      const { clock } = setup();
      expect(clock.pending).toBe(0);
    });

    it("holds no clock timer once every task has fired", async () => {
      const { clock, scheduler, record } = setup();
      scheduler.after(10, record("a"));
      scheduler.after(20, record("b"));
      await clock.advance(20);
      expect(scheduler.size).toBe(0);
      expect(clock.pending).toBe(0);
    });

    it("holds no clock timer once every task is cancelled", () => {
      const { clock, scheduler, record } = setup();
      const tasks = [scheduler.after(10, record("a")), scheduler.after(20, record("b"))];
      for (const task of tasks) task.cancel();
      expect(scheduler.size).toBe(0);
      expect(clock.pending).toBe(0);
    });

    it("holds no clock timer when only cancelled tasks remain after a tick", async () => {
      const { clock, scheduler, record } = setup();
      scheduler.after(10, record("a"));
      const b = scheduler.after(20, record("b"));
      scheduler.after(30, record("c")).cancel();
      b.cancel();
      await clock.advance(10);
      expect(clock.pending).toBe(0);
    });
  });

  describe("deadlines no timer can hold", () => {
    it.each([
      Number.NaN,
      Number.POSITIVE_INFINITY,
      Number.NEGATIVE_INFINITY,
      1e300,
      "5000" as unknown as number,
    ])("refuses %s with INVALID_SPEC, and every other task still fires in order", async (bad) => {
      const { clock, scheduler, fired, record, t0 } = setup();
      scheduler.at(t0 + 300, record("b"));
      expect(() => scheduler.at(bad, record("bad"))).toThrow(/deadline: must be a finite epoch time/);
      expect(() => scheduler.after(bad, record("bad"))).toThrow(/INVALID_SPEC|deadline/);
      scheduler.at(t0 + 100, record("a"));
      scheduler.at(t0 + 200, record("ab"));
      expect(scheduler.size).toBe(3);
      await clock.advance(1_000);
      expect(fired).toEqual(["a", "ab", "b"]);
    });
  });
});
