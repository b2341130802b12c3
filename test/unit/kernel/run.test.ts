import { describe, expect, it } from "vitest";
import { Run, Workload } from "../../../src/kernel/run.js";

const workload = () => new Workload({ workloadId: "w1", profile: "agent" }, { runnable: {} }, true);

describe("Run", () => {
  it("is its workload's latest run until a new run replaces it", () => {
    const w = workload();
    const first = new Run(w, "r1", 0, false);
    w.run = first;
    expect(first.latest).toBe(true);
    w.run = new Run(w, "r2", 1, false);
    expect(first.latest).toBe(false);
  });

  it("runs its backend calls one at a time, in order, whatever the earlier ones did", async () => {
    const run = new Run(workload(), "r1", 0, false);
    const order: string[] = [];
    let release!: () => void;
    const first = run.serial(
      () =>
        new Promise<void>((resolve) => {
          order.push("terminate");
          release = resolve;
        }),
    );
    const second = run.serial(async () => {
      order.push("kill");
      throw new Error("kill failed");
    });
    const third = run.serial(async () => {
      order.push("cleanup");
    });
    expect(order).toEqual(["terminate"]);
    release();
    await first;
    await expect(second).rejects.toThrow("kill failed");
    await third;
    expect(order).toEqual(["terminate", "kill", "cleanup"]);
    expect(run.op).toBeUndefined();
  });

  it("turns a call that throws at once into a rejection", async () => {
    const run = new Run(workload(), "r1", 0, false);
    await expect(
      run.serial(() => {
        throw new Error("sync");
      }),
    ).rejects.toThrow("sync");
  });
});
