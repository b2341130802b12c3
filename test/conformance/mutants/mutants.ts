/**
 * Backends broken on purpose, each in one way a backend author could get wrong: copies of
 * examples/minimal-backend (which passes the whole suite) with one method changed. Each names
 * the conformance tests that must catch it; test/conformance/mutants.test.ts checks that they do.
 * The first five are the broken ScriptBackends of issue 20, which passed the suite as it was.
 */
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { MinimalBackend, type MinimalHandle } from "../../../examples/minimal-backend/minimal-backend.js";
import {
  type ExitStatus,
  LABELS,
  type LogEntry,
  type LogOptions,
  type StartRequest,
} from "../../../src/backends/backend.js";
import { CleanupFailedError, StartAbortedError } from "../../../src/errors.js";

/** A broken backend, and the tests of the suite that must fail for it. */
export interface Mutant {
  make(dir: string): MinimalBackend;
  caughtBy: string[];
}

const record = (backend: MinimalBackend, runId: string) => join(backend.dir, `${runId}.run`);
/** Every run on record in the backend's directory. */
const runs = (backend: MinimalBackend): Array<{ handle: MinimalHandle; labels: Record<string, string> }> =>
  readdirSync(backend.dir)
    .filter((file) => file.endsWith(".run"))
    .map((file) => JSON.parse(readFileSync(join(backend.dir, file), "utf8")));
const never = { signal: new AbortController().signal };

export const MUTANTS: Record<string, Mutant> = {
  "cleanup deletes only its record, leaving the process group and the log files": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override async cleanup(handle: MinimalHandle) {
          rmSync(record(this, handle.runId), { force: true });
        }
      })(dir),
    caughtBy: [
      "cleanup after the exit leaves nothing of the run, and is idempotent",
      "cleanup of a running workload, and of one still dying from kill, leaves nothing",
      "every method on a cleaned-up run answers as the contract table says",
    ],
  },

  "signals reach the group leader only, so its children survive terminate and kill": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override async terminate(handle: MinimalHandle) {
          if ((await this.exitCode(handle).catch(() => 0)) === null) process.kill(handle.pid, "SIGTERM");
        }
        override async kill(handle: MinimalHandle) {
          if ((await this.exitCode(handle).catch(() => 0)) === null) process.kill(handle.pid, "SIGKILL");
        }
      })(dir),
    caughtBy: [
      "the workload's own child is gone once terminate has ended it",
      "the workload's own child is gone once kill has ended it",
    ],
  },

  "a watchExit made after the run exited never calls back": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override watchExit(handle: MinimalHandle, onExit: (status: ExitStatus) => void) {
          const late = existsSync(join(this.dir, `${handle.runId}.exit`));
          return super.watchExit(handle, (status) => {
            if (!late) onExit(status);
          });
        }
      })(dir),
    caughtBy: [
      "watchExit on a run that already exited calls back with its exit",
      "a second backend instance drives the first one's runs, and its close leaves them running",
    ],
  },

  "discover ignores kernelId": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override async discover() {
          const kernelIds = new Set(runs(this).map((run) => run.labels[LABELS.kernelId] ?? ""));
          return (await Promise.all([...kernelIds].map((kernelId) => super.discover({ kernelId })))).flat();
        }
      })(dir),
    caughtBy: ["discover finds this kernel's workloads by label with their state"],
  },

  "an aborted start leaves its run behind": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override start(request: StartRequest) {
          return super.start(request, never);
        }
      })(dir),
    caughtBy: [
      "a start whose signal is already aborted rejects with START_ABORTED and leaves nothing",
      "a start aborted while under way rejects with START_ABORTED and leaves nothing",
    ],
  },

  "start looks at its signal only before it begins": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override async start(request: StartRequest, { signal }: { signal: AbortSignal }) {
          if (signal.aborted) throw new StartAbortedError(request.workloadId);
          return super.start(request, never);
        }
      })(dir),
    caughtBy: ["a start aborted while under way rejects with START_ABORTED and leaves nothing"],
  },

  "a program that cannot run starts anyway, and exits 127 (through a shell)": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override start(request: StartRequest, options: { signal: AbortSignal }) {
          const command = ["sh", "-c", 'exec "$@"', "sh", ...(request.runnable.command ?? [])];
          return super.start({ ...request, runnable: { ...request.runnable, command } }, options);
        }
      })(dir),
    caughtBy: ["a runnable that cannot start rejects with START_FAILED and leaves nothing"],
  },

  "terminate kills (137 instead of 143)": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override terminate(handle: MinimalHandle) {
          return this.kill(handle);
        }
      })(dir),
    caughtBy: [
      "terminate ends a workload that honours the graceful signal with 128 + 15 = 143 (SIGTERM)",
      "the workload's own child is gone once terminate has ended it",
    ],
  },

  "watchExit may call back before it returns": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override watchExit(handle: MinimalHandle, onExit: (status: ExitStatus) => void) {
          const exit = join(this.dir, `${handle.runId}.exit`);
          if (!existsSync(exit)) return super.watchExit(handle, onExit);
          onExit(JSON.parse(readFileSync(exit, "utf8")));
          return () => {};
        }
      })(dir),
    caughtBy: ["watchExit on a run that already exited calls back with its exit"],
  },

  "terminate of a run that is gone rejects WORKLOAD_LOST": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override async terminate(handle: MinimalHandle) {
          await this.exitCode(handle);
          return super.terminate(handle);
        }
      })(dir),
    caughtBy: [
      "every method on a cleaned-up run answers as the contract table says",
      "every method on a run lost behind the backend's back answers as the contract table says",
    ],
  },

  "exitCode of a cleaned-up run says it still runs": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override async exitCode(handle: MinimalHandle) {
          return existsSync(record(this, handle.runId)) ? super.exitCode(handle) : null;
        }
      })(dir),
    caughtBy: [
      "every method on a cleaned-up run answers as the contract table says",
      "every method on a run lost behind the backend's back answers as the contract table says",
    ],
  },

  "cleanup refuses a workload that has not exited yet (the hooks no longer swallow it)": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override async cleanup(handle: MinimalHandle) {
          if ((await this.exitCode(handle).catch(() => 0)) === null)
            throw new CleanupFailedError(handle.workloadId, "still running");
          return super.cleanup(handle);
        }
      })(dir),
    caughtBy: [
      "cleanup of a running workload, and of one still dying from kill, leaves nothing",
      // Nothing in this test cleans up: only the kill-then-cleanup after it sees the failure.
      "exitCode is null while the workload runs",
    ],
  },

  "each instance knows only the runs it started": {
    make: (dir) =>
      new (class extends MinimalBackend {
        readonly mine = new Set<string>();
        override async start(request: StartRequest, options: { signal: AbortSignal }) {
          const handle = await super.start(request, options);
          this.mine.add(handle.runId);
          return handle;
        }
        override async exitCode(handle: MinimalHandle) {
          if (!this.mine.has(handle.runId)) return null;
          return super.exitCode(handle);
        }
      })(dir),
    caughtBy: ["a second backend instance drives the first one's runs, and its close leaves them running"],
  },

  "close kills the workloads": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override async close() {
          for (const run of runs(this)) await this.kill(run.handle);
          return super.close();
        }
      })(dir),
    caughtBy: ["a second backend instance drives the first one's runs, and its close leaves them running"],
  },

  "logs ignore tail": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override logs(handle: MinimalHandle, options: LogOptions) {
          return super.logs(handle, { ...options, tail: undefined });
        }
      })(dir),
    caughtBy: [
      "logs yields what was written, the last `tail` lines, and follows a running workload until it ends",
    ],
  },

  "logs({ follow }) never ends by itself": {
    make: (dir) =>
      new (class extends MinimalBackend {
        override async *logs(handle: MinimalHandle, options: LogOptions): AsyncIterable<LogEntry> {
          yield* super.logs(handle, options);
          const { follow, signal } = options;
          if (follow && !signal?.aborted)
            await new Promise((resolve) => signal?.addEventListener("abort", resolve));
        }
      })(dir),
    caughtBy: [
      "logs yields what was written, the last `tail` lines, and follows a running workload until it ends",
      "every method on a cleaned-up run answers as the contract table says",
    ],
  },
};
