import { describe, expect, it, vi } from "vitest";
import type { ExitStatus, StartRequest } from "../../../src/backends/backend.js";
import { BackendUnavailableError } from "../../../src/errors.js";
import { ExitPoller, type PollTarget } from "../../../src/kernel/exit-poller.js";
import { Scheduler } from "../../../src/kernel/scheduler.js";
import { FakeBackend, type FakeHandle, ManualClock } from "../../../src/testing/index.js";

const INTERVAL = 1_000;

function request(workloadId: string): StartRequest {
  return {
    kernelId: "k",
    workloadId,
    runId: `${workloadId}-run`,
    profile: "agent",
    runnable: {},
    env: {},
    labels: {},
  };
}

async function setup(options: { concurrency?: number } = {}) {
  const clock = new ManualClock();
  const fake = new FakeBackend({ clock, watchExit: false, recordCalls: true });
  const scheduler = new Scheduler(clock);
  const poller = new ExitPoller(fake, scheduler, INTERVAL, options.concurrency);
  const exits = new Map<string, ExitStatus>();
  const errors = new Map<string, unknown[]>();
  const start = (workloadId: string) =>
    fake.start(request(workloadId), { signal: new AbortController().signal });
  const target = (handle: FakeHandle): PollTarget => ({
    handle,
    onExit: (status) => {
      expect(exits.has(handle.workloadId)).toBe(false);
      exits.set(handle.workloadId, status);
    },
    onError: (error) => errors.set(handle.workloadId, [...(errors.get(handle.workloadId) ?? []), error]),
  });
  const watch = async (workloadId: string) => {
    const t = target(await start(workloadId));
    poller.add(t);
    return t;
  };
  const polls = () => fake.calls.filter((c) => c.method === "exitCode").length;
  return { clock, fake, scheduler, poller, exits, errors, start, target, watch, polls };
}

describe("ExitPoller", () => {
  it("serves backends without watchExit, such as FakeBackend({ watchExit: false })", () => {
    expect(new FakeBackend({ watchExit: false }).watchExit).toBeUndefined();
  });

  describe("one shared timer", () => {
    it("polls every target on one scheduler task, whatever their number", async () => {
      const { clock, scheduler, watch } = await setup();
      for (let i = 0; i < 200; i++) await watch(`w${i}`);
      expect(scheduler.size).toBe(1);
      expect(clock.pending).toBe(1);
    });

    it("polls each target once per interval", async () => {
      const { clock, watch, polls } = await setup();
      for (const id of ["a", "b", "c"]) await watch(id);
      await clock.advance(INTERVAL - 1);
      expect(polls()).toBe(0);
      await clock.advance(1);
      expect(polls()).toBe(3);
      await clock.advance(INTERVAL);
      expect(polls()).toBe(6);
    });

    it("polls at most `concurrency` targets at once", async () => {
      const { clock, fake, watch } = await setup({ concurrency: 2 });
      for (const id of ["a", "b", "c", "d", "e"]) await watch(id);
      let inFlight = 0;
      let max = 0;
      const release: Array<() => void> = [];
      vi.spyOn(fake, "exitCode").mockImplementation(async () => {
        inFlight++;
        max = Math.max(max, inFlight);
        await new Promise<void>((resolve) => release.push(resolve));
        inFlight--;
        return null;
      });
      await clock.advance(INTERVAL);
      expect(inFlight).toBe(2);
      while (release.length > 0) {
        release.shift()?.();
        await clock.advance(0);
      }
      expect(max).toBe(2);
      expect(fake.exitCode).toHaveBeenCalledTimes(5);
    });

    it("does not start a second round while one is still polling", async () => {
      const { clock, fake, watch } = await setup();
      await watch("a");
      let release: (() => void) | undefined;
      vi.spyOn(fake, "exitCode").mockImplementation(
        () =>
          new Promise((resolve) => {
            release = () => resolve(null);
          }),
      );
      await clock.advance(INTERVAL);
      await watch("b");
      await clock.advance(INTERVAL * 5);
      expect(fake.exitCode).toHaveBeenCalledTimes(1);
      release?.();
      await clock.advance(INTERVAL);
      expect(fake.exitCode).toHaveBeenCalledTimes(3);
    });
  });

  describe("reporting exits", () => {
    it("reports an exit code on the next poll, once", async () => {
      const { clock, fake, exits, watch } = await setup();
      await watch("a");
      await watch("b");
      fake.exit("a", { exitCode: 3 });
      expect(exits.size).toBe(0);
      await clock.advance(INTERVAL);
      expect([...exits]).toEqual([["a", { exitCode: 3 }]]);
      await clock.advance(INTERVAL * 3);
      expect(exits.size).toBe(1);
    });

    it("reports exit 0 as an exit", async () => {
      const { clock, fake, exits, watch } = await setup();
      await watch("a");
      fake.exit("a");
      await clock.advance(INTERVAL);
      expect(exits.get("a")).toEqual({ exitCode: 0 });
    });

    it.each([
      ["SIGKILL", 137],
      ["SIGTERM", 143],
      ["SIGSEGV", 139],
    ])("names the signal behind a death by %s (exit code %i)", async (signal, code) => {
      const { clock, fake, exits, watch } = await setup();
      await watch("a");
      fake.exit("a", { signal });
      await clock.advance(INTERVAL);
      expect(exits.get("a")).toEqual({ exitCode: code, signal });
    });

    it("names no signal for a code above 128 that is not a known signal", async () => {
      const { clock, fake, exits, watch } = await setup();
      await watch("a");
      fake.exit("a", { exitCode: 255 });
      await clock.advance(INTERVAL);
      expect(exits.get("a")).toEqual({ exitCode: 255 });
    });

    it("reports a target the backend can no longer find (WORKLOAD_LOST) as lost", async () => {
      const { clock, fake, exits, errors, watch } = await setup();
      await watch("a");
      fake.lose("a");
      await clock.advance(INTERVAL);
      expect(exits.get("a")).toEqual({ exitCode: null, lost: true });
      expect(errors.size).toBe(0);
    });
  });

  describe("errors", () => {
    it("reports any other error to onError and keeps polling the target", async () => {
      const { clock, fake, exits, errors, watch } = await setup();
      await watch("a");
      const down = new BackendUnavailableError("supervisor unreachable");
      vi.spyOn(fake, "exitCode").mockRejectedValueOnce(down).mockRejectedValueOnce(down);
      await clock.advance(INTERVAL);
      await clock.advance(INTERVAL);
      expect(errors.get("a")).toEqual([down, down]);
      expect(exits.size).toBe(0);
      fake.exit("a", { exitCode: 1 });
      await clock.advance(INTERVAL);
      expect(exits.get("a")).toEqual({ exitCode: 1 });
    });

    it("never guesses an exit from an error", async () => {
      const { clock, fake, exits, watch } = await setup();
      await watch("a");
      vi.spyOn(fake, "exitCode").mockRejectedValue(new Error("socket hang up"));
      await clock.advance(INTERVAL * 10);
      expect(exits.size).toBe(0);
    });

    it("keeps polling the other targets while one keeps failing", async () => {
      const { clock, fake, exits, errors, watch } = await setup();
      await watch("bad");
      await watch("good");
      const real = fake.exitCode.bind(fake);
      vi.spyOn(fake, "exitCode").mockImplementation(async (handle) => {
        if (handle.workloadId === "bad") throw new BackendUnavailableError("down");
        return real(handle);
      });
      fake.exit("good", { exitCode: 0 });
      await clock.advance(INTERVAL);
      expect(exits.get("good")).toEqual({ exitCode: 0 });
      expect(errors.get("bad")).toHaveLength(1);
    });
  });

  describe("stopping", () => {
    it("stops polling, and holds no timer, once every target has exited", async () => {
      const { clock, fake, scheduler, watch, polls } = await setup();
      await watch("a");
      await watch("b");
      fake.exit("a");
      fake.lose("b");
      await clock.advance(INTERVAL);
      expect(scheduler.size).toBe(0);
      expect(clock.pending).toBe(0);
      const before = polls();
      await clock.advance(INTERVAL * 10);
      expect(polls()).toBe(before);
    });

    it("stops polling, and holds no timer, once every target is deleted", async () => {
      const { clock, poller, scheduler, watch, polls } = await setup();
      const a = await watch("a");
      const b = await watch("b");
      poller.delete(a);
      expect(scheduler.size).toBe(1);
      poller.delete(b);
      expect(scheduler.size).toBe(0);
      expect(clock.pending).toBe(0);
      await clock.advance(INTERVAL * 3);
      expect(polls()).toBe(0);
    });

    it("does not report a target deleted while its poll was in flight", async () => {
      const { clock, fake, poller, exits, watch } = await setup();
      const a = await watch("a");
      fake.exit("a", { exitCode: 2 });
      let release: (() => void) | undefined;
      const real = fake.exitCode.bind(fake);
      vi.spyOn(fake, "exitCode").mockImplementation(async (handle) => {
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        return real(handle);
      });
      await clock.advance(INTERVAL);
      poller.delete(a);
      release?.();
      await clock.advance(INTERVAL);
      expect(exits.size).toBe(0);
    });

    it("starts again when a target is added after it stopped", async () => {
      const { clock, fake, exits, watch } = await setup();
      await watch("a");
      fake.exit("a");
      await clock.advance(INTERVAL);
      await watch("b");
      fake.exit("b", { exitCode: 4 });
      await clock.advance(INTERVAL);
      expect(exits.get("b")).toEqual({ exitCode: 4 });
    });

    it("polls nothing more after close()", async () => {
      const { clock, fake, poller, scheduler, exits, watch } = await setup();
      await watch("a");
      poller.close();
      fake.exit("a");
      await clock.advance(INTERVAL * 3);
      expect(exits.size).toBe(0);
      expect(scheduler.size).toBe(0);
    });
  });
});
