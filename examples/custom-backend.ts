/**
 * Writing a backend: the five-method port, implemented over plain child processes in a
 * few dozen lines, then driven by the kernel.  Run: npx tsx examples/custom-backend.ts
 *
 * (The real ProcessBackend adds a crash-safe supervisor, log files, budgets and
 * recovery; this one shows the contract and nothing else.)
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  type Backend,
  createRuntimeKernel,
  type ExitStatus,
  exitCodeForSignal,
  StartFailedError,
  type StartRequest,
  type WorkloadHandle,
  WorkloadLostError,
} from "runtime-kernel";

interface TinyHandle extends WorkloadHandle {
  backend: "tiny";
  pid: number;
}

class TinyProcessBackend implements Backend<TinyHandle> {
  readonly name = "tiny";
  readonly #children = new Map<string, { child: ChildProcess; exit: ExitStatus | null }>();

  async start(request: StartRequest, { signal }: { signal: AbortSignal }): Promise<TinyHandle> {
    const [program, ...args] = request.runnable.command ?? [];
    if (!program) throw new StartFailedError(request.workloadId, "runnable.command is empty");
    // argv, never a shell string; only the environment the kernel built (secrets included).
    const child = spawn(program, args, { env: request.env, stdio: "ignore", signal });
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", resolve);
      child.once("error", (e) => reject(new StartFailedError(request.workloadId, e.message, { cause: e })));
    });
    const entry = { child, exit: null as ExitStatus | null };
    child.once("exit", (code, sig) => {
      entry.exit = sig ? { exitCode: exitCodeForSignal(sig), signal: sig } : { exitCode: code ?? 0 };
    });
    this.#children.set(request.runId, entry);
    return {
      workloadId: request.workloadId,
      runId: request.runId,
      backend: "tiny",
      pid: child.pid as number,
    };
  }

  async exitCode(handle: TinyHandle): Promise<number | null> {
    const entry = this.#children.get(handle.runId);
    if (!entry) throw new WorkloadLostError(handle.workloadId);
    return entry.exit ? entry.exit.exitCode : null;
  }

  async terminate(handle: TinyHandle): Promise<void> {
    this.#children.get(handle.runId)?.child.kill("SIGTERM");
  }

  async kill(handle: TinyHandle): Promise<void> {
    this.#children.get(handle.runId)?.child.kill("SIGKILL");
  }

  async cleanup(handle: TinyHandle): Promise<void> {
    const entry = this.#children.get(handle.runId);
    if (entry && !entry.exit) entry.child.kill("SIGKILL");
    this.#children.delete(handle.runId); // idempotent: a second cleanup finds nothing to do
  }
}

// No watchExit: the kernel polls exitCode for all running handles on one shared timer.
const kernel = createRuntimeKernel({
  backend: new TinyProcessBackend(),
  pollIntervalMs: 100,
  profiles: { job: { runnable: { command: ["sh", "-c", "sleep 0.2; exit 4"] } } },
});
kernel.on("transition", (e) =>
  console.log(`${e.workloadId} ${e.from ?? "∅"} -> ${e.state}`, e.exitCode ?? ""),
);
await kernel.create({ workloadId: "tiny-1", profile: "job" });
const stopped = await kernel.waitFor("tiny-1", "stopped");
console.log(`exit ${stopped.exitCode} (${stopped.stopReason})`);
await kernel.shutdown();
