import { describe, expect, it } from "vitest";
import type { WorkloadStatus } from "../../../src/kernel/types.js";
import { Waiters } from "../../../src/kernel/waiters.js";

const status = (state: WorkloadStatus["state"]) => ({ state }) as WorkloadStatus;

describe("Waiters", () => {
  it("settle only the waits the decision covers; the others stay pending", async () => {
    const waiters = new Waiters();
    const running = waiters.add("running");
    const stopped = waiters.add("stopped");
    waiters.settle((target) => (target === "running" ? { ok: true, status: status("running") } : undefined));
    await expect(running).resolves.toEqual({ state: "running" });
    waiters.settle(() => ({ ok: false, error: new Error("gone") }));
    await expect(stopped).rejects.toThrow("gone");
  });

  it("reject the waits for one state, or all of them", async () => {
    const waiters = new Waiters();
    const stopped = waiters.add("stopped");
    const destroyed = waiters.add("destroyed");
    waiters.reject("stopped", new Error("kill failed"));
    await expect(stopped).rejects.toThrow("kill failed");
    waiters.rejectAll(new Error("shut down"));
    await expect(destroyed).rejects.toThrow("shut down");
  });

  it("end a wait whose signal aborts, and forget it", async () => {
    const waiters = new Waiters();
    const controller = new AbortController();
    const wait = waiters.add("running", controller.signal);
    controller.abort(new Error("caller gave up"));
    await expect(wait).rejects.toThrow("caller gave up");
    let decided = 0;
    waiters.settle(() => {
      decided++;
      return undefined;
    });
    expect(decided).toBe(0);
    await expect(waiters.add("running", controller.signal)).rejects.toThrow("caller gave up");
  });
});
