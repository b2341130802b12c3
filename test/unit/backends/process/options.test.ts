import { describe, expect, it } from "vitest";
import { ProcessBackend } from "../../../../src/backends/process/index.js";

describe("ProcessBackend options", () => {
  it("need a state dir", () => {
    expect(() => new ProcessBackend({} as never)).toThrowError(/stateDir: a directory path is required/);
  });

  it("refuse a state dir too long for the supervisor's unix socket, naming the field", () => {
    expect(() => new ProcessBackend({ stateDir: `/tmp/${"d".repeat(120)}` })).toThrowError(
      /stateDir: too long/,
    );
  });

  it.each(["maxLogBytes", "maxWorkloads", "lifetimeBackstopMs", "supervisorIdleMs", "spawners"])(
    "refuse a negative %s",
    (field) => {
      expect(() => new ProcessBackend({ stateDir: "/tmp/rk-opts", [field]: -1 })).toThrowError(field);
    },
  );

  it("refuse more spawners than could help (each is a Node process), naming the field", () => {
    expect(() => new ProcessBackend({ stateDir: "/tmp/rk-opts", spawners: 1.5 })).toThrowError(/spawners/);
    expect(() => new ProcessBackend({ stateDir: "/tmp/rk-opts", spawners: 65 })).toThrowError(
      /spawners: must be at most 64/,
    );
    expect(() => new ProcessBackend({ stateDir: "/tmp/rk-opts", spawners: 64 })).not.toThrow();
  });

  it("refuse unknown or negative rlimits, naming the field", () => {
    expect(() => new ProcessBackend({ stateDir: "/tmp/rk-opts", rlimits: { nofile: -1 } })).toThrowError(
      "rlimits.nofile",
    );
  });

  it("launch nothing until a call needs the supervisor, and name themselves process", () => {
    const backend = new ProcessBackend({ stateDir: "/tmp/rk-opts-lazy" });
    expect(backend.name).toBe("process");
    expect(backend.stateDir).toBe("/tmp/rk-opts-lazy");
  });
});
