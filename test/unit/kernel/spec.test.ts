import { describe, expect, it } from "vitest";
import { InvalidSpecError, isRuntimeKernelError } from "../../../src/errors.js";
import { createRuntimeKernel } from "../../../src/index.js";
import {
  parseKernelOptions,
  parseWorkloadSpec,
  type RuntimeKernelOptions,
} from "../../../src/kernel/spec.js";
import type { Profile } from "../../../src/kernel/types.js";
import { FakeBackend, ManualClock } from "../../../src/testing/index.js";

const profiles: Record<string, Profile> = {
  agent: { runnable: { command: ["agent"] } },
  web: { runnable: { image: "web:1" } },
};

/** The error a call throws (or undefined). */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** The issues of the InvalidSpecError that `fn` throws; fails the test if it throws anything else. */
function issues(fn: () => unknown): Array<{ path: string; message: string }> {
  const error = thrown(fn);
  expect(error).toBeInstanceOf(InvalidSpecError);
  expect(isRuntimeKernelError(error, "INVALID_SPEC")).toBe(true);
  return [...(error as InvalidSpecError).issues];
}

const specIssues = (input: unknown) => issues(() => parseWorkloadSpec(input, profiles));
const pathsOf = (list: Array<{ path: string }>) => list.map((i) => i.path).sort();

describe("parseWorkloadSpec", () => {
  it("accepts a minimal spec and a full one", () => {
    expect(parseWorkloadSpec({ workloadId: "w1", profile: "agent" }, profiles)).toEqual({
      workloadId: "w1",
      profile: "agent",
    });
    const full = {
      workloadId: "a-0",
      profile: "web",
      owner: "alice@example.com",
      env: { API_URL: "http://x", _PRIVATE: "" },
      runnable: { command: ["web", "--port", "80"], cwd: "/srv", image: "web:1" },
      resources: { cpu: 0.5, memoryMb: 256, gpu: 0, pids: 64 },
      workspace: "/tmp/ws",
      idleTimeoutMs: 0,
      maxLifetimeMs: 60_000,
      graceMs: 500,
      labels: { team: "core", "example.com/tier": "gold" },
    };
    expect(parseWorkloadSpec(full, profiles)).toEqual(full);
  });

  describe("workloadId", () => {
    it.each([
      ["uppercase letters", "Worker"],
      ["underscores", "my_worker"],
      ["a leading hyphen", "-w"],
      ["a trailing hyphen", "w-"],
      ["dots", "w.1"],
      ["more than 63 characters", "a".repeat(64)],
      ["the empty string", ""],
    ])("refuses a workloadId with %s, naming the field and the rule", (_, workloadId) => {
      const found = specIssues({ workloadId, profile: "agent" });
      expect(found).toEqual([{ path: "workloadId", message: expect.stringContaining("DNS-1123") }]);
    });

    it("accepts a 63-character DNS-1123 label", () => {
      expect(() =>
        parseWorkloadSpec({ workloadId: "a".repeat(63), profile: "agent" }, profiles),
      ).not.toThrow();
    });

    it("refuses a missing workloadId", () => {
      expect(specIssues({ profile: "agent" })).toEqual([{ path: "workloadId", message: expect.any(String) }]);
    });
  });

  describe("env", () => {
    it("refuses a key that is not a portable variable name, saying why", () => {
      const found = specIssues({
        workloadId: "w",
        profile: "agent",
        env: { "1ST": "x", "A-B": "y", OK: "z" },
      });
      expect(pathsOf(found)).toEqual(["env.1ST", "env.A-B"]);
      for (const issue of found) expect(issue.message).toMatch(/environment variable name/);
    });

    it("refuses a value that is not a string", () => {
      expect(specIssues({ workloadId: "w", profile: "agent", env: { PORT: 8080 } })).toEqual([
        { path: "env.PORT", message: "must be a string" },
      ]);
    });

    it("refuses __proto__, which a parsed JSON body can hold and a plain object would silently drop", () => {
      const spec = JSON.parse('{"workloadId":"w","profile":"agent","env":{"__proto__":"x","A":"1"}}');
      expect(specIssues(spec)).toEqual([
        { path: "env.__proto__", message: "is not a name a workload's env can carry" },
      ]);
    });

    it("refuses a value with a NUL character without repeating the value", () => {
      const secret = "sk-live-0123456789";
      const error = thrown(() =>
        parseWorkloadSpec({ workloadId: "w", profile: "agent", env: { API_KEY: `${secret}\0` } }, profiles),
      ) as InvalidSpecError;
      expect(error.issues).toEqual([{ path: "env.API_KEY", message: "must not contain NUL characters" }]);
      expect(error.message).not.toContain(secret);
      expect(JSON.stringify(error.toJSON())).not.toContain(secret);
    });
  });

  describe("profile", () => {
    it("refuses an unknown profile, listing the configured ones", () => {
      const found = specIssues({ workloadId: "w", profile: "gpu" });
      expect(found).toHaveLength(1);
      expect(found[0]?.path).toBe("profile");
      expect(found[0]?.message).toContain('"gpu"');
      expect(found[0]?.message).toContain("agent, web");
    });

    it("says so when no profile is configured at all", () => {
      const found = issues(() => parseWorkloadSpec({ workloadId: "w", profile: "agent" }, {}));
      expect(found).toEqual([{ path: "profile", message: expect.stringContaining("configured: none") }]);
    });

    it("does not take inherited object keys for profiles", () => {
      expect(specIssues({ workloadId: "w", profile: "toString" })[0]?.path).toBe("profile");
    });
  });

  describe("timeouts", () => {
    it.each(["idleTimeoutMs", "maxLifetimeMs", "graceMs"])("refuses a negative %s", (field) => {
      expect(specIssues({ workloadId: "w", profile: "agent", [field]: -1 })).toEqual([
        { path: field, message: "must be >= 0" },
      ]);
    });

    it.each(["idleTimeoutMs", "maxLifetimeMs", "graceMs"])("refuses a non-integer %s", (field) => {
      expect(specIssues({ workloadId: "w", profile: "agent", [field]: 1.5 })).toEqual([
        { path: field, message: "must be an integer number of milliseconds" },
      ]);
    });

    it("refuses a timeout given as a string", () => {
      expect(specIssues({ workloadId: "w", profile: "agent", graceMs: "10" }).map((i) => i.path)).toEqual([
        "graceMs",
      ]);
    });

    it("accepts 0, which disables the timeout", () => {
      expect(() =>
        parseWorkloadSpec(
          { workloadId: "w", profile: "agent", idleTimeoutMs: 0, maxLifetimeMs: 0 },
          profiles,
        ),
      ).not.toThrow();
    });
  });

  describe("labels", () => {
    it("refuses a label under the kernel's reserved prefix, naming the key and the prefix", () => {
      const found = specIssues({
        workloadId: "w",
        profile: "agent",
        labels: { "runtime-kernel.dev/owner": "mallory", team: "core" },
      });
      expect(found).toEqual([
        { path: "labels.runtime-kernel.dev/owner", message: "must not start with runtime-kernel.dev/" },
      ]);
    });

    it("refuses a label value that is not a string", () => {
      expect(pathsOf(specIssues({ workloadId: "w", profile: "agent", labels: { n: 1 } }))).toEqual([
        "labels.n",
      ]);
    });
  });

  describe("unknown fields", () => {
    it("refuses each unknown field by name (a typo is never silently ignored)", () => {
      const found = specIssues({ workloadId: "w", profile: "agent", idleTimeout: 5, ownr: "alice" });
      expect(found).toEqual([
        { path: "idleTimeout", message: "is not a known field" },
        { path: "ownr", message: "is not a known field" },
      ]);
    });

    it("refuses an unknown resource", () => {
      expect(specIssues({ workloadId: "w", profile: "agent", resources: { memory: 512 } })).toEqual([
        { path: "resources.memory", message: "is not a known field" },
      ]);
    });

    it("refuses backend-specific runnable extras in a spec, so a spec cannot loosen the profile's sandbox", () => {
      expect(() =>
        parseWorkloadSpec(
          { workloadId: "w", profile: "agent", runnable: { docker: { network: "host" } } },
          profiles,
        ),
      ).toThrow(
        /runnable\.docker: may not be set by a spec of profile "agent" \(allowed: command, image, cwd;/,
      );
    });

    it("lets a spec carry the extras its profile allows with allowSpecRunnableKeys", () => {
      const open = { agent: { runnable: {}, allowSpecRunnableKeys: ["fake"] } };
      expect(() =>
        parseWorkloadSpec({ workloadId: "w", profile: "agent", runnable: { fake: {} } }, open),
      ).not.toThrow();
    });
  });

  describe("other fields", () => {
    it("refuses an empty command, an empty owner and an empty workspace", () => {
      const found = specIssues({
        workloadId: "w",
        profile: "agent",
        runnable: { command: [] },
        owner: "",
        workspace: "",
      });
      expect(pathsOf(found)).toEqual(["owner", "runnable.command", "workspace"]);
    });

    it("refuses resources out of range", () => {
      const found = specIssues({
        workloadId: "w",
        profile: "agent",
        resources: { cpu: 0, memoryMb: 1.5, gpu: -1, pids: 0 },
      });
      expect(pathsOf(found)).toEqual([
        "resources.cpu",
        "resources.gpu",
        "resources.memoryMb",
        "resources.pids",
      ]);
    });

    it("reports every problem at once, each naming its field", () => {
      const error = thrown(() =>
        parseWorkloadSpec({ workloadId: "W", profile: "agent", graceMs: -1, env: { "A B": "x" } }, profiles),
      ) as InvalidSpecError;
      expect(pathsOf([...error.issues])).toEqual(["env.A B", "graceMs", "workloadId"]);
      expect(error.message).toMatch(/^Invalid workload spec: /);
      expect(error.message).toContain("workloadId: ");
      expect(error.message).toContain("graceMs: must be >= 0");
    });

    it("takes a trace id of printable ASCII, and refuses one with spaces, control characters or over 128", () => {
      expect(
        parseWorkloadSpec({ workloadId: "w", profile: "agent", traceId: "4bf92f35-77b3:x/1" }, profiles),
      ).toMatchObject({ traceId: "4bf92f35-77b3:x/1" });
      for (const traceId of ["", "a b", "a\nb", "é", "x".repeat(129), 7])
        expect(pathsOf(specIssues({ workloadId: "w", profile: "agent", traceId }))).toEqual(["traceId"]);
    });

    it("refuses something that is not an object at all", () => {
      for (const input of [null, "w1", 42, []])
        expect(thrown(() => parseWorkloadSpec(input, profiles))).toBeInstanceOf(InvalidSpecError);
    });
  });
});

describe("parseKernelOptions", () => {
  const backend = new FakeBackend();
  const optionIssues = (options: Record<string, unknown>) =>
    issues(() => parseKernelOptions({ backend, ...options } as RuntimeKernelOptions));

  it("accepts a backend alone, and every option", () => {
    expect(() => parseKernelOptions({ backend })).not.toThrow();
    expect(() =>
      parseKernelOptions({
        backend,
        kernelId: "prod-1",
        profiles,
        ownerQuota: (owner) => (owner === "vip" ? 10 : 1),
        maxConcurrentStarts: 4,
        reapAfterMs: 0,
        pollIntervalMs: 250,
        clock: new ManualClock(),
        credentials: { credentials: () => ({}) },
        eventRetention: 0,
      }),
    ).not.toThrow();
  });

  it("refuses a backend that does not implement the port", () => {
    const found = issues(() => parseKernelOptions({ backend: { name: "x", start() {} } } as never));
    expect(found).toEqual([{ path: "backend", message: expect.stringContaining("Backend port") }]);
  });

  it("refuses a kernelId that is not a DNS-1123 label", () => {
    expect(optionIssues({ kernelId: "Prod_1" })).toEqual([
      { path: "kernelId", message: expect.stringContaining("DNS-1123") },
    ]);
  });

  it.each([
    ["ownerQuota", -1],
    ["ownerQuota", 1.5],
    ["maxConcurrentStarts", 0],
    ["reapAfterMs", -1],
    ["pollIntervalMs", 0],
    ["eventRetention", 2.5],
  ])("refuses %s: %s, naming the field", (field, value) => {
    expect(optionIssues({ [field]: value }).map((i) => i.path)).toEqual([field]);
  });

  it("refuses a clock or a credential broker of the wrong shape, saying what is expected", () => {
    expect(optionIssues({ clock: { now: () => 0 } })).toEqual([
      { path: "clock", message: expect.stringContaining("setTimeout") },
    ]);
    expect(optionIssues({ credentials: {} })).toEqual([
      { path: "credentials", message: expect.stringContaining("credentials") },
    ]);
  });

  describe("profiles", () => {
    it("names the profile and the field of a bad profile", () => {
      const found = optionIssues({
        profiles: { agent: { runnable: {}, idleTimeoutMs: -5, startTimeoutMs: 0.5 } },
      });
      expect(pathsOf(found)).toEqual(["profiles.agent.idleTimeoutMs", "profiles.agent.startTimeoutMs"]);
    });

    it("refuses a profile without a runnable", () => {
      expect(pathsOf(optionIssues({ profiles: { agent: {} } }))).toEqual(["profiles.agent.runnable"]);
    });

    it("refuses an unknown field of a profile by name", () => {
      expect(optionIssues({ profiles: { agent: { runnable: {}, idleTimeout: 5 } } })).toEqual([
        { path: "profiles.agent.idleTimeout", message: "is not a known field" },
      ]);
    });

    it("refuses a bad restart policy", () => {
      const found = optionIssues({
        profiles: { agent: { runnable: {}, restart: { policy: "always", backoffMs: -1 } } },
      });
      expect(pathsOf(found)).toEqual(["profiles.agent.restart.backoffMs", "profiles.agent.restart.policy"]);
    });

    it("refuses a profile name that is not a simple name", () => {
      expect(optionIssues({ profiles: { "my agent": { runnable: {} } } })).toEqual([
        { path: "profiles.my agent", message: "must be a simple name" },
      ]);
    });

    it("names the kernel options as the subject of the error", () => {
      const error = thrown(() => parseKernelOptions({ backend, kernelId: "X" })) as InvalidSpecError;
      expect(error.message).toMatch(/^Invalid kernel options: kernelId: /);
    });
  });
});

describe("validation through the kernel", () => {
  function setup() {
    const clock = new ManualClock();
    const fake = new FakeBackend({ clock, recordCalls: true });
    return { clock, fake };
  }

  it.each([
    ["kernelId", { kernelId: "Kernel_1" }],
    ["ownerQuota", { ownerQuota: -1 }],
    ["maxConcurrentStarts", { maxConcurrentStarts: 0 }],
    ["profiles.agent.runnable", { profiles: { agent: {} } }],
    [
      "profiles.agent.restart.policy",
      { profiles: { agent: { runnable: {}, restart: { policy: "always" } } } },
    ],
  ])("createRuntimeKernel refuses a bad %s before touching the backend", (path, options) => {
    const { clock, fake } = setup();
    const error = thrown(() => createRuntimeKernel({ backend: fake, clock, ...(options as object) }));
    expect(isRuntimeKernelError(error, "INVALID_SPEC")).toBe(true);
    expect((error as InvalidSpecError).issues.map((i) => i.path)).toEqual([path]);
    expect((error as Error).message).toMatch(/^Invalid kernel options: /);
    expect(fake.calls).toEqual([]);
  });

  it("createRuntimeKernel refuses bad options with INVALID_SPEC naming the field, and touches no backend", () => {
    const { clock, fake } = setup();
    const error = thrown(() =>
      createRuntimeKernel({ backend: fake, clock, profiles: { agent: { runnable: {}, graceMs: -1 } } }),
    );
    expect(isRuntimeKernelError(error, "INVALID_SPEC")).toBe(true);
    expect((error as InvalidSpecError).issues.map((i) => i.path)).toEqual(["profiles.agent.graceMs"]);
    expect(fake.calls).toEqual([]);
    expect(clock.pending).toBe(0);
  });

  it.each([
    ["workloadId", { workloadId: "Not_DNS", profile: "agent" }],
    ["env.1BAD", { workloadId: "w", profile: "agent", env: { "1BAD": "x" } }],
    ["env.KEY", { workloadId: "w", profile: "agent", env: { KEY: 1 } }],
    ["profile", { workloadId: "w", profile: "missing" }],
    ["idleTimeoutMs", { workloadId: "w", profile: "agent", idleTimeoutMs: -1 }],
    ["maxLifetimeMs", { workloadId: "w", profile: "agent", maxLifetimeMs: 0.5 }],
    [
      "labels.runtime-kernel.dev/run-id",
      { workloadId: "w", profile: "agent", labels: { "runtime-kernel.dev/run-id": "x" } },
    ],
    ["extra", { workloadId: "w", profile: "agent", extra: true }],
  ])("kernel.create refuses a spec with a bad %s, and nothing is started", async (path, spec) => {
    const { clock, fake } = setup();
    const kernel = createRuntimeKernel({ backend: fake, clock, profiles, ownerQuota: 1 });
    const transitions: unknown[] = [];
    kernel.on("transition", (e) => transitions.push(e));
    const error = await kernel.create(spec as never).catch((e: unknown) => e);
    expect(isRuntimeKernelError(error, "INVALID_SPEC")).toBe(true);
    expect((error as InvalidSpecError).issues.map((i) => i.path)).toContain(path);
    expect(fake.calls).toEqual([]);
    expect(fake.started).toBe(0);
    expect(kernel.list()).toEqual([]);
    expect(transitions).toEqual([]);
    // A refusal charges no quota: the owner can still create its one workload.
    await expect(
      kernel.create({ workloadId: "ok", profile: "agent", owner: "alice" }),
    ).resolves.toMatchObject({
      state: "running",
    });
    await kernel.shutdown();
  });

  it("kernel.create refuses a spec for another kernel's profile names, listing this kernel's", async () => {
    const { clock, fake } = setup();
    const kernel = createRuntimeKernel({ backend: fake, clock, profiles: { small: { runnable: {} } } });
    const error = (await kernel
      .create({ workloadId: "w", profile: "agent" })
      .catch((e: unknown) => e)) as InvalidSpecError;
    expect(error.issues).toEqual([
      { path: "profile", message: expect.stringContaining("configured: small") },
    ]);
    expect(fake.started).toBe(0);
    await kernel.shutdown();
  });
});
