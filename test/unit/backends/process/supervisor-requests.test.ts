import { describe, expect, it } from "vitest";
import { checkLogs } from "../../../../src/backends/process/supervisor-requests.js";
import type { Supervisor } from "../../../../src/backends/process/supervisor-state.js";

describe("the periodic check of log sizes", () => {
  it("is put off in a burst of requests or exits, but never twice in a row", () => {
    const looked: string[] = [];
    let quiet = false;
    const s = {
      live: 1,
      logCheckPutOff: false,
      runs: new Map([["r1", { exit: null, record: { stdoutPath: "r1.out", stderrPath: "r1.err" } }]]),
      logs: { quiet: () => quiet, rotate: (file: string) => looked.push(file) },
    } as unknown as Supervisor;
    checkLogs(s);
    expect(looked).toEqual([]);
    checkLogs(s);
    expect(looked).toEqual(["r1.out", "r1.err"]);
    checkLogs(s);
    expect(looked).toHaveLength(2);
    quiet = true;
    checkLogs(s);
    checkLogs(s);
    expect(looked).toHaveLength(6);
  });
});
