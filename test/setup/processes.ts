import { readFileSync } from "node:fs";
/**
 * Whether SIGTERM (signal 15) is in one of a process's signal masks, per /proc/<pid>/status:
 * `SigCgt` (it has a handler) or `SigIgn` (it ignores it). False once the process is gone.
 */
export function sigtermIn(pid: number, mask: "SigCgt" | "SigIgn"): boolean {
  try {
    const bits =
      new RegExp(`${mask}:\\s+([0-9a-f]+)`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? "0";
    return (BigInt(`0x${bits}`) & (1n << 14n)) !== 0n;
  } catch {
    return false;
  }
}

/** Whether a process with this pid exists (ours or another user's). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
