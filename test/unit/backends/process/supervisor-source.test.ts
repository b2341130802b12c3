import { Script } from "node:vm";
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../../../../src/backends/process/protocol.js";
import {
  programFunctions,
  type SupervisorConfig,
  supervisorSource,
} from "../../../../src/backends/process/supervisor.js";
import { readLimits, readProcStat } from "../../../../src/backends/process/supervisor-proc.js";
import { spawnerProgram } from "../../../../src/backends/process/supervisor-spawners.js";
import type { Program } from "../../../../src/backends/process/supervisor-state.js";

/** A stand-in for node:fs over an in-memory set of files (the calls readProcStat and readLimits make). */
const fakeFs = (files: Record<string, string>) => {
  const open = new Map<number, string>();
  const text = (path: string) => {
    const t = files[path];
    if (t === undefined) throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
    return t;
  };
  return {
    readFileSync: ((path: string) => text(path)) as never,
    openSync: ((path: string) => {
      const fd = open.size + 3;
      open.set(fd, text(path));
      return fd;
    }) as never,
    readSync: ((fd: number, buffer: Buffer) => buffer.write(open.get(fd) ?? "", "latin1")) as never,
    closeSync: ((fd: number) => {
      open.delete(fd);
    }) as never,
  };
};

describe("reading /proc", () => {
  it("takes the start time (field 22) and the process group (field 5) after the command name, whatever the name holds", () => {
    const fields = ["S", "1", "42", "42", ...Array.from({ length: 15 }, () => "0"), "987654", "0"];
    const fs = fakeFs({ "/proc/42/stat": `42 (evil) (name 1 2) ${fields.join(" ")}` });
    expect(readProcStat(fs, 42)).toEqual({ startTime: 987654, zombie: false, pgid: 42 });
  });

  it("sees a zombie, and no process at all", () => {
    const fields = ["Z", ...Array.from({ length: 18 }, () => "0"), "5"];
    expect(readProcStat(fakeFs({ "/proc/7/stat": `7 (x) ${fields.join(" ")}` }), 7)).toEqual({
      startTime: 5,
      zombie: true,
      pgid: 0,
    });
    expect(readProcStat(fakeFs({}), 8)).toBeUndefined();
  });

  it("reads the soft limits of open files and processes, unlimited as Infinity", () => {
    const limits = [
      "Limit                     Soft Limit           Hard Limit           Units     ",
      "Max processes             unlimited            unlimited            processes ",
      "Max open files            1024                 4096                 files     ",
    ].join("\n");
    expect(readLimits(fakeFs({ "/proc/self/limits": limits }))).toEqual({
      openFiles: 1024,
      processes: Number.POSITIVE_INFINITY,
    });
  });
});

describe("the supervisor program", () => {
  const config: SupervisorConfig = {
    version: PROTOCOL_VERSION,
    stateDir: "/s",
    socketPath: "/s/supervisor.sock",
    idleMs: 1,
    maxLogBytes: 1,
    logCheckMs: 1,
    maxWorkloads: 0,
    orphanPollMs: 1,
    logDir: "/s/logs",
    logPoolMin: 0,
    logPoolMax: 0,
    spawners: 0,
  };

  it("is one self-contained script that compiles on its own and embeds its config", () => {
    const source = supervisorSource(config);
    expect(() => new Script(source, { filename: "supervisor.cjs" })).not.toThrow();
    expect(source).toContain(JSON.stringify(config));
    expect(source).not.toMatch(/\brequire\(|\bimport\(|^import /m);
    // What a loader makes of a call into another module (vitest's, tsx's): such a call must
    // go through the program's table of functions instead.
    expect(source).not.toMatch(/__vite_ssr_import_|__vi_import_|\bimport_\w+\.|\(0,\s*[\w$]+\.[\w$]+\)/);
  });

  it("holds every function of the modules it is made of, each once, and a table of them by name", () => {
    const source = supervisorSource(config);
    const functions = programFunctions();
    const names = functions.map(([name]) => name);
    // One script: a second declaration of a name would silently replace the first.
    const declared = [...source.matchAll(/^(?:async )?function (\w+)/gm)].map((match) => match[1]);
    expect(declared.length).toBeGreaterThan(names.length);
    expect(new Set(declared).size).toBe(declared.length);
    expect(names).toEqual(
      expect.arrayContaining(["createJournal", "createLogFiles", "createBackstop", "launchWorkload"]),
    );
    for (const [name, fn] of functions) {
      expect(source).toContain(fn.toString());
      expect(source).toContain(`${name}: ${fn.name}`);
    }
  });

  it("gives its spawners a self-contained script too: their main function and what it calls", () => {
    const lib = Object.fromEntries(programFunctions()) as unknown as Program;
    const source = spawnerProgram(lib);
    expect(() => new Script(source, { filename: "spawner.cjs" })).not.toThrow();
    expect(source).not.toMatch(/\brequire\(|\bimport\(|^import /m);
    expect(source).not.toMatch(/__vite_ssr_import_|__vi_import_|\bimport_\w+\.|\(0,\s*[\w$]+\.[\w$]+\)/);
    for (const fn of [lib.spawnerMain, lib.readProcStat, lib.groupGone])
      expect(source).toContain(fn.toString());
  });
});
