/**
 * A complete backend in under 170 lines of code, which passes the whole conformance suite
 * (minimal-backend.test.ts beside it: `npx vitest run examples/minimal-backend`).
 *
 * Each run is a process group (a child in its own session), with its output and its state in
 * files under one directory, so that a second instance over the same directory (a restarted
 * kernel) finds its runs again. Only the instance that started a run sees it exit (it is the
 * parent): a run whose parent is gone when it ends is reported lost. ProcessBackend adds what
 * this one leaves out: a supervisor that outlives the kernel, pid-reuse checks, log rotation,
 * resource budgets.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type Backend,
  CleanupFailedError,
  type DiscoveredWorkload,
  type ExitStatus,
  exitCodeForSignal,
  LABELS,
  type LogEntry,
  type LogOptions,
  StartAbortedError,
  StartFailedError,
  type StartRequest,
  type WorkloadHandle,
  WorkloadLostError,
} from "runtime-kernel";

export interface MinimalHandle extends WorkloadHandle {
  backend: "minimal";
  /** The workload's pid, which is also its process group's id. */
  pid: number;
}

const FILES = ["run", "exit", "out", "err"] as const;
const POLL_MS = 50;

export class MinimalBackend implements Backend<MinimalHandle> {
  readonly name = "minimal";
  readonly #watches = new Set<() => void>();

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }

  async start(request: StartRequest, { signal }: { signal: AbortSignal }): Promise<MinimalHandle> {
    const { workloadId, runId } = request;
    if (signal.aborted) throw new StartAbortedError(workloadId, { cause: signal.reason });
    const [program, ...args] = request.runnable.command ?? [];
    if (!program) throw new StartFailedError(workloadId, "runnable.command is empty");
    const out = openSync(this.#file(runId, "out"), "w", 0o600);
    const err = openSync(this.#file(runId, "err"), "w", 0o600);
    // detached: its own session and process group, so a signal to -pid reaches all it starts.
    const child = spawn(program, args, {
      detached: true,
      stdio: ["ignore", out, err],
      env: { PATH: process.env.PATH, ...request.env },
    });
    closeSync(out);
    closeSync(err);
    try {
      await once(child, "spawn"); // rejects with the spawn's error (ENOENT, EACCES, ...)
    } catch (error) {
      this.#remove(runId);
      throw new StartFailedError(workloadId, `cannot run ${program}: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const handle: MinimalHandle = { workloadId, runId, backend: "minimal", pid: child.pid as number };
    writeFileSync(this.#file(runId, "run"), JSON.stringify({ handle, labels: request.labels }));
    child.once("exit", (code, name) => {
      const exit = name ? { exitCode: exitCodeForSignal(name), signal: name } : { exitCode: code };
      // Never for a run cleaned up meanwhile: that would leave a file behind.
      if (existsSync(this.#file(runId, "run")))
        writeFileSync(this.#file(runId, "exit"), JSON.stringify(exit));
    });
    // The children never keep the host alive; an open watchExit does (its timer), until it fires.
    child.unref();
    if (signal.aborted) {
      await this.cleanup(handle);
      throw new StartAbortedError(workloadId, { cause: signal.reason });
    }
    return handle;
  }

  async exitCode(handle: MinimalHandle): Promise<number | null> {
    const status = this.#status(handle);
    if (status?.lost) throw new WorkloadLostError(handle.workloadId, `run ${handle.runId} is gone`);
    return status ? status.exitCode : null;
  }

  async terminate(handle: MinimalHandle): Promise<void> {
    if (!this.#status(handle)) this.#signal(handle, "SIGTERM");
  }

  async kill(handle: MinimalHandle): Promise<void> {
    if (!this.#status(handle)) this.#signal(handle, "SIGKILL");
  }

  async cleanup(handle: MinimalHandle): Promise<void> {
    // Also after the exit: what the workload left in its group goes too. (Its group id cannot
    // be reused while anything is left in it.)
    this.#signal(handle, "SIGKILL");
    // Until the parent has reaped the workload (and recorded its exit, which is removed next).
    const deadline = Date.now() + 10_000;
    while (this.#exists(handle.pid) && existsSync(this.#file(handle.runId, "run"))) {
      if (Date.now() > deadline)
        throw new CleanupFailedError(handle.workloadId, `pid ${handle.pid} survived SIGKILL`);
      await sleep(POLL_MS);
    }
    this.#remove(handle.runId);
  }

  watchExit(handle: MinimalHandle, onExit: (status: ExitStatus) => void): () => void {
    let timer: NodeJS.Timeout | undefined;
    const cancel = () => {
      clearTimeout(timer);
      this.#watches.delete(cancel);
    };
    const check = () => {
      const status = this.#status(handle);
      if (!status) timer = setTimeout(check, POLL_MS);
      else {
        cancel();
        onExit(status);
      }
    };
    // Never call back before returning (the caller has no unsubscribe function yet). The timer
    // keeps the host alive while it waits: a script awaiting an exit does not end before it.
    timer = setTimeout(check, 0);
    this.#watches.add(cancel);
    return cancel;
  }

  async discover({ kernelId }: { kernelId: string }): Promise<DiscoveredWorkload<MinimalHandle>[]> {
    return readdirSync(this.dir)
      .filter((file) => file.endsWith(".run"))
      .map(
        (file) =>
          JSON.parse(readFileSync(join(this.dir, file), "utf8")) as {
            handle: MinimalHandle;
            labels: Record<string, string>;
          },
      )
      .filter((run) => run.labels[LABELS.kernelId] === kernelId)
      .map((run) => ({ handle: run.handle, labels: run.labels, exit: this.#status(run.handle) }));
  }

  async *logs(handle: MinimalHandle, { follow, tail, signal }: LogOptions): AsyncIterable<LogEntry> {
    const streams = [
      { stream: "stdout" as const, kind: "out" as const, next: 0 },
      { stream: "stderr" as const, kind: "err" as const, next: 0 },
    ];
    for (let first = true; ; first = false) {
      const ended = this.#status(handle) !== null; // before reading: all written until the exit is drained
      for (const s of streams) {
        const path = this.#file(handle.runId, s.kind);
        const lines = (existsSync(path) ? readFileSync(path, "utf8") : "").split("\n");
        const complete = lines.length - 1; // the last one is not finished (or empty)
        if (first && tail !== undefined) s.next = Math.max(0, complete - tail);
        for (; s.next < complete; s.next++) yield { stream: s.stream, line: lines[s.next] as string };
      }
      if (!follow || ended || signal?.aborted) return;
      await sleep(POLL_MS, undefined, { signal }).catch(() => {});
    }
  }

  /** Stops every watch (their callbacks never fire). Workloads keep running, for a later instance. */
  async close(): Promise<void> {
    for (const cancel of [...this.#watches]) cancel();
  }

  /** The recorded exit; `lost` when there is none and the run is gone; `null` while it runs. */
  #status(handle: MinimalHandle): ExitStatus | null {
    const exit = this.#read(handle.runId, "exit");
    if (exit) return exit;
    if (existsSync(this.#file(handle.runId, "run")) && this.#exists(handle.pid)) return null;
    // Its parent (maybe in another process) may have recorded the exit since the first look.
    return this.#read(handle.runId, "exit") ?? { exitCode: null, lost: true };
  }

  #signal(handle: MinimalHandle, signal: NodeJS.Signals): void {
    // Only a run still on record: once cleaned up, its pid may belong to someone else.
    if (!existsSync(this.#file(handle.runId, "run"))) return;
    try {
      process.kill(-handle.pid, signal); // the whole group: the workload and all it started
    } catch {
      // ESRCH: nothing left to signal.
    }
  }

  #exists(pid: number): boolean {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  }

  #read(runId: string, kind: "exit"): ExitStatus | undefined {
    const path = this.#file(runId, kind);
    return existsSync(path) ? (JSON.parse(readFileSync(path, "utf8")) as ExitStatus) : undefined;
  }

  #remove(runId: string): void {
    for (const kind of FILES) rmSync(this.#file(runId, kind), { force: true });
  }

  #file(runId: string, kind: (typeof FILES)[number]): string {
    return join(this.dir, `${runId}.${kind}`);
  }
}
