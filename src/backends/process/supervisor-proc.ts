/**
 * What the supervisor reads of /proc: a process's start time, state and group, the soft
 * limits, the boot id, and which processes write to a file. It only reads: it signals
 * nothing and never touches the state dir. Part of the supervisor's program (see
 * `supervisor.ts`): each function reaches Node only through its parameters.
 * @module
 */
import type * as FsModule from "node:fs";

/**
 * Field 22 (starttime) of /proc/<pid>/stat, whether the process is a zombie, and its process
 * group; `undefined` when there is no such process. Parsed after the last `)` because the
 * command name may contain spaces and parentheses.
 */
export function readProcStat(
  fs: Pick<typeof FsModule, "openSync" | "readSync" | "closeSync">,
  pid: number,
): { startTime: number; zombie: boolean; pgid: number } | undefined {
  // open/read/close into a small buffer: a third of readFileSync's cost on /proc (whose
  // files report size 0), and this runs for every start and every liveness check.
  const buffer = Buffer.allocUnsafe(1024);
  let length: number;
  try {
    const fd = fs.openSync(`/proc/${pid}/stat`, "r");
    try {
      length = fs.readSync(fd, buffer, 0, buffer.length, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return undefined;
  }
  const text = buffer.toString("latin1", 0, length);
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  // rest[0] is field 3 (state), rest[2] field 5 (process group); field 22 is rest[19].
  return { startTime: Number(rest[19]), zombie: rest[0] === "Z" || rest[0] === "X", pgid: Number(rest[2]) };
}

/** The soft limits of /proc/self/limits that the budgets need (`Infinity` for unlimited). */
export function readLimits(fs: Pick<typeof FsModule, "readFileSync">): {
  openFiles: number;
  processes: number;
} {
  const out = { openFiles: Number.POSITIVE_INFINITY, processes: Number.POSITIVE_INFINITY };
  let text = "";
  try {
    text = fs.readFileSync("/proc/self/limits", "latin1");
  } catch {
    return out;
  }
  for (const line of text.split("\n")) {
    const soft = line.slice(26).trim().split(/\s+/)[0];
    const value = soft === undefined || soft === "unlimited" ? Number.POSITIVE_INFINITY : Number(soft);
    if (line.startsWith("Max open files")) out.openFiles = value;
    else if (line.startsWith("Max processes")) out.processes = value;
  }
  return out;
}

/**
 * This boot's id (a pid and a start time only mean something within one boot; empty when
 * unreadable) and the largest pid the kernel hands out (32,768 when unreadable).
 */
export function readSystem(fs: Pick<typeof FsModule, "readFileSync">): { bootId: string; pidMax: number } {
  let pidMax = 32768;
  try {
    pidMax = Number(fs.readFileSync("/proc/sys/kernel/pid_max", "latin1")) || pidMax;
  } catch {}
  let bootId = "";
  try {
    bootId = fs.readFileSync("/proc/sys/kernel/random/boot_id", "latin1").trim();
  } catch {}
  return { bootId, pidMax };
}

/** The processes other than `selfPid` that hold one of `inodes` (`dev:ino`) open for writing. */
export function writersOf(
  fs: Pick<typeof FsModule, "readdirSync" | "statSync" | "readFileSync">,
  inodes: Set<string>,
  selfPid: number,
): number[] {
  const out: number[] = [];
  for (const entry of fs.readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === selfPid) continue;
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to look at
    }
    for (const fd of fds) {
      try {
        const stat = fs.statSync(`/proc/${pid}/fd/${fd}`);
        if (!inodes.has(`${stat.dev}:${stat.ino}`)) continue;
        const flags = /flags:\s+([0-7]+)/.exec(fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, "latin1"));
        // O_WRONLY or O_RDWR: the workload's stdout or stderr, not a reader such as `tail -f`.
        if (flags && (Number.parseInt(flags[1] as string, 8) & 3) !== 0) {
          out.push(pid);
          break;
        }
      } catch {}
    }
  }
  return out;
}

/** The resident memory of a process in bytes (0 when it cannot be read). */
export function readRss(fs: Pick<typeof FsModule, "readFileSync">, pid: number): number {
  try {
    const kib = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, "latin1"));
    return kib ? Number(kib[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}
