/**
 * The shared Pod watch, driven through a fake API server and fake timers: list once, watch from
 * the list's version, resume after a close or a drop, relist on 410 Gone and periodically.
 */
import type { V1Pod } from "@kubernetes/client-node";
import { describe, expect, it } from "vitest";
import {
  PodWatch,
  type PodWatchTimers,
  type PodWatchTransport,
} from "../../../../src/backends/kubernetes/pod-watch.js";

const pod = (name: string, rv: string, phase = "Running"): V1Pod => ({
  metadata: { name, resourceVersion: rv, uid: `uid-${name}` },
  status: { phase },
});

class FakeTimers implements PodWatchTimers {
  now = 0;
  private next = 1;
  private timers = new Map<number, { at: number; fn: () => void }>();
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.next++;
    this.timers.set(id, { at: this.now + ms, fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  async advance(ms: number): Promise<void> {
    this.now += ms;
    for (const [id, t] of [...this.timers].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at > this.now || !this.timers.has(id)) continue;
      this.timers.delete(id);
      t.fn();
      await flush();
    }
  }
}

const flush = async () => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
};

class FakeServer implements PodWatchTransport {
  items: V1Pod[] = [];
  rv = "10";
  lists = 0;
  failList: unknown;
  watches: {
    rv: string;
    onEvent(type: string, o: unknown): void;
    onEnd(r: { status?: number; error?: unknown }): void;
    aborted: boolean;
  }[] = [];
  async list() {
    this.lists++;
    if (this.failList) throw this.failList;
    return { items: this.items.map((p) => structuredClone(p)), resourceVersion: this.rv };
  }
  watch(
    rv: string,
    handlers: {
      onEvent(type: string, o: unknown): void;
      onEnd(r: { status?: number; error?: unknown }): void;
    },
  ) {
    const w = { rv, ...handlers, aborted: false };
    this.watches.push(w);
    return { abort: () => (w.aborted = true) };
  }
  get current() {
    const w = this.watches.at(-1);
    if (!w) throw new Error("no watch open");
    return w;
  }
}

function setup(options: { resyncMs?: number; idleMs?: number } = {}) {
  const server = new FakeServer();
  const timers = new FakeTimers();
  const watch = new PodWatch(server, {
    resyncMs: options.resyncMs ?? 1_000_000_000,
    idleMs: options.idleMs ?? 60_000,
    reconnectMs: { initial: 100, max: 400 },
    timers,
  });
  return { server, timers, watch };
}

describe("PodWatch", () => {
  it("lists once, then watches from the list's resourceVersion and keeps every Pod's latest state", async () => {
    const { server, watch } = setup();
    server.items = [pod("a", "5")];
    await watch.ready();
    await flush();
    expect(server.lists).toBe(1);
    expect(server.current.rv).toBe("10");
    const seen: (string | undefined)[] = [];
    watch.subscribe("b", (p) => seen.push(p?.status?.phase ?? "gone"));
    server.current.onEvent("ADDED", pod("b", "11", "Pending"));
    server.current.onEvent("MODIFIED", pod("b", "12", "Running"));
    server.current.onEvent("DELETED", pod("b", "13", "Running"));
    expect(seen).toEqual(["Pending", "Running", "gone"]);
    expect([...watch.pods.keys()]).toEqual(["a"]);
  });

  it("resumes from the last resourceVersion when the server ends the watch, without relisting", async () => {
    const { server, watch } = setup();
    await watch.ready();
    await flush();
    server.current.onEvent("ADDED", pod("a", "20"));
    server.current.onEvent("BOOKMARK", { metadata: { resourceVersion: "25" } });
    server.current.onEnd({ status: 200 });
    await flush();
    expect(server.watches).toHaveLength(2);
    expect(server.current.rv).toBe("25");
    expect(server.lists).toBe(1);
  });

  it("reconnects after a dropped connection, backing off, from the last resourceVersion", async () => {
    const { server, timers, watch } = setup();
    await watch.ready();
    await flush();
    server.current.onEvent("ADDED", pod("a", "30"));
    server.current.onEnd({ error: new Error("socket hang up") });
    await flush();
    expect(server.watches).toHaveLength(1);
    await timers.advance(100);
    expect(server.watches).toHaveLength(2);
    expect(server.current.rv).toBe("30");
    server.current.onEnd({ error: new Error("ECONNREFUSED") });
    await flush();
    await timers.advance(100);
    expect(server.watches).toHaveLength(2); // the backoff doubled
    await timers.advance(100);
    expect(server.watches).toHaveLength(3);
    expect(watch.stats.dropped).toBe(2);
    expect(server.lists).toBe(1);
  });

  it("relists on 410 Gone and reports the Pods that disappeared meanwhile", async () => {
    const { server, watch } = setup();
    server.items = [pod("a", "5"), pod("b", "6")];
    await watch.ready();
    await flush();
    const gone: string[] = [];
    watch.onGone((name) => gone.push(name));
    let bExit: string | undefined;
    watch.subscribe("b", (p) => (bExit = p?.status?.phase ?? "gone"));
    server.items = [pod("a", "50", "Succeeded")];
    server.rv = "60";
    server.current.onEvent("ERROR", { kind: "Status", code: 410, reason: "Expired" });
    await flush();
    expect(server.lists).toBe(2);
    expect(watch.stats.expired).toBe(1);
    expect(gone).toEqual(["b"]);
    expect(bExit).toBe("gone");
    expect(watch.pods.get("a")?.status?.phase).toBe("Succeeded");
    expect(server.current.rv).toBe("60");
  });

  it("relists when the watch request itself is answered 410", async () => {
    const { server, watch } = setup();
    await watch.ready();
    await flush();
    server.current.onEnd({ status: 410 });
    await flush();
    expect(server.lists).toBe(2);
  });

  it("takes a watch silent for longer than idleMs as dropped", async () => {
    const { server, timers, watch } = setup({ idleMs: 1000 });
    await watch.ready();
    await flush();
    await timers.advance(1000);
    expect(server.watches[0]?.aborted).toBe(true);
    await timers.advance(100);
    expect(server.watches).toHaveLength(2);
  });

  it("relists every resyncMs to catch anything missed", async () => {
    const { server, timers, watch } = setup({ resyncMs: 5000, idleMs: 1_000_000 });
    await watch.ready();
    await flush();
    await timers.advance(5000);
    expect(server.lists).toBe(2);
    expect(server.watches).toHaveLength(2);
  });

  it("rejects ready() when the first list fails, and tries again on the next call", async () => {
    const { server, watch } = setup();
    server.failList = new Error("connect ECONNREFUSED");
    await expect(watch.ready()).rejects.toThrow(/ECONNREFUSED/);
    server.failList = undefined;
    await watch.ready();
    expect(watch.isSynced).toBe(true);
  });
});
