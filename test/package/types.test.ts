import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { specifier, typeCheck } from "./support.js";

/**
 * A consumer's strict TypeScript build of every entry, as ESM (`.mts`) and as CommonJS
 * (`.cts`), with the type checking of libraries left on: the declarations the tarball ships
 * (and those of the optional peers they name) must hold up under `strict` without `skipLibCheck`.
 */
const { full, entries } = inject("pkg");

describe("the packed package's types", () => {
  it("pass a consumer's tsc --strict without skipLibCheck, from ESM and from CommonJS", async () => {
    const dir = join(full, "strict");
    mkdirSync(dir, { recursive: true });
    const imports = entries.map((entry, i) => `import * as entry${i} from "${specifier(entry)}";`).join("\n");
    const every = `export const entries = [${entries.map((_, i) => `entry${i}`).join(", ")}];`;
    // A few typed uses: options that reach the optional peers' own types.
    const uses = `
      import { createRuntimeKernel, ProcessBackend, type WorkloadStatus } from "runtime-kernel";
      import { DockerBackend } from "runtime-kernel/docker";
      import { KubernetesBackend } from "runtime-kernel/kubernetes";
      export const kernel = createRuntimeKernel({
        backend: new ProcessBackend({ stateDir: "/tmp/x" }),
        profiles: { agent: { runnable: { command: ["node", "agent.js"] } } },
      });
      export const docker = () => new DockerBackend({ socketPath: "/var/run/docker.sock" });
      export const kubernetes = () =>
        new KubernetesBackend({
          namespace: "agents",
          profiles: { agent: { tolerations: [{ key: "pool", operator: "Exists" }], securityContext: { runAsUser: 0 } } },
        });
      export const exitOf = (s: WorkloadStatus): number | undefined => s.exitCode;
      import { createScheduler, openJournalStore, type ScheduleJob } from "runtime-kernel/schedule";
      export const schedule = async () => {
        const scheduler = createScheduler({ store: await openJournalStore({ path: "/tmp/j" }), kernel, timeZone: "UTC" });
        const job: ScheduleJob = await scheduler.schedule({ cron: "0 9 * * 1", workload: { profile: "agent" } });
        return job.execute_at;
      };`;
    writeFileSync(join(dir, "every.mts"), `${imports}\n${every}\n`);
    writeFileSync(join(dir, "every.cts"), `${imports}\n${every}\n`);
    writeFileSync(join(dir, "uses.mts"), uses);
    const result = await typeCheck(dir, ["every.mts", "every.cts", "uses.mts"]);
    expect(result.stdout + result.stderr).toBe("");
    expect(result.code).toBe(0);
  });
});
