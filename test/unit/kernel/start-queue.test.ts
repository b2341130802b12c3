import { describe, expect, it } from "vitest";
import { StartQueue, type StartTicket } from "../../../src/kernel/start-queue.js";

/** A queue and a log of the order in which tickets were granted. */
function setup(limit: number) {
  const queue = new StartQueue(limit);
  const granted: string[] = [];
  const ticket = (owner: string, name: string): StartTicket => ({ owner, grant: () => granted.push(name) });
  const request = (owner: string, name: string): StartTicket => {
    const t = ticket(owner, name);
    queue.request(t);
    return t;
  };
  return { queue, granted, ticket, request };
}

describe("StartQueue", () => {
  describe("bound", () => {
    it("grants a slot synchronously while fewer than `limit` starts are in flight", () => {
      const { queue, granted, request } = setup(2);
      request("a", "a1");
      expect(granted).toEqual(["a1"]);
      request("a", "a2");
      expect(granted).toEqual(["a1", "a2"]);
      expect(queue.running).toBe(2);
      expect(queue.waiting).toBe(0);
    });

    it("makes further starts wait once `limit` are in flight", () => {
      const { queue, granted, request } = setup(2);
      for (const name of ["a1", "a2", "a3", "a4"]) request("a", name);
      expect(granted).toEqual(["a1", "a2"]);
      expect(queue.running).toBe(2);
      expect(queue.waiting).toBe(2);
    });

    it("never has more than `limit` starts in flight", () => {
      const { queue, request } = setup(3);
      let max = 0;
      for (let i = 0; i < 50; i++) {
        request(`o${i % 4}`, `t${i}`);
        max = Math.max(max, queue.running);
        if (i % 3 === 0) queue.release();
      }
      expect(max).toBe(3);
    });

    it("grants a waiting start when a slot is released", () => {
      const { queue, granted, request } = setup(1);
      request("a", "a1");
      request("a", "a2");
      expect(granted).toEqual(["a1"]);
      queue.release();
      expect(granted).toEqual(["a1", "a2"]);
      expect(queue.running).toBe(1);
      expect(queue.waiting).toBe(0);
    });

    it("returns to zero in flight once every start is released", () => {
      const { queue, request } = setup(2);
      for (let i = 0; i < 5; i++) request("a", `a${i}`);
      for (let i = 0; i < 5; i++) queue.release();
      expect(queue.running).toBe(0);
      expect(queue.waiting).toBe(0);
    });
  });

  describe("order", () => {
    it("serves one owner's starts first in, first out", () => {
      const { queue, granted, request } = setup(1);
      for (const name of ["a1", "a2", "a3", "a4"]) request("a", name);
      for (let i = 0; i < 3; i++) queue.release();
      expect(granted).toEqual(["a1", "a2", "a3", "a4"]);
    });

    it("serves owners round-robin, so one busy owner cannot starve the others", () => {
      const { queue, granted, request } = setup(1);
      request("busy", "held");
      for (const name of ["a1", "a2", "a3"]) request("a", name);
      request("b", "b1");
      for (const name of ["c1", "c2"]) request("c", name);
      for (let i = 0; i < 6; i++) queue.release();
      expect(granted).toEqual(["held", "a1", "b1", "c1", "a2", "c2", "a3"]);
    });

    it("serves a newcomer within one round even behind thousands of another owner's starts", () => {
      const { queue, granted, request } = setup(1);
      request("flood", "held");
      for (let i = 0; i < 5_000; i++) request("flood", `f${i}`);
      request("small", "s1");
      queue.release();
      queue.release();
      expect(granted).toEqual(["held", "f0", "s1"]);
    });

    it("keeps first in, first out through thousands of starts, with withdrawals among them", () => {
      const { queue, granted, request } = setup(1);
      request("a", "held");
      const tickets = Array.from({ length: 3_000 }, (_, i) => request("a", `a${i}`));
      for (let i = 0; i < 1_500; i++) queue.release();
      for (let i = 2_000; i < 2_100; i++) queue.withdraw(tickets[i] as StartTicket);
      for (let i = 0; i < 3_000; i++) queue.release();
      const expected = ["held", ...Array.from({ length: 3_000 }, (_, i) => `a${i}`)].filter((name) => {
        const n = Number(name.slice(1));
        return !(n >= 2_000 && n < 2_100);
      });
      expect(granted).toEqual(expected);
    });

    it("does not let a newcomer jump ahead of starts already waiting", () => {
      const { queue, granted, request } = setup(1);
      request("a", "a1");
      request("a", "a2");
      request("b", "b1");
      expect(granted).toEqual(["a1"]);
      expect(queue.waiting).toBe(2);
    });
  });

  describe("withdraw", () => {
    it("removes a waiting start, which is then never granted", () => {
      const { queue, granted, request } = setup(1);
      request("a", "a1");
      const a2 = request("a", "a2");
      request("a", "a3");
      expect(queue.withdraw(a2)).toBe(true);
      expect(queue.waiting).toBe(1);
      queue.release();
      queue.release();
      expect(granted).toEqual(["a1", "a3"]);
    });

    it("drops an owner from the round once its last waiting start is withdrawn", () => {
      const { queue, granted, request } = setup(1);
      request("a", "a1");
      const b1 = request("b", "b1");
      request("c", "c1");
      queue.withdraw(b1);
      queue.release();
      expect(granted).toEqual(["a1", "c1"]);
      expect(queue.waiting).toBe(0);
    });

    it("answers false for a start already granted, and frees no slot", () => {
      const { queue, request } = setup(1);
      const a1 = request("a", "a1");
      expect(queue.withdraw(a1)).toBe(false);
      expect(queue.running).toBe(1);
    });

    it("answers false for a ticket it never saw, or withdrawn twice", () => {
      const { queue, ticket, request } = setup(1);
      request("a", "a1");
      const a2 = request("a", "a2");
      expect(queue.withdraw(ticket("a", "stranger"))).toBe(false);
      expect(queue.withdraw(a2)).toBe(true);
      expect(queue.withdraw(a2)).toBe(false);
    });
  });

  describe("release", () => {
    it("frees a slot without granting anything when nobody waits", () => {
      const { queue, granted, request } = setup(2);
      request("a", "a1");
      queue.release();
      expect(queue.running).toBe(0);
      expect(granted).toEqual(["a1"]);
    });

    it("lets a grant that releases at once (a start that fails synchronously) drain the queue", () => {
      const queue = new StartQueue(1);
      const granted: string[] = [];
      const failing = (owner: string, name: string): StartTicket => ({
        owner,
        grant: () => {
          granted.push(name);
          queue.release();
        },
      });
      queue.request({ owner: "x", grant: () => granted.push("held") });
      for (const name of ["a1", "a2", "a3"]) queue.request(failing("a", name));
      queue.release();
      expect(granted).toEqual(["held", "a1", "a2", "a3"]);
      expect(queue.running).toBe(0);
      expect(queue.waiting).toBe(0);
    });
  });
});
