/**
 * What the process integration tests share: a private state dir per test file, a look at
 * /proc for what is really running, and a teardown that proves nothing is left behind.
 */
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmdirSync,
  rmSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ProcessBackend, type ProcessBackendOptions } from "../../../src/backends/process/index.js";
import type { JournalEntry } from "../../../src/backends/process/protocol.js";
import { parseJournalLine, signedLine } from "../../../src/backends/process/supervisor-journal.js";
import type { RuntimeKernel, TransitionEvent } from "../../../src/index.js";

/** A fresh state dir under the system temp dir (short, so the socket path fits). */
export function tempStateDir(prefix = "rk-proc-"): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A backend on a fresh state dir, with a short supervisor idle time. */
export function newBackend(options: Partial<ProcessBackendOptions> = {}): ProcessBackend {
  return new ProcessBackend({
    supervisorIdleMs: 5_000,
    ...options,
    stateDir: options.stateDir ?? tempStateDir(),
  });
}

/** Fails loudly (never skips) where a test needs root: to act as a second user, or to mount a file system. */
export function requireRoot(what: string): void {
  if (process.geteuid?.() !== 0) {
    throw new Error(`${what} needs root, as on the CI machines: run the process tier as root`);
  }
}

/**
 * A uid that no account on this machine uses: another local user as far as file ownership,
 * sockets and signals go (root can run a process as any uid, without an /etc/passwd entry).
 */
export function unusedUid(): number {
  const taken = new Set(
    readFileSync("/etc/passwd", "utf8")
      .split("\n")
      .map((line) => Number(line.split(":")[2])),
  );
  let uid = 40_000 + (process.pid % 20_000);
  while (taken.has(uid)) uid++;
  return uid;
}

/** A small disk: a tmpfs mounted on a fresh directory, which a test can fill up and empty again. */
export interface SmallDisk {
  dir: string;
  /** Whether `fill()` filled it (and `free()` did not empty it since). */
  readonly full: boolean;
  /** Writes a file until the file system has no page left. */
  fill(): void;
  /** Removes that file. */
  free(): void;
  /** Unmounts it and removes its directory, once nothing works in it any more. */
  unmount(): Promise<void>;
}

/** A tmpfs of `sizeKiB` (root only). */
export function mountTmpfs(sizeKiB: number): SmallDisk {
  const dir = mkdtempSync(join(tmpdir(), "rk-tmpfs-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeKiB}k,mode=0700`, "tmpfs", dir]);
  const filler = join(dir, "filler");
  let full = false;
  const inside = (link: string) => {
    try {
      return readlinkSync(link).startsWith(dir);
    } catch {
      return false;
    }
  };
  const holders = () =>
    readdirSync("/proc").filter((pid) => {
      if (!/^\d+$/.test(pid)) return false;
      if (inside(`/proc/${pid}/cwd`)) return true;
      try {
        return readdirSync(`/proc/${pid}/fd`).some((fd) => inside(`/proc/${pid}/fd/${fd}`));
      } catch {
        return false;
      }
    });
  return {
    dir,
    get full() {
      return full;
    },
    fill() {
      const fd = openSync(filler, "a");
      const chunk = Buffer.alloc(64 * 1024, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
      } finally {
        closeSync(fd);
      }
      full = true;
    },
    free() {
      rmSync(filler, { force: true });
      full = false;
    },
    async unmount() {
      try {
        // A supervisor that was launched and found the state dir taken may still be exiting in it.
        await eventually(() => holders().length === 0, 5_000, `nothing to work in ${dir}`);
        execFileSync("umount", [dir], { stdio: "pipe" });
      } catch (error) {
        // Busy: detach it so nothing is left mounted, and fail naming what holds it.
        const names = holders()
          .map((pid) => `${pid} ${readFileSync(`/proc/${pid}/cmdline`, "latin1").replaceAll("\0", " ")}`)
          .join(", ");
        execFileSync("umount", ["-l", dir]);
        throw new Error(`${dir} is busy (processes working in it: ${names || "none"})`, { cause: error });
      } finally {
        rmdirSync(dir);
      }
    },
  };
}

/** Signs as the supervisors of `stateDir` sign their journal lines (with its journal.key). */
export function journalSigner(stateDir: string): (body: string) => string {
  const key = readFileSync(join(stateDir, "journal.key"), "latin1");
  return (body) => createHmac("sha256", key).update(body).digest("base64url");
}

/** Journal lines as a supervisor of `stateDir` writes them. */
export function signedJournal(stateDir: string, entries: JournalEntry[]): string {
  const sign = journalSigner(stateDir);
  return entries.map((entry) => signedLine(entry, sign)).join("");
}

/** What is wrong with the lines of the journal of `stateDir`, checked as its supervisor checks them. */
export function journalProblems(stateDir: string): string[] {
  const sign = journalSigner(stateDir);
  return readFileSync(join(stateDir, "journal.ndjson"), "utf8")
    .split("\n")
    .filter(Boolean)
    .flatMap((line) => {
      const parsed = parseJournalLine(line, sign);
      return "problem" in parsed ? [`${parsed.problem}: ${line.slice(0, 80)}`] : [];
    });
}

/** Fields of /proc/<pid>/stat after the command name: [state, ppid, pgrp, ...]. */
function statOf(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "latin1");
    return text.slice(text.lastIndexOf(")") + 2).split(" ");
  } catch {
    return undefined;
  }
}

/** Pids of the live (non-zombie) processes whose process group is one of `pgids`. */
export function livingInGroups(pgids: Iterable<number>): number[] {
  const wanted = new Set(pgids);
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid)) continue;
    const stat = statOf(pid);
    if (stat && wanted.has(Number(stat[2])) && stat[0] !== "Z" && stat[0] !== "X") out.push(pid);
  }
  return out;
}

/**
 * Pids of the live processes whose environment holds `name=value` (any value when omitted):
 * how a test finds what runs of its workloads, tracked or not.
 */
export function livingWithEnv(name: string, value?: string): number[] {
  const wanted = value === undefined ? `${name}=` : `${name}=${value}\0`;
  const out: number[] = [];
  for (const entry of readdirSync("/proc")) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || !isRunning(pid)) continue;
    let environ: string;
    try {
      environ = `\0${readFileSync(`/proc/${pid}/environ`, "latin1")}`;
    } catch {
      continue;
    }
    if (environ.includes(`\0${wanted}`)) out.push(pid);
  }
  return out;
}

/** Whether a process with this pid exists and is not a zombie. */
export function isRunning(pid: number): boolean {
  const stat = statOf(pid);
  return stat !== undefined && stat[0] !== "Z" && stat[0] !== "X";
}

/** Waits until `check()` holds, polling (for the substrate's own pace: processes dying). */
export async function eventually(
  check: () => boolean,
  timeoutMs = 10_000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Records every transition of a kernel. */
export function recordEvents(kernel: RuntimeKernel): TransitionEvent[] {
  const events: TransitionEvent[] = [];
  kernel.on("transition", (event) => events.push(event));
  return events;
}

/** The states one workload went through, in order. */
export function statesOf(events: TransitionEvent[], workloadId: string): string[] {
  return events.filter((e) => e.workloadId === workloadId).map((e) => e.state);
}

/**
 * Stops the backend's supervisor (killing anything still running), removes the state dir,
 * and checks that no supervisor process serves it any more.
 */
export async function teardown(backend: ProcessBackend): Promise<void> {
  let pid: number | undefined;
  try {
    // No socket: the supervisor exited by itself (it removes its socket), with nothing running.
    if (existsSync(join(backend.stateDir, "supervisor.sock"))) {
      pid = (await backend.supervisorStats()).pid;
      await backend.stopSupervisor({ force: true });
    }
  } finally {
    rmSync(backend.stateDir, { recursive: true, force: true });
  }
  if (pid !== undefined)
    await eventually(() => !isRunning(pid as number), 5_000, `supervisor ${pid} to exit`);
}
