/**
 * The Backend conformance suite. Every backend (ours and yours) runs the same
 * specification of the port's contract against its real substrate:
 *
 * ```ts
 * import { describeBackendConformance } from "runtime-kernel/testing/vitest";
 * describeBackendConformance("MyBackend", () => new MyBackend(), {
 *   longRunning: { command: ["sleep", "600"] },
 *   exitWith: (code) => ({ command: ["sh", "-c", `exit ${code}`] }),
 *   ignoresTerminate: { command: ["sh", "-c", "trap '' TERM; while :; do sleep 1; done"] },
 * });
 * ```
 * It needs vitest (a peer dependency of this entry only).
 * @module
 */
import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  type Backend,
  type ExitStatus,
  LABELS,
  type Runnable,
  type StartRequest,
  type WorkloadHandle,
} from "../backends/backend.js";
import { isRuntimeKernelError } from "../errors.js";

/** What the suite needs to know about a backend's substrate. */
export interface ConformanceFixtures {
  /** Runs until stopped; exits on the graceful signal. */
  longRunning: Runnable;
  /** Exits by itself with `code` shortly after start. */
  exitWith(code: number): Runnable;
  /** Ignores the graceful signal; only `kill` stops it. */
  ignoresTerminate: Runnable;
  /** Removes a workload behind the backend's back, to check `lost` and cleanup of the vanished. */
  vanish?(handle: WorkloadHandle): Promise<void>;
  /**
   * Resolves once a just-started workload can receive signals as its runnable intends
   * (for example once `ignoresTerminate` has installed its trap: a SIGTERM that arrives
   * before that kills it). Called after every start of `ignoresTerminate`.
   */
  ready?(handle: WorkloadHandle, runnable: Runnable): Promise<void>;
  /** Extra fields for every StartRequest (workspace, resources, ...). */
  request?: Partial<StartRequest>;
  /** How long to wait for an exit on this substrate (default 20 s). */
  timeoutMs?: number;
  /** Called once after the suite. */
  teardown?(): Promise<void>;
}

/** Registers the conformance suite for a backend with vitest. */
export function describeBackendConformance(
  name: string,
  factory: () => Backend | Promise<Backend>,
  fixtures: ConformanceFixtures,
): void {
  const timeoutMs = fixtures.timeoutMs ?? 20_000;
  const kernelId = `conformance-${randomUUID().slice(0, 8)}`;

  describe(`Backend conformance: ${name}`, () => {
    let backend: Backend;
    let started: WorkloadHandle[] = [];
    let n = 0;

    beforeAll(async () => {
      backend = await factory();
    });
    afterEach(async () => {
      await Promise.allSettled(started.map((h) => backend.kill(h).then(() => backend.cleanup(h))));
      started = [];
    });
    afterAll(async () => {
      await backend?.close?.();
      await fixtures.teardown?.();
    });

    const request = (runnable: Runnable): StartRequest => {
      const workloadId = `conf-${++n}-${randomUUID().slice(0, 6)}`;
      const runId = randomUUID();
      return {
        kernelId,
        workloadId,
        runId,
        profile: "conformance",
        owner: "conformance",
        runnable,
        env: { CONFORMANCE: "1" },
        ...fixtures.request,
        labels: {
          [LABELS.kernelId]: kernelId,
          [LABELS.workloadId]: workloadId,
          [LABELS.runId]: runId,
          [LABELS.profile]: "conformance",
          [LABELS.createdAt]: String(Date.now()),
        },
      };
    };

    const start = async (runnable: Runnable): Promise<WorkloadHandle> => {
      const handle = await backend.start(request(runnable), { signal: new AbortController().signal });
      started.push(handle);
      if (runnable === fixtures.ignoresTerminate) await fixtures.ready?.(handle, runnable);
      return handle;
    };

    /** Polls `exitCode` until it is not null: the substrate decides when, the suite only bounds it. */
    const exitOf = async (handle: WorkloadHandle): Promise<number> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const code = await backend.exitCode(handle);
        if (code !== null) return code;
        if (Date.now() > deadline) throw new Error(`no exit observed within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };

    it("start resolves a plain-JSON handle naming the run and the backend", async () => {
      const req = request(fixtures.longRunning);
      const handle = await backend.start(req, { signal: new AbortController().signal });
      started.push(handle);
      expect(handle.workloadId).toBe(req.workloadId);
      expect(handle.runId).toBe(req.runId);
      expect(handle.backend).toBe(backend.name);
      expect(JSON.parse(JSON.stringify(handle))).toEqual(handle);
    });

    it("exitCode is null while the workload runs", async () => {
      const handle = await start(fixtures.longRunning);
      expect(await backend.exitCode(handle)).toBeNull();
    });

    it("reports exit code 0 for a workload that succeeds", async () => {
      const handle = await start(fixtures.exitWith(0));
      expect(await exitOf(handle)).toBe(0);
    });

    it("reports the real non-zero exit code", async () => {
      const handle = await start(fixtures.exitWith(3));
      expect(await exitOf(handle)).toBe(3);
    });

    it("kill ends the workload with 128 + 9 = 137", async () => {
      const handle = await start(fixtures.longRunning);
      await backend.kill(handle);
      expect(await exitOf(handle)).toBe(137);
    });

    it("terminate stops a workload that honours the graceful signal", async () => {
      const handle = await start(fixtures.longRunning);
      await backend.terminate(handle, { graceMs: 10_000 });
      expect(await exitOf(handle)).not.toBeNull();
    });

    it("kill stops a workload that ignored terminate", async () => {
      const handle = await start(fixtures.ignoresTerminate);
      await backend.terminate(handle, { graceMs: 10_000 });
      expect(await backend.exitCode(handle)).toBeNull();
      await backend.kill(handle);
      expect(await exitOf(handle)).toBe(137);
    });

    it("terminate and kill are idempotent, also after the exit", async () => {
      const handle = await start(fixtures.longRunning);
      await backend.kill(handle);
      await backend.kill(handle);
      await exitOf(handle);
      await backend.terminate(handle, { graceMs: 1_000 });
      await backend.kill(handle);
      expect(await backend.exitCode(handle)).toBe(137);
    });

    it("cleanup after the exit reclaims the workload, and is idempotent", async () => {
      const handle = await start(fixtures.exitWith(0));
      await exitOf(handle);
      await backend.cleanup(handle);
      await backend.cleanup(handle);
      await expect(backend.exitCode(handle)).rejects.toSatisfy((e: unknown) =>
        isRuntimeKernelError(e, "WORKLOAD_LOST"),
      );
    });

    it("a handle survives a JSON round-trip and still drives the workload", async () => {
      const handle = await start(fixtures.longRunning);
      const copy = JSON.parse(JSON.stringify(handle)) as WorkloadHandle;
      expect(await backend.exitCode(copy)).toBeNull();
      await backend.kill(copy);
      expect(await exitOf(copy)).toBe(137);
      await backend.cleanup(copy);
    });

    it("a start whose signal is already aborted rejects with START_ABORTED and leaves nothing", async () => {
      const controller = new AbortController();
      controller.abort(new Error("caller gave up"));
      const req = request(fixtures.longRunning);
      await expect(backend.start(req, { signal: controller.signal })).rejects.toSatisfy((e: unknown) =>
        isRuntimeKernelError(e, "START_ABORTED"),
      );
      if (backend.discover) {
        const found = await backend.discover({ kernelId });
        expect(found.map((f) => f.handle.runId)).not.toContain(req.runId);
      }
    });

    if (fixtures.vanish) {
      const vanish = fixtures.vanish;
      it("a workload removed behind the backend's back is reported lost, and its cleanup succeeds", async () => {
        const handle = await start(fixtures.longRunning);
        await vanish(handle);
        await expect(backend.exitCode(handle)).rejects.toSatisfy((e: unknown) =>
          isRuntimeKernelError(e, "WORKLOAD_LOST"),
        );
        await backend.cleanup(handle);
      });
    }

    it("watchExit, when offered, pushes the exit status with the signal's name", async () => {
      if (!backend.watchExit) return;
      const handle = await start(fixtures.longRunning);
      const pushed = new Promise<ExitStatus>((resolve) => backend.watchExit?.(handle, resolve));
      await backend.kill(handle);
      const status = await pushed;
      expect(status.exitCode).toBe(137);
      expect(status.signal).toBe("SIGKILL");
    });

    it("watchExit, when offered, reports a non-zero exit", async () => {
      if (!backend.watchExit) return;
      const handle = await start(fixtures.exitWith(3));
      const status = await new Promise<ExitStatus>((resolve) => backend.watchExit?.(handle, resolve));
      expect(status.exitCode).toBe(3);
    });

    it("discover, when offered, finds this kernel's workloads by label with their state", async () => {
      if (!backend.discover) return;
      const running = await start(fixtures.longRunning);
      const exited = await start(fixtures.exitWith(4));
      await exitOf(exited);
      const found = await backend.discover({ kernelId });
      const byRun = new Map(found.map((f) => [f.handle.runId, f]));
      expect(byRun.get(running.runId)?.exit).toBeNull();
      expect(byRun.get(running.runId)?.labels[LABELS.workloadId]).toBe(running.workloadId);
      expect(byRun.get(exited.runId)?.exit?.exitCode).toBe(4);
      expect(await backend.discover({ kernelId: `${kernelId}-other` })).toEqual([]);
    });
  });
}
