import { describe, expect, it } from "vitest";
import { ManualClock, settle } from "../../../src/testing/index.js";

describe("ManualClock", () => {
  describe("now", () => {
    it("starts at 2026-01-01T00:00:00Z by default, so ages are easy to read", () => {
      expect(new Date(new ManualClock().now()).toISOString()).toBe("2026-01-01T00:00:00.000Z");
    });

    it("starts where it is told to", () => {
      expect(new ManualClock(1_000).now()).toBe(1_000);
    });

    it("moves only when advanced, by exactly the amount given", async () => {
      const clock = new ManualClock(0);
      await settle();
      expect(clock.now()).toBe(0);
      await clock.advance(1_500);
      expect(clock.now()).toBe(1_500);
      await clock.advance(0);
      expect(clock.now()).toBe(1_500);
    });
  });

  describe("timers", () => {
    it("fires a timer only once time reaches it, and reports that time as now", async () => {
      const clock = new ManualClock(0);
      const fired: number[] = [];
      clock.setTimeout(() => fired.push(clock.now()), 100);
      await clock.advance(99);
      expect(fired).toEqual([]);
      await clock.advance(50);
      expect(fired).toEqual([100]);
      expect(clock.now()).toBe(149);
    });

    it("fires timers in time order, and timers due together in the order they were set", async () => {
      const clock = new ManualClock(0);
      const fired: string[] = [];
      clock.setTimeout(() => fired.push("c"), 30);
      clock.setTimeout(() => fired.push("a1"), 10);
      clock.setTimeout(() => fired.push("b"), 20);
      clock.setTimeout(() => fired.push("a2"), 10);
      await clock.advance(100);
      expect(fired).toEqual(["a1", "a2", "b", "c"]);
    });

    it("fires each timer once", async () => {
      const clock = new ManualClock(0);
      let n = 0;
      clock.setTimeout(() => n++, 10);
      await clock.advance(10);
      await clock.advance(1_000);
      expect(n).toBe(1);
    });

    it("treats a negative delay as zero", async () => {
      const clock = new ManualClock(0);
      let at = -1;
      clock.setTimeout(() => {
        at = clock.now();
      }, -50);
      await clock.advance(0);
      expect(at).toBe(0);
    });

    it("cancels a timer with clearTimeout, and ignores handles that fired or never existed", async () => {
      const clock = new ManualClock(0);
      const fired: string[] = [];
      const a = clock.setTimeout(() => fired.push("a"), 10);
      const b = clock.setTimeout(() => fired.push("b"), 20);
      clock.clearTimeout(b);
      await clock.advance(100);
      expect(fired).toEqual(["a"]);
      expect(() => clock.clearTimeout(a)).not.toThrow();
      expect(() => clock.clearTimeout({})).not.toThrow();
      expect(() => clock.clearTimeout(undefined)).not.toThrow();
    });

    it("counts pending timers", async () => {
      const clock = new ManualClock(0);
      expect(clock.pending).toBe(0);
      const a = clock.setTimeout(() => {}, 10);
      clock.setTimeout(() => {}, 20);
      expect(clock.pending).toBe(2);
      clock.clearTimeout(a);
      expect(clock.pending).toBe(1);
      await clock.advance(20);
      expect(clock.pending).toBe(0);
    });
  });

  describe("advance", () => {
    it("fires, in the same advance, timers set by timers when they fall within the span", async () => {
      const clock = new ManualClock(0);
      const fired: number[] = [];
      const tick = () => {
        fired.push(clock.now());
        clock.setTimeout(tick, 100);
      };
      clock.setTimeout(tick, 100);
      await clock.advance(350);
      expect(fired).toEqual([100, 200, 300]);
      expect(clock.pending).toBe(1);
    });

    it("lets promise callbacks run after each timer, before the next one fires", async () => {
      const clock = new ManualClock(0);
      const log: string[] = [];
      clock.setTimeout(() => {
        log.push("timer 1");
        Promise.resolve()
          .then(() => Promise.resolve())
          .then(() => log.push("follow-up of timer 1"));
      }, 10);
      clock.setTimeout(() => log.push("timer 2"), 10);
      await clock.advance(10);
      expect(log).toEqual(["timer 1", "follow-up of timer 1", "timer 2"]);
    });

    it("fires a timer set by a promise callback of an earlier timer when it is due within the span", async () => {
      const clock = new ManualClock(0);
      const fired: number[] = [];
      clock.setTimeout(() => {
        void Promise.resolve().then(() => clock.setTimeout(() => fired.push(clock.now()), 5));
      }, 10);
      await clock.advance(20);
      expect(fired).toEqual([15]);
    });

    it("lets pending promises settle before firing anything", async () => {
      const clock = new ManualClock(0);
      const log: string[] = [];
      void Promise.resolve().then(() => clock.setTimeout(() => log.push("set by a promise"), 0));
      await clock.advance(0);
      expect(log).toEqual(["set by a promise"]);
    });
  });

  describe("runAll", () => {
    it("fires every pending timer, however far ahead, and stops the clock at the last one", async () => {
      const clock = new ManualClock(0);
      const fired: number[] = [];
      clock.setTimeout(() => fired.push(clock.now()), 3_600_000);
      clock.setTimeout(() => fired.push(clock.now()), 10);
      await clock.runAll();
      expect(fired).toEqual([10, 3_600_000]);
      expect(clock.now()).toBe(3_600_000);
      expect(clock.pending).toBe(0);
    });

    it("is bounded by maxSteps, so a timer that always re-arms does not hang the test", async () => {
      const clock = new ManualClock(0);
      let n = 0;
      const forever = () => {
        n++;
        clock.setTimeout(forever, 1_000);
      };
      clock.setTimeout(forever, 1_000);
      await clock.runAll(5);
      expect(n).toBe(5);
      expect(clock.pending).toBe(1);
    });

    it("does nothing when no timer is pending", async () => {
      const clock = new ManualClock(0);
      await clock.runAll();
      expect(clock.now()).toBe(0);
    });
  });

  describe("settle", () => {
    it("lets chained promise callbacks run", async () => {
      let done = false;
      void Promise.resolve()
        .then(() => undefined)
        .then(() => {
          done = true;
        });
      await settle();
      expect(done).toBe(true);
    });
  });
});
