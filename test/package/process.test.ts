import { describe, expect, inject, it } from "vitest";
import { script } from "./support.js";

/**
 * A real process workload through the packed package, from ESM and from CommonJS: each build
 * writes and launches its own copy of the process supervisor's program.
 */
const { bare } = inject("pkg");

const RUN = `
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "rk-package-process-"));
  const backend = new ProcessBackend({ stateDir: dir });
  const kernel = createRuntimeKernel({
    backend,
    profiles: { job: { runnable: { command: ["sh", "-c", "echo hello from $KIND; exit 3"] } } },
  });
  const stopped = new Promise((resolve) => kernel.on("stopped", resolve));
  await kernel.create({ workloadId: "w1", profile: "job", env: { KIND: process.argv[1] } });
  const event = await stopped;
  const lines = [];
  for await (const entry of kernel.logs("w1")) lines.push(entry.line);
  await kernel.destroy("w1");
  await kernel.shutdown();
  await backend.stopSupervisor({ force: true });
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify({ exitCode: event.exitCode, stopReason: event.stopReason, lines }));`;

describe("a process workload from the packed package", () => {
  it.each([
    [
      "esm",
      `import fs from "node:fs"; import os from "node:os"; import path from "node:path";
       import { createRuntimeKernel, ProcessBackend } from "runtime-kernel";
       ${RUN}`,
    ],
    [
      "cjs",
      `const fs = require("node:fs"), os = require("node:os"), path = require("node:path");
       const { createRuntimeKernel, ProcessBackend } = require("runtime-kernel");
       (async () => { ${RUN} })().catch((e) => { console.error(e); process.exit(1); });`,
    ],
  ] as const)("runs, exits with its code and keeps its output (%s)", async (kind, source) => {
    const result = await script(bare, kind, source, [kind]);
    expect(result.stderr).toBe("");
    expect(JSON.parse(result.stdout)).toEqual({
      exitCode: 3,
      stopReason: "failed",
      lines: [`hello from ${kind}`],
    });
  });
});
