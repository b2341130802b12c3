import { describe, expect, it } from "vitest";
import { CleanupBatch } from "../../../../src/backends/process/cleanup-batch.js";
import type { WireError } from "../../../../src/backends/process/protocol.js";

/** A batch over a scripted supervisor, which answers each request with `reply`. */
function batchOver(reply: (runIds: string[]) => Promise<Array<{ runId: string; error: WireError }>>) {
  const sent: string[][] = [];
  const batch = new CleanupBatch(
    (runIds) => {
      sent.push(runIds);
      return reply(runIds);
    },
    (error) => Object.assign(new Error(error.message), { code: error.code }),
  );
  return { batch, sent };
}

const allClean = async () => [];

describe("the cleanups asked for in one tick", () => {
  it("reach the supervisor as one request, and each resolves once it replied", async () => {
    let answer: (failed: []) => void = () => {};
    const { batch, sent } = batchOver(() => new Promise((resolve) => (answer = resolve)));
    const settled: string[] = [];
    const done = ["a", "b", "c"].map((runId) => batch.add(runId).then(() => settled.push(runId)));
    await new Promise((resolve) => setImmediate(resolve));
    expect(sent).toEqual([["a", "b", "c"]]);
    expect(settled).toEqual([]);
    answer([]);
    await Promise.all(done);
    expect(settled).toEqual(["a", "b", "c"]);
  });

  it("fail one by one: a run the supervisor could not clean up fails alone", async () => {
    const { batch } = batchOver(async () => [
      { runId: "b", error: { code: "CLEANUP_FAILED", message: "b did not die" } },
    ]);
    const results = await Promise.allSettled(["a", "b", "c"].map((runId) => batch.add(runId)));
    expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((results[1] as PromiseRejectedResult).reason).toMatchObject({
      code: "CLEANUP_FAILED",
      message: "b did not die",
    });
  });

  it("name a run once however often it is asked for, and clean it up again when asked later", async () => {
    const { batch, sent } = batchOver(allClean);
    const first = batch.add("a");
    expect(batch.add("a")).toBe(first);
    await Promise.all([first, batch.add("b")]);
    await batch.add("a");
    expect(sent).toEqual([["a", "b"], ["a"]]);
  });

  it("all fail with the request when it fails as a whole", async () => {
    const { batch } = batchOver(() => Promise.reject(new Error("connection closed")));
    const results = await Promise.allSettled([batch.add("a"), batch.add("b")]);
    expect(results).toEqual([
      { status: "rejected", reason: new Error("connection closed") },
      { status: "rejected", reason: new Error("connection closed") },
    ]);
  });
});
