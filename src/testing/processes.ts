/**
 * Finding a run's processes from outside the backend, for the conformance suite's
 * `leftovers` fixture: the suite puts `CONFORMANCE_RUN_ID=<runId>` in the environment of
 * every run it starts, and every process the run starts inherits it, including children
 * that left its process group or session. Linux only (it reads /proc).
 * @module
 */
import { readdir, readFile } from "node:fs/promises";

/** A live process, as {@link processesWithEnv} finds it. */
export interface FoundProcess {
  pid: number;
  /** Its argv, joined with spaces. */
  command: string;
}

/**
 * The live processes whose environment holds `name=value`, read from /proc/<pid>/environ
 * (the environment they started with). Zombies, which have none left, are not listed;
 * neither are processes of other users when the caller may not read their environment.
 *
 * @example
 * ```ts
 * leftovers: async (handle) => ({
 *   running: (await processesWithEnv("CONFORMANCE_RUN_ID", handle.runId)).map((p) => `pid ${p.pid}: ${p.command}`),
 *   stored: [],
 * }),
 * ```
 */
export async function processesWithEnv(name: string, value: string): Promise<FoundProcess[]> {
  const wanted = `${name}=${value}`;
  const found: FoundProcess[] = [];
  await Promise.all(
    (await readdir("/proc")).map(async (entry) => {
      if (!/^\d+$/.test(entry)) return;
      try {
        const environ = await readFile(`/proc/${entry}/environ`, "latin1");
        if (!environ.split("\0").includes(wanted)) return;
        const argv = await readFile(`/proc/${entry}/cmdline`, "utf8");
        found.push({ pid: Number(entry), command: argv.split("\0").filter(Boolean).join(" ") });
      } catch {
        // Gone meanwhile, or not ours to read.
      }
    }),
  );
  return found.sort((a, b) => a.pid - b.pid);
}
