import { describe, expect, it } from "vitest";
import { BoundedMap } from "../../src/bounded-map.js";

describe("BoundedMap", () => {
  it("holds up to its limit, then forgets the oldest entry first", () => {
    const map = new BoundedMap<string, number>({ limit: 2 });
    map.set("a", 1);
    map.set("b", 2);
    map.set("c", 3);
    expect(map.size).toBe(2);
    expect(map.has("a")).toBe(false);
    expect([map.get("b"), map.get("c")]).toEqual([2, 3]);
  });

  it("makes a key set again the newest, so it outlives entries set after it first was", () => {
    const map = new BoundedMap<string, number>({ limit: 2 });
    map.set("a", 1);
    map.set("b", 2);
    map.set("a", 10);
    map.set("c", 3);
    expect(map.has("b")).toBe(false);
    expect(map.get("a")).toBe(10);
  });

  it("never evicts what keep spares, going past its limit rather than dropping the entry just set", () => {
    const kept = new Set(["a", "b"]);
    const map = new BoundedMap<string, number>({ limit: 2, keep: (key) => kept.has(key) });
    map.set("a", 1);
    map.set("b", 2);
    map.set("c", 3);
    expect(map.size).toBe(3);
    map.set("d", 4);
    expect(map.has("c")).toBe(false);
    expect([map.has("a"), map.has("b"), map.has("d")]).toEqual([true, true, true]);
  });

  it("looks at a bounded number of entries per set, however many are kept (no quadratic walk)", () => {
    let asked = 0;
    const map = new BoundedMap<number, number>({
      limit: 10,
      keep: () => {
        asked++;
        return true;
      },
    });
    for (let i = 0; i < 20_000; i++) map.set(i, i);
    expect(map.size).toBe(20_000);
    expect(asked).toBeLessThanOrEqual(20_000 * 32);
  });

  it("catches up to its limit once kept entries are let go of", () => {
    const kept = new Set(Array.from({ length: 100 }, (_, i) => i));
    const map = new BoundedMap<number, number>({ limit: 10, keep: (key) => kept.has(key) });
    for (let i = 0; i < 100; i++) map.set(i, i);
    kept.clear();
    for (let i = 100; i < 110; i++) map.set(i, i);
    expect(map.size).toBe(10);
    expect(map.has(109) && !map.has(0)).toBe(true);
  });

  it("lets a kept entry go by delete", () => {
    const map = new BoundedMap<string, number>({ limit: 1, keep: () => true });
    map.set("a", 1);
    expect(map.delete("a")).toBe(true);
    expect(map.has("a")).toBe(false);
  });
});
