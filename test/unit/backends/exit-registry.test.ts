import { describe, expect, it, vi } from "vitest";
import type { ExitStatus } from "../../../src/backends/backend.js";
import { EXIT_RECORD_LIMIT, ExitRegistry } from "../../../src/backends/exit-registry.js";

const zero: ExitStatus = { exitCode: 0 };
const killed: ExitStatus = { exitCode: 137, signal: "SIGKILL" };
const microtask = () => new Promise<void>((resolve) => queueMicrotask(resolve));

describe("ExitRegistry", () => {
  describe("the record", () => {
    it("remembers an exit until it is forgotten", () => {
      const exits = new ExitRegistry();
      exits.remember("run", zero);
      expect(exits.get("run")).toEqual(zero);
      expect(exits.has("run")).toBe(true);
      exits.forget("run");
      expect(exits.has("run")).toBe(false);
    });

    it(`keeps ${EXIT_RECORD_LIMIT.toLocaleString("en")} exits by default, forgetting the oldest first`, () => {
      const exits = new ExitRegistry<number>();
      for (let i = 0; i <= EXIT_RECORD_LIMIT; i++) exits.remember(i, zero);
      expect(exits.has(0)).toBe(false);
      expect(exits.has(1)).toBe(true);
      expect(exits.has(EXIT_RECORD_LIMIT)).toBe(true);
    });

    it("never forgets for room the exits keep spares", () => {
      const exits = new ExitRegistry({ limit: 1, keep: (key) => key === "mine" });
      exits.remember("mine", zero);
      exits.remember("other", zero);
      exits.remember("newest", zero);
      expect(exits.has("mine")).toBe(true);
      expect(exits.has("other")).toBe(false);
      expect(exits.has("newest")).toBe(true);
    });
  });

  describe("watch", () => {
    it("delivers a settled exit to every open watch of its key, and to no other", () => {
      const exits = new ExitRegistry();
      const a = vi.fn();
      const b = vi.fn();
      const other = vi.fn();
      exits.watch("run", a);
      exits.watch("run", b);
      exits.watch("other", other);
      exits.settle("run", killed);
      expect(a).toHaveBeenCalledWith(killed);
      expect(b).toHaveBeenCalledWith(killed);
      expect(other).not.toHaveBeenCalled();
      expect(exits.get("run")).toEqual(killed);
    });

    it("calls each watch at most once, however often its exit is settled or delivered", () => {
      const exits = new ExitRegistry();
      const onExit = vi.fn();
      const watch = exits.watch("run", onExit);
      exits.settle("run", zero);
      exits.settle("run", killed);
      watch.deliver(killed);
      expect(onExit).toHaveBeenCalledTimes(1);
      expect(onExit).toHaveBeenCalledWith(zero);
      expect(watch.done).toBe(true);
    });

    it("delivers an exit already remembered on the next microtask, never before watch returns", async () => {
      const exits = new ExitRegistry();
      exits.remember("run", zero);
      const onExit = vi.fn();
      const watch = exits.watch("run", onExit);
      expect(onExit).not.toHaveBeenCalled();
      await microtask();
      expect(onExit).toHaveBeenCalledWith(zero);
      expect(watch.done).toBe(true);
    });

    it("calls a stopped watch never, even for an exit it was about to get", async () => {
      const exits = new ExitRegistry();
      const early = vi.fn();
      exits.watch("run", early).stop();
      exits.settle("run", zero);
      const late = vi.fn();
      exits.watch("run", late).stop();
      await microtask();
      expect(early).not.toHaveBeenCalled();
      expect(late).not.toHaveBeenCalled();
    });

    it("delivers an exit known elsewhere on the next microtask, unless stopped first", async () => {
      const exits = new ExitRegistry();
      const lost: ExitStatus = { exitCode: null, lost: true };
      const onExit = vi.fn();
      exits.deliverLater(lost, onExit);
      const stopped = vi.fn();
      exits.deliverLater(lost, stopped).stop();
      expect(onExit).not.toHaveBeenCalled();
      await microtask();
      expect(onExit).toHaveBeenCalledWith(lost);
      expect(stopped).not.toHaveBeenCalled();
      expect(exits.has("run")).toBe(false);
    });

    it("delivers to one watch alone through deliver, without remembering the exit", () => {
      const exits = new ExitRegistry();
      const mine = vi.fn();
      const theirs = vi.fn();
      exits.watch("pod", mine).deliver(zero);
      exits.watch("pod", theirs);
      expect(mine).toHaveBeenCalledWith(zero);
      expect(theirs).not.toHaveBeenCalled();
      expect(exits.has("pod")).toBe(false);
    });

    it("knows which keys are watched, until each watch ends", () => {
      const exits = new ExitRegistry();
      const watch = exits.watch("a", () => {});
      exits.watch("b", () => {});
      expect(exits.watchedKeys()).toEqual(["a", "b"]);
      expect(exits.watching).toBe(2);
      watch.stop();
      expect(exits.isWatched("a")).toBe(false);
      exits.settle("b", zero);
      expect(exits.watching).toBe(0);
    });

    it("says when the last open watch ends, whether delivered or stopped", () => {
      const onIdle = vi.fn();
      const exits = new ExitRegistry({ onIdle });
      const a = exits.watch("a", () => {});
      exits.watch("b", () => {});
      a.stop();
      a.stop();
      expect(onIdle).not.toHaveBeenCalled();
      exits.settle("b", zero);
      expect(onIdle).toHaveBeenCalledTimes(1);
    });

    it("calls a watch's onEnd once when it ends, however it ends, and before its onExit", async () => {
      const exits = new ExitRegistry();
      const order: string[] = [];
      exits.watch(
        "a",
        () => order.push("a exit"),
        () => order.push("a end"),
      );
      exits.settle("a", zero);
      const b = exits.watch(
        "b",
        () => order.push("b exit"),
        () => order.push("b end"),
      );
      b.stop();
      b.stop();
      exits.watch(
        "c",
        () => order.push("c exit"),
        () => order.push("c end"),
      );
      exits.close();
      exits.watch(
        "a",
        () => order.push("a again"),
        () => order.push("a again end"),
      );
      await microtask();
      expect(order).toEqual(["a end", "a exit", "b end", "c end", "a again"]);
    });

    it("ends every watch at close without calling any", () => {
      const exits = new ExitRegistry();
      const onExit = vi.fn();
      const watch = exits.watch("run", onExit);
      exits.close();
      exits.settle("run", zero);
      watch.deliver(zero);
      expect(onExit).not.toHaveBeenCalled();
      expect(exits.watching).toBe(0);
    });
  });

  describe("a watch that throws", () => {
    it("hands the error to onError and still delivers to the other watches", () => {
      const onError = vi.fn();
      const exits = new ExitRegistry({ onError });
      const boom = new Error("boom");
      exits.watch("run", () => {
        throw boom;
      });
      const next = vi.fn();
      exits.watch("run", next);
      exits.settle("run", zero);
      expect(onError).toHaveBeenCalledWith(boom);
      expect(next).toHaveBeenCalledWith(zero);
    });

    it("without onError, throws the error on to the settler once every watch has its exit", () => {
      const exits = new ExitRegistry();
      const boom = new Error("boom");
      exits.watch("run", () => {
        throw boom;
      });
      const next = vi.fn();
      exits.watch("run", next);
      expect(() => exits.settle("run", zero)).toThrow(boom);
      expect(next).toHaveBeenCalledWith(zero);
      expect(exits.get("run")).toEqual(zero);
    });
  });
});
