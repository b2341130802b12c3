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

  it("lets a kept entry go by delete", () => {
    const map = new BoundedMap<string, number>({ limit: 1, keep: () => true });
    map.set("a", 1);
    expect(map.delete("a")).toBe(true);
    expect(map.has("a")).toBe(false);
  });
});
