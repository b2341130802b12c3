import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { InvalidSpecError } from "../../../src/errors.js";
import { createRuntimeKernel } from "../../../src/index.js";
import { parseWorkloadSpec } from "../../../src/kernel/spec.js";
import type { Profile } from "../../../src/kernel/types.js";
import { FakeBackend, ManualClock } from "../../../src/testing/index.js";

const base = realpathSync(mkdtempSync(join(tmpdir(), "rk-mounts-")));
const root = join(base, "root");
const outside = join(base, "outside");
for (const dir of [join(root, "alice"), join(root, "bob"), outside, join(base, "shared")]) {
  mkdirSync(dir, { recursive: true });
}
// A link planted inside the root that points out of it.
symlinkSync(outside, join(root, "alice", "escape"));
// A link from outside into the root is fine: what counts is where the source really is.
symlinkSync(join(root, "bob"), join(base, "to-bob"));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const profiles: Record<string, Profile> = {
  rooted: { runnable: { command: ["agent"] }, mountRoots: [root] },
  closed: { runnable: { command: ["agent"] } },
  fixed: {
    runnable: { command: ["agent"] },
    mountRoots: [root],
    mounts: [{ source: join(base, "shared"), target: "/shared", readOnly: true }],
  },
};

function refusal(input: unknown): Array<{ path: string; message: string }> {
  try {
    parseWorkloadSpec(input, profiles);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidSpecError);
    return [...(error as InvalidSpecError).issues];
  }
  throw new Error("the spec was accepted");
}

describe("a spec's mounts", () => {
  it("are resolved and tagged with the root that holds them", () => {
    const spec = parseWorkloadSpec(
      {
        workloadId: "w",
        profile: "rooted",
        mounts: [
          { source: join(root, "alice"), target: "/work" },
          { source: join(base, "to-bob"), target: "/data/", readOnly: true },
        ],
      },
      profiles,
    );
    expect(spec.mounts).toEqual([
      { source: join(root, "alice"), target: "/work", readOnly: false, root },
      { source: join(root, "bob"), target: "/data", readOnly: true, root },
    ]);
  });

  it("come after the profile's fixed mounts, each of which is its own root", () => {
    const spec = parseWorkloadSpec(
      { workloadId: "w", profile: "fixed", mounts: [{ source: join(root, "bob"), target: "/bob" }] },
      profiles,
    );
    expect(spec.mounts).toEqual([
      { source: join(base, "shared"), target: "/shared", readOnly: true, root: join(base, "shared") },
      { source: join(root, "bob"), target: "/bob", readOnly: false, root },
    ]);
  });

  it("cannot escape the roots through '..' or a planted symbolic link", () => {
    expect(
      refusal({
        workloadId: "w",
        profile: "rooted",
        mounts: [
          { source: join(root, "alice", "..", "..", "outside"), target: "/a" },
          { source: join(root, "alice", "escape"), target: "/b" },
          { source: base, target: "/c" },
        ],
      }).map((i) => i.path),
    ).toEqual(["mounts.0.source", "mounts.1.source", "mounts.2.source"]);
  });

  it("are refused, naming the field, when the source is relative or missing or the target is not a clean absolute path", () => {
    const issues = refusal({
      workloadId: "w",
      profile: "rooted",
      mounts: [
        { source: "alice", target: "/a" },
        { source: join(root, "nobody"), target: "/b" },
        { source: join(root, "alice"), target: "work" },
        { source: join(root, "alice"), target: "/x/../etc" },
        { source: join(root, "bob"), target: "/" },
        { source: join(root, "bob"), target: "/a" },
      ],
    });
    expect(issues).toEqual([
      { path: "mounts.0.source", message: "must be an absolute host path" },
      { path: "mounts.1.source", message: "does not exist on this host" },
      { path: "mounts.2.target", message: "must be an absolute path inside the workload" },
      { path: "mounts.3.target", message: "must be a normalized path (no '.', '..' or '//')" },
      { path: "mounts.4.target", message: "must not be the workload's root" },
      { path: "mounts.5.target", message: "/a is mounted twice" },
    ]);
  });

  it("are refused under a profile that names no roots", () => {
    expect(refusal({ workloadId: "w", profile: "closed", mounts: [{ source: root, target: "/r" }] })).toEqual(
      [{ path: "mounts", message: expect.stringContaining("names no mountRoots") }],
    );
  });

  it("are checked by the schema for their shape", () => {
    expect(
      refusal({ workloadId: "w", profile: "rooted", mounts: [{ source: root, target: "/r", rw: true }] }),
    ).toEqual([{ path: "mounts.0.rw", message: "is not a known field" }]);
    expect(refusal({ workloadId: "w", profile: "rooted", mounts: "/r" }).map((i) => i.path)).toEqual([
      "mounts",
    ]);
  });
});

describe("a workspace", () => {
  it("is taken as given under a profile without roots", () => {
    expect(
      parseWorkloadSpec({ workloadId: "w", profile: "closed", workspace: "/any" }, profiles).workspace,
    ).toBe("/any");
  });

  it("obeys the profile's roots, links resolved, when it names any", () => {
    expect(
      parseWorkloadSpec({ workloadId: "w", profile: "rooted", workspace: join(base, "to-bob") }, profiles)
        .workspace,
    ).toBe(join(root, "bob"));
    expect(refusal({ workloadId: "w", profile: "rooted", workspace: join(root, "alice", "escape") })).toEqual(
      [{ path: "workspace", message: expect.stringContaining("mountRoots") }],
    );
  });
});

describe("the start request", () => {
  it("carries the checked set, and a refused spec starts nothing", async () => {
    const backend = new FakeBackend();
    const kernel = createRuntimeKernel({ backend, profiles, clock: new ManualClock() });
    await kernel.create({
      workloadId: "w",
      profile: "fixed",
      mounts: [{ source: join(base, "to-bob"), target: "/bob" }],
    });
    await expect(
      kernel.create({ workloadId: "x", profile: "fixed", mounts: [{ source: outside, target: "/o" }] }),
    ).rejects.toBeInstanceOf(InvalidSpecError);
    expect(backend.workloads().map((w) => w.request.mounts)).toEqual([
      [
        { source: join(base, "shared"), target: "/shared", readOnly: true, root: join(base, "shared") },
        { source: join(root, "bob"), target: "/bob", readOnly: false, root },
      ],
    ]);
    await kernel.shutdown();
  });
});
