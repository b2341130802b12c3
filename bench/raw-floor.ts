/**
 * The raw floor the process benches measure the kernel beside: plain `child_process.spawn`
 * of `sleep`, nothing else, so every bench compares against the same thing.
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";

/** Spawns `n` `sleep 60`s at once; resolves with them once each has spawned. */
export function spawnSleepers(n: number, options: { detached?: boolean } = {}): Promise<ChildProcess[]> {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ChildProcess>((resolve, reject) => {
          const child = spawn("sleep", ["60"], { stdio: "ignore", detached: options.detached ?? false });
          child.once("spawn", () => resolve(child)).once("error", reject);
        }),
    ),
  );
}
