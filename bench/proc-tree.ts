/**
 * A process tree as /proc shows it, for the benches that count a workload's processes (a
 * sandbox is several) and wait for its command to run.
 * @module
 */
import { readFileSync } from "node:fs";

/** A process and all its descendants, by /proc's children lists. */
export function tree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    const p = out[i] as number;
    try {
      for (const child of readFileSync(`/proc/${p}/task/${p}/children`, "latin1").split(" ")) {
        if (child.trim()) out.push(Number(child));
      }
    } catch {
      // Gone meanwhile.
    }
  }
  return out;
}

/** A process's command name, or "" once it is gone. */
export function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "latin1").trim();
  } catch {
    return "";
  }
}

/** Resolves once every tree of `pids` runs a `sleep` (a sandbox's command is past its setup). */
export async function untilCommandsRun(pids: number[]): Promise<void> {
  const runs = (pid: number) => tree(pid).some((p) => comm(p) === "sleep");
  while (!pids.every(runs)) await new Promise((resolve) => setTimeout(resolve, 20));
}
