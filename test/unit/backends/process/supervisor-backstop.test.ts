import { describe, expect, it } from "vitest";
import { createBackstop } from "../../../../src/backends/process/supervisor-backstop.js";
import { ManualClock } from "../../../../src/testing/index.js";

interface FakeRun {
  id: string;
  killAt?: number;
  exited?: boolean;
}

function backstopOver(runs: FakeRun[]) {
  const clock = new ManualClock(0);
  const killed: string[] = [];
  const backstop = createBackstop<FakeRun>({
    clock,
    runs: () => runs,
    killAt: (run) => (run.exited ? undefined : run.killAt),
    kill: (run) => {
      killed.push(run.id);
      run.exited = true;
    },
  });
  return { clock, killed, backstop };
}

describe("the max-lifetime backstop", () => {
  it("kills a run once its time is over, not before", async () => {
    const { clock, killed, backstop } = backstopOver([{ id: "a", killAt: 100 }]);
    backstop.arm(100);
    await clock.advance(99);
    expect(killed).toEqual([]);
    await clock.advance(1);
    expect(killed).toEqual(["a"]);
    expect(clock.pending).toBe(0);
  });

  it("keeps one timer, for the earliest time asked, and goes on to the next run after a kill", async () => {
    const runs = [
      { id: "late", killAt: 300 },
      { id: "early", killAt: 100 },
    ];
    const { clock, killed, backstop } = backstopOver(runs);
    backstop.arm(300);
    backstop.arm(100);
    backstop.arm(200);
    backstop.arm(undefined);
    expect(clock.pending).toBe(1);
    await clock.advance(100);
    expect(killed).toEqual(["early"]);
    expect(clock.pending).toBe(1);
    await clock.advance(200);
    expect(killed).toEqual(["early", "late"]);
  });

  it("leaves alone the runs that exited or have no lifetime, and kills at once a time already past", async () => {
    const runs: FakeRun[] = [
      { id: "exited", killAt: 50, exited: true },
      { id: "forever" },
      { id: "past", killAt: 10 },
    ];
    const { clock, killed, backstop } = backstopOver(runs);
    await clock.advance(20);
    backstop.arm(10);
    await clock.advance(0);
    expect(killed).toEqual(["past"]);
    expect(clock.pending).toBe(0);
  });
});
