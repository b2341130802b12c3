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

  it.each(["maxLogBytes", "maxWorkloads", "lifetimeBackstopMs", "supervisorIdleMs"])(
    "refuse a negative %s",
    (field) => {
      expect(() => new ProcessBackend({ stateDir: "/tmp/rk-opts", [field]: -1 })).toThrowError(field);
    },
  );

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
