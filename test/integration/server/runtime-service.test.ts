import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import * as wire from "../../../src/gen/runtime/v1/runtime.js";
import { isRuntimeKernelError, StartFailedError, type TransitionEvent } from "../../../src/index.js";
import { ERROR_METADATA, GrpcStatus, RuntimeServiceError } from "../../../src/server/index.js";
import { collectUntil, type Harness, startHarness } from "./harness.js";

let h: Harness;
beforeEach(async () => {
  h = await startHarness({ kernel: { ownerQuota: 2 } });
});
afterEach(async () => {
  await h.close();
});

async function rejection(promise: Promise<unknown>): Promise<RuntimeServiceError> {
  const error = await promise.then(
    () => {
      throw new Error("expected the call to fail");
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RuntimeServiceError);
  return error as RuntimeServiceError;
}

describe("the runtime.v1 service, on the fake backend", () => {
  describe("Create", () => {
    it("resolves with the running workload, and the service reports exactly what the kernel does", async () => {
      const status = await h.client.create({
        workloadId: "w1",
        profile: "default",
        owner: "alice",
        labels: { team: "a" },
      });
      expect(status).toMatchObject({
        workloadId: "w1",
        profile: "default",
        owner: "alice",
        state: "running",
        restarts: 0,
      });
      expect(await h.client.get("w1")).toEqual(h.kernel.get("w1"));
    });

    it("is idempotent on the workload id: the same run comes back and nothing new starts", async () => {
      const first = await h.client.create({ workloadId: "w1", profile: "default" });
      const again = await h.client.create({ workloadId: "w1", profile: "default" });
      expect(again.runId).toBe(first.runId);
      expect(h.fake.started).toBe(1);
    });

    it("starts a new run of a stopped workload", async () => {
      const first = await h.client.create({ workloadId: "w1", profile: "default" });
      await h.client.stop("w1");
      const second = await h.client.create({ workloadId: "w1", profile: "default" });
      expect(second.runId).not.toBe(first.runId);
      expect(second.state).toBe("running");
    });

    it("passes the runnable's backend-specific extras through to the backend", async () => {
      await h.client.create({
        workloadId: "w1",
        profile: "default",
        runnable: { fake: { output: ["from extras"] } },
      });
      expect(h.fake.inspect("w1")?.request.runnable).toMatchObject({
        command: ["agent"],
        fake: { output: ["from extras"] },
      });
    });

    it("carries the spec's mounts to the kernel, which checks them and gives the backend the resolved set", async () => {
      const source = mkdtempSync(join(realpathSync(tmpdir()), "rk-mount-"));
      try {
        await h.client.create({
          workloadId: "w1",
          profile: "mounted",
          mounts: [
            { source, target: "/work" },
            { source, target: "/data", readOnly: true },
          ],
        });
        expect(h.fake.inspect("w1")?.request.mounts).toEqual([
          { source, target: "/work", readOnly: false, root: realpathSync(tmpdir()) },
          { source, target: "/data", readOnly: true, root: realpathSync(tmpdir()) },
        ]);
        const error = await rejection(
          h.client.create({
            workloadId: "w2",
            profile: "mounted",
            mounts: [{ source: "/etc", target: "/etc" }],
          }),
        );
        expect(error.code).toBe("INVALID_SPEC");
        expect(error.message).toContain("mounts.0.source");
        expect(h.fake.inspect("w2")).toBeUndefined();
      } finally {
        rmSync(source, { recursive: true, force: true });
      }
    });
  });

  describe("errors", () => {
    it("refuses a bad spec with INVALID_ARGUMENT, naming the field", async () => {
      const error = await rejection(h.client.create({ workloadId: "Not_A_Label", profile: "default" }));
      expect(error.statusName).toBe("INVALID_ARGUMENT");
      expect(error.code).toBe("INVALID_SPEC");
      expect(error.message).toContain("workloadId: must be a DNS-1123 label");
    });

    it("refuses an unknown profile with INVALID_ARGUMENT, listing the configured ones", async () => {
      const error = await rejection(h.client.create({ workloadId: "w1", profile: "nope" }));
      expect(error.statusName).toBe("INVALID_ARGUMENT");
      expect(error.message).toContain(
        'profile: unknown profile "nope" (configured: default, stubborn, other, mounted)',
      );
    });

    it("refuses the create beyond the owner's quota with RESOURCE_EXHAUSTED, retryable, and starts nothing", async () => {
      await h.client.create({ workloadId: "a1", profile: "default", owner: "alice" });
      await h.client.create({ workloadId: "a2", profile: "default", owner: "alice" });
      const error = await rejection(
        h.client.create({ workloadId: "a3", profile: "default", owner: "alice" }),
      );
      expect([error.statusName, error.code, error.retryable]).toEqual([
        "RESOURCE_EXHAUSTED",
        "QUOTA_EXCEEDED",
        true,
      ]);
      expect(h.fake.started).toBe(2);
      expect(await h.client.get("a3")).toBeUndefined();
    });

    it("reports an unknown workload as NOT_FOUND, and get() as undefined like the kernel", async () => {
      const error = await rejection(h.client.stop("ghost"));
      expect([error.statusName, error.code, error.workloadId]).toEqual([
        "NOT_FOUND",
        "WORKLOAD_NOT_FOUND",
        "ghost",
      ]);
      expect((await rejection(h.client.touch("ghost"))).statusName).toBe("NOT_FOUND");
      expect((await rejection(h.client.destroy("ghost"))).statusName).toBe("NOT_FOUND");
      expect(await h.client.get("ghost")).toBeUndefined();
    });

    it("reports a permanent start failure as FAILED_PRECONDITION and a transient one as UNAVAILABLE", async () => {
      h.fake.behave("broken", { startError: "exec: agent: not found" });
      h.fake.behave("flaky", {
        startError: new StartFailedError("flaky", "engine busy", { retryable: true }),
      });
      const permanent = await rejection(h.client.create({ workloadId: "broken", profile: "default" }));
      expect([permanent.statusName, permanent.code, permanent.retryable]).toEqual([
        "FAILED_PRECONDITION",
        "START_FAILED",
        false,
      ]);
      expect(permanent.message).toContain("exec: agent: not found");
      const transient = await rejection(h.client.create({ workloadId: "flaky", profile: "default" }));
      expect([transient.statusName, transient.code, transient.retryable]).toEqual([
        "UNAVAILABLE",
        "START_FAILED",
        true,
      ]);
    });

    it("refuses a stop reason that only the kernel may give", async () => {
      await h.client.create({ workloadId: "w1", profile: "default" });
      const raw = new wire.RuntimeClient(h.server.address, credentials.createInsecure());
      const error = await new Promise<ServiceError>((resolve) =>
        raw.stop({ workloadId: "w1", reason: wire.StopReason.STOP_REASON_OOM }, (e) => resolve(e!)),
      );
      raw.close();
      expect(error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(error.details).toContain(
        "reason: must be one of REQUESTED, IDLE_TIMEOUT, MAX_LIFETIME, SHUTDOWN",
      );
    });

    it("gives any gRPC client the kernel's error code in the trailers", async () => {
      const raw = new wire.RuntimeClient(h.server.address, credentials.createInsecure());
      const error = await new Promise<ServiceError>((resolve) =>
        raw.create({ spec: undefined }, new Metadata(), (e) => resolve(e!)),
      );
      const quota = await (async () => {
        await h.client.create({ workloadId: "q1", profile: "default", owner: "bob" });
        await h.client.create({ workloadId: "q2", profile: "default", owner: "bob" });
        const spec = wire.WorkloadSpec.fromPartial({ workloadId: "q3", profile: "default", owner: "bob" });
        return new Promise<ServiceError>((resolve) => raw.create({ spec }, (e) => resolve(e!)));
      })();
      raw.close();
      expect(error.code).toBe(GrpcStatus.INVALID_ARGUMENT);
      expect(error.details).toContain("spec: is required");
      expect(error.metadata.get(ERROR_METADATA.code)).toEqual(["INVALID_SPEC"]);
      expect(quota.code).toBe(GrpcStatus.RESOURCE_EXHAUSTED);
      expect(quota.metadata.get(ERROR_METADATA.code)).toEqual(["QUOTA_EXCEEDED"]);
      expect(quota.metadata.get(ERROR_METADATA.retryable)).toEqual(["true"]);
    });
  });

  describe("Get, List, Touch", () => {
    it("lists with every filter the kernel has", async () => {
      await h.client.create({ workloadId: "a1", profile: "default", owner: "alice" });
      await h.client.create({ workloadId: "b1", profile: "other", owner: "bob" });
      await h.client.create({ workloadId: "b2", profile: "default", owner: "bob" });
      await h.client.stop("b2");
      const ids = async (filter: Parameters<typeof h.client.list>[0]) =>
        (await h.client.list(filter)).map((s) => s.workloadId).sort();
      expect(await ids({})).toEqual(["a1", "b1", "b2"]);
      expect(await ids({ owner: "bob" })).toEqual(["b1", "b2"]);
      expect(await ids({ profile: "default" })).toEqual(["a1", "b2"]);
      expect(await ids({ state: "stopped" })).toEqual(["b2"]);
      expect(await ids({ state: ["running", "stopped"], owner: "bob" })).toEqual(["b1", "b2"]);
      expect(await h.client.list()).toEqual(h.kernel.list());
    });

    it("touches a live workload (activity postpones its idle deadline)", async () => {
      await h.client.create({ workloadId: "w1", profile: "default", idleTimeoutMs: 60_000 });
      const before = (await h.client.get("w1"))!.idleDeadline!;
      await new Promise((r) => setTimeout(r, 5));
      await h.client.touch("w1");
      expect((await h.client.get("w1"))!.idleDeadline).toBeGreaterThan(before);
    });
  });

  describe("Stop and Destroy", () => {
    it("stops with the given reason and resolves once stopped", async () => {
      await h.client.create({ workloadId: "w1", profile: "default" });
      const status = await h.client.stop("w1", { reason: "idle_timeout" });
      expect(status).toMatchObject({
        state: "stopped",
        stopReason: "idle_timeout",
        exitCode: 143,
        signal: "SIGTERM",
      });
      expect(h.fake.inspect("w1")?.signals).toEqual(["SIGTERM"]);
    });

    it("kills at once with a grace of 0, even a workload that ignores SIGTERM", async () => {
      await h.client.create({ workloadId: "w1", profile: "stubborn" });
      const status = await h.client.stop("w1", { graceMs: 0 });
      expect(status).toMatchObject({ state: "stopped", exitCode: 137, signal: "SIGKILL" });
    });

    it("destroys a live workload through stopping and stopped, and resolves once cleanup is confirmed", async () => {
      await h.client.create({ workloadId: "w1", profile: "default" });
      const events = h.client.events({ workloadId: "w1", sinceSeq: 0 });
      await h.client.destroy("w1");
      expect(h.fake.workloads()).toEqual([]);
      expect(await h.client.get("w1")).toBeUndefined();
      const seen = await collectUntil(events, (e) => e.state === "destroyed");
      expect(seen.map((e) => e.state)).toEqual(["starting", "running", "stopping", "stopped", "destroyed"]);
    });
  });

  describe("Logs", () => {
    it("returns what the workload wrote, or only the tail", async () => {
      await h.client.create({
        workloadId: "w1",
        profile: "default",
        runnable: { fake: { output: ["one", "two", "three"] } },
      });
      const all = await collectUntil(h.client.logs("w1"), () => false);
      expect(all).toEqual([
        { stream: "stdout", line: "one" },
        { stream: "stdout", line: "two" },
        { stream: "stdout", line: "three" },
      ]);
      expect((await collectUntil(h.client.logs("w1", { tail: 1 }), () => false)).map((e) => e.line)).toEqual([
        "three",
      ]);
    });

    it("follows new output until the run ends", async () => {
      await h.client.create({
        workloadId: "w1",
        profile: "default",
        runnable: { fake: { output: ["first"] } },
      });
      const lines: string[] = [];
      const following = (async () => {
        for await (const entry of h.client.logs("w1", { follow: true })) {
          lines.push(entry.line);
          if (entry.line === "first") h.fake.print("w1", "second", "third");
          if (entry.line === "third") h.fake.exit("w1", { exitCode: 0 });
        }
      })();
      await following;
      expect(lines).toEqual(["first", "second", "third"]);
    });

    it("ends quietly when the caller aborts", async () => {
      await h.client.create({ workloadId: "w1", profile: "default", runnable: { fake: { output: ["x"] } } });
      const abort = new AbortController();
      const lines: string[] = [];
      for await (const entry of h.client.logs("w1", { follow: true, signal: abort.signal })) {
        lines.push(entry.line);
        abort.abort();
      }
      expect(lines).toEqual(["x"]);
    });
  });

  describe("WatchEvents", () => {
    it("streams every transition in order, exactly as the kernel emits them", async () => {
      const inProcess: TransitionEvent[] = [];
      h.kernel.on("transition", (e) => inProcess.push(e));
      const remote = h.client.events({ workloadId: "w1", sinceSeq: 0 });
      await h.client.create({ workloadId: "w1", profile: "default" });
      await h.client.destroy("w1");
      const seen = await collectUntil(remote, (e) => e.state === "destroyed");
      expect(seen).toEqual(inProcess);
      expect(seen.map((e) => [e.from, e.state])).toEqual([
        [null, "starting"],
        ["starting", "running"],
        ["running", "stopping"],
        ["stopping", "stopped"],
        ["stopped", "destroyed"],
      ]);
    });

    it("lets a client that reconnects with its last seq miss nothing that is still retained", async () => {
      const first = new AbortController();
      const before: TransitionEvent[] = [];
      const firstWatch = (async () => {
        for await (const e of h.client.events({ signal: first.signal })) {
          before.push(e);
          if (e.state === "running") first.abort();
        }
      })();
      // The subscription is live once the server has answered a call issued after it.
      await h.client.list();
      await h.client.create({ workloadId: "w1", profile: "default" });
      await firstWatch;
      const lastSeq = before.at(-1)!.seq;
      // While disconnected, more happens.
      await h.client.create({ workloadId: "w2", profile: "default" });
      await h.client.stop("w1");
      const resumed = await collectUntil(
        h.client.events({ sinceSeq: lastSeq }),
        (e) => e.workloadId === "w1" && e.state === "stopped",
      );
      const all = [...before, ...resumed];
      expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
      expect(resumed.map((e) => `${e.workloadId}:${e.state}`)).toEqual([
        "w2:starting",
        "w2:running",
        "w1:stopping",
        "w1:stopped",
      ]);
    });
  });

  describe("secrets", () => {
    it("never appear in statuses, events or errors sent over the wire", async () => {
      await h.close();
      const secret = "sk-live-0123456789abcdef";
      const brokered = "brokered-credential-fedcba9876";
      h = await startHarness({ kernel: { credentials: { credentials: () => ({ BROKERED: brokered }) } } });
      h.fake.behave("leaky", { startError: `could not start with BROKERED=${brokered}` });
      const events = h.client.events({ sinceSeq: 0 });
      const outputs: unknown[] = [];
      outputs.push(await h.client.create({ workloadId: "w1", profile: "default", env: { API_KEY: secret } }));
      outputs.push(
        await rejection(
          h.client.create({ workloadId: "leaky", profile: "default", env: { API_KEY: secret } }),
        ).then((e) => ({ message: e.message, stack: e.stack })),
      );
      outputs.push(await h.client.list(), await h.client.stop("w1"), await h.client.get("leaky"));
      outputs.push(await collectUntil(events, (e) => e.workloadId === "w1" && e.state === "stopped"));
      expect(h.fake.inspect("w1")?.request.env).toMatchObject({ API_KEY: secret, BROKERED: brokered });
      const text = JSON.stringify(outputs);
      expect(text).not.toContain(secret);
      expect(text).not.toContain(brokered);
      expect(text).toContain("could not start with BROKERED=");
    });
  });

  describe("the TypeScript client", () => {
    it("rejects an aborted call with the signal's reason", async () => {
      // Long enough to abort first; short enough that shutting down (which waits for it) stays quick.
      h.fake.behave("slow", { startDelayMs: 300 });
      const abort = new AbortController();
      const call = h.client.create({ workloadId: "slow", profile: "default" }, { signal: abort.signal });
      abort.abort(new Error("changed my mind"));
      await expect(call).rejects.toThrow("changed my mind");
      // Whether or not the call reached the kernel, creating again settles on one running workload.
      expect((await h.client.create({ workloadId: "slow", profile: "default" })).state).toBe("running");
    });

    it("fails a call past its deadline with a retryable error", async () => {
      h.fake.behave("slow", { startDelayMs: 300 });
      const error = await rejection(
        h.client.create({ workloadId: "slow", profile: "default" }, { timeoutMs: 50 }),
      );
      expect([error.statusName, error.retryable]).toEqual(["DEADLINE_EXCEEDED", true]);
      // The kernel carries on: an abandoned call does not abandon the workload (create again to adopt it).
      expect((await h.client.create({ workloadId: "slow", profile: "default" })).state).toBe("running");
    });

    it("says plainly when no server answers", async () => {
      const { createRuntimeClient } = await import("../../../src/server/index.js");
      const client = createRuntimeClient(`unix:${h.dir}/nobody.sock`);
      const error = await rejection(client.list());
      client.close();
      expect([error.statusName, error.code, error.fromKernel]).toEqual([
        "UNAVAILABLE",
        "BACKEND_UNAVAILABLE",
        false,
      ]);
      expect(error.message).toContain(`runtime-kernel server at unix:${h.dir}/nobody.sock is unavailable`);
      expect(isRuntimeKernelError(error, "BACKEND_UNAVAILABLE")).toBe(true);
    });
  });
});
