import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { exec, script, specifier } from "./support.js";

/**
 * Every entry of the packed tarball loads from ESM and from CommonJS, with the same exports;
 * the light entries load without the optional peers and without a test runner; an entry whose
 * optional peer is missing fails with an error that says what to install.
 */
const { bare, full, entries } = inject("pkg");

/** Each entry's export names (or its load error), as `import` or `require` sees them. */
const LOAD_ALL = {
  esm: `
    const out = {};
    for (const spec of JSON.parse(process.argv[1])) {
      try { out[spec] = Object.keys(await import(spec)).sort(); }
      catch (e) { out[spec] = { code: e.code, message: e.message }; }
    }
    console.log(JSON.stringify(out));`,
  cjs: `
    const out = {};
    for (const spec of JSON.parse(process.argv[1])) {
      try { out[spec] = Object.keys(require(spec)).sort(); }
      catch (e) { out[spec] = { code: e.code, message: e.message }; }
    }
    console.log(JSON.stringify(out));`,
};

async function loadAll(cwd: string, kind: "esm" | "cjs", specs: string[]) {
  const result = await script(cwd, kind, LOAD_ALL[kind], [JSON.stringify(specs)]);
  expect(result.stderr).toBe("");
  return JSON.parse(result.stdout) as Record<string, string[] | { code: string; message: string }>;
}

describe("the packed package", () => {
  it("loads every entry from ESM and from CommonJS, with the same exports", async () => {
    const specs = entries.map(specifier);
    const [esm, cjs] = await Promise.all([loadAll(full, "esm", specs), loadAll(full, "cjs", specs)]);
    for (const spec of specs) {
      expect(
        Array.isArray(esm[spec]) && esm[spec].length > 0,
        `${spec} from ESM: ${JSON.stringify(esm[spec])}`,
      ).toBe(true);
      // vitest refuses require() itself, so its entry is for ESM test files (as vitest's are).
      if (spec === "runtime-kernel/testing/vitest") {
        expect(cjs[spec]).toMatchObject({
          message: expect.stringContaining("Vitest cannot be imported in a CommonJS module"),
        });
      } else {
        expect(cjs[spec], `${spec} from CommonJS`).toEqual(esm[spec]);
      }
    }
    expect(esm["runtime-kernel"]).toEqual(expect.arrayContaining(["createRuntimeKernel", "ProcessBackend"]));
    expect(esm["runtime-kernel/testing/vitest"]).toEqual(["describeBackendConformance"]);
  });

  it("runs the conformance suite from runtime-kernel/testing/vitest under the project's own vitest", async () => {
    writeFileSync(
      join(full, "fake.test.mjs"),
      `import { FakeBackend } from "runtime-kernel/testing";
       import { describeBackendConformance } from "runtime-kernel/testing/vitest";
       const fake = new FakeBackend();
       const ofRun = (h) => fake.workloads().filter((w) => w.handle.runId === h.runId);
       describeBackendConformance("FakeBackend", () => fake, {
         longRunning: { command: ["sleep"] },
         exitWith: (code) => ({ command: ["exit"], fake: { exitAfterMs: 10, exitCode: code } }),
         ignoresTerminate: { command: ["stubborn"], fake: { ignoreTerminate: true } },
         cannotStart: { command: ["missing"], fake: { startError: "no such program" } },
         prints: (lines) => ({ command: ["print"], fake: { output: lines } }),
         leftovers: async (h) => ({
           running: ofRun(h).filter((w) => !w.exit).map((w) => w.handle.runId),
           stored: ofRun(h).map((w) => w.handle.runId),
         }),
       });`,
    );
    const result = await exec(
      full,
      process.execPath,
      [join(full, "node_modules/vitest/vitest.mjs"), "run", "fake.test.mjs"],
      {
        ...process.env,
        NO_COLOR: "1",
      },
    );
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/Tests\s+\d+ passed/);
  });

  it("installs without the optional peers: no Docker or Kubernetes client, no native install script", () => {
    for (const name of ["dockerode", "ssh2", "cpu-features", "@kubernetes/client-node", "vitest"]) {
      expect(existsSync(join(bare, "node_modules", name)), name).toBe(false);
    }
  });

  it("loads the main, testing, server, http, gestalt and schedule entries with nothing but its dependencies", async () => {
    const light = [
      "runtime-kernel",
      "runtime-kernel/testing",
      "runtime-kernel/server",
      "runtime-kernel/http",
      "runtime-kernel/gestalt",
      "runtime-kernel/schedule",
    ];
    for (const kind of ["esm", "cjs"] as const) {
      const loaded = await loadAll(bare, kind, light);
      for (const spec of light) expect(Array.isArray(loaded[spec]), `${spec} (${kind})`).toBe(true);
    }
  });

  it("runs the fake backend and the manual clock with no test runner installed", async () => {
    const body = (load: string) => `
      ${load}
      (async () => {
        const clock = new ManualClock();
        const kernel = createRuntimeKernel({
          backend: new FakeBackend({ clock }),
          clock,
          profiles: { agent: { runnable: { command: ["agent"] }, idleTimeoutMs: 60000 } },
        });
        await kernel.create({ workloadId: "w1", profile: "agent" });
        await clock.advance(60000);
        console.log(kernel.get("w1").stopReason);
        await kernel.shutdown();
      })();`;
    const [esm, cjs] = await Promise.all([
      script(
        bare,
        "esm",
        body(`import { createRuntimeKernel } from "runtime-kernel";
              import { FakeBackend, ManualClock } from "runtime-kernel/testing";`),
      ),
      script(
        bare,
        "cjs",
        body(`const { createRuntimeKernel } = require("runtime-kernel");
              const { FakeBackend, ManualClock } = require("runtime-kernel/testing");`),
      ),
    ]);
    expect(esm).toMatchObject({ code: 0, stdout: "idle_timeout\n", stderr: "" });
    expect(cjs).toMatchObject({ code: 0, stdout: "idle_timeout\n", stderr: "" });
  });

  it("fires a scheduled job on the journal store with no optional peer installed", async () => {
    const body = (load: string) => `
      ${load}
      const { mkdtempSync } = require("node:fs");
      const { join } = require("node:path");
      const { tmpdir } = require("node:os");
      (async () => {
        const clock = new ManualClock();
        const store = await openJournalStore({ path: join(mkdtempSync(join(tmpdir(), "rk-")), "j"), clock });
        const scheduler = createScheduler({ store, clock, dispatch: async () => ({ status_code: 204 }) });
        const job = await scheduler.schedule({ cron: "*/5 * * * *", request: { url: "http://svc.test/" } });
        await clock.advance(300000);
        const fired = await scheduler.get(job.job_id);
        console.log(fired.result.status_code, fired.status);
        await scheduler.close();
        await openRedisStore({ url: "redis://127.0.0.1:1" }).catch((e) => console.log(e.code, e.message));
      })();`;
    const esmLoad = `import { createRequire } from "node:module";
      const require = createRequire(import.meta.url);
      import { createScheduler, openJournalStore, openRedisStore } from "runtime-kernel/schedule";
      import { ManualClock } from "runtime-kernel/testing";`;
    const cjsLoad = `const { createScheduler, openJournalStore, openRedisStore } = require("runtime-kernel/schedule");
      const { ManualClock } = require("runtime-kernel/testing");`;
    const expected = {
      code: 0,
      stdout:
        "204 pending\nSTORE_UNAVAILABLE openRedisStore (runtime-kernel/schedule) needs the package ioredis, which is not installed (it is an optional peer dependency): npm install ioredis\n",
      stderr: "",
    };
    const [esm, cjs] = await Promise.all([
      script(bare, "esm", body(esmLoad)),
      script(bare, "cjs", body(cjsLoad)),
    ]);
    expect(esm).toMatchObject(expected);
    expect(cjs).toMatchObject(expected);
  });

  it("says which package to install when an optional peer is missing", async () => {
    const specs = ["runtime-kernel/docker", "runtime-kernel/kubernetes"];
    for (const kind of ["esm", "cjs"] as const) {
      const loaded = await loadAll(bare, kind, specs);
      expect(loaded["runtime-kernel/docker"], kind).toEqual({
        code: "BACKEND_UNAVAILABLE",
        message:
          "runtime-kernel/docker needs the package dockerode, which is not installed (it is an optional peer dependency): npm install dockerode",
      });
      expect(loaded["runtime-kernel/kubernetes"], kind).toMatchObject({
        code: "BACKEND_UNAVAILABLE",
        message: expect.stringContaining("npm install @kubernetes/client-node"),
      });
    }
  });
});
