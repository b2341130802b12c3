import * as fs from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  createLogFiles,
  type LogFilesOptions,
} from "../../../../src/backends/process/supervisor-log-files.js";
import { ManualClock } from "../../../../src/testing/index.js";

describe("the supervisor's log files", () => {
  let dir: string;
  let clock: ManualClock;
  let diag: string[];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(tmpdir(), "rk-logs-"));
    clock = new ManualClock();
    diag = [];
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const logFiles = (options: Partial<LogFilesOptions> = {}) =>
    createLogFiles({
      fs,
      path,
      logDir: dir,
      poolMin: 2,
      poolMax: 8,
      maxLogBytes: 10,
      owner: { pid: 7, startedAt: 1 },
      clock,
      diag: (message) => diag.push(message),
      ...options,
    });
  const pool = () => fs.readdirSync(path.join(dir, ".pool")).sort();

  it("keeps twice the pool's size of empty files ready, made while nothing else happens", async () => {
    const logs = logFiles();
    logs.load();
    logs.activity();
    logs.scheduleRefill(0);
    await clock.advance(49);
    expect(pool()).toEqual([]);
    await clock.advance(1);
    expect(pool()).toEqual(["7-1-1", "7-1-2", "7-1-3", "7-1-4"]);
    expect(logs.pooled).toBe(4);
    expect(clock.pending).toBe(0);
  });

  it("grows the pool to the most live workloads seen, up to its maximum, and ignores what is not a number", async () => {
    const logs = logFiles();
    logs.load();
    logs.grow("many");
    logs.grow(3);
    await clock.runAll();
    expect(logs.pooled).toBe(6);
    logs.grow(1_000);
    await clock.runAll();
    expect(logs.pooled).toBe(16);
  });

  it("makes nothing ahead of time when the pool is disabled", async () => {
    const logs = logFiles({ poolMin: 0 });
    logs.load();
    logs.grow(5);
    logs.scheduleRefill(0);
    expect(clock.pending).toBe(0);
    expect(fs.existsSync(path.join(dir, ".pool"))).toBe(false);
  });

  it("takes in only the plain empty files of its user that an earlier supervisor left", () => {
    fs.mkdirSync(path.join(dir, ".pool"));
    fs.writeFileSync(path.join(dir, ".pool", "empty"), "");
    fs.writeFileSync(path.join(dir, ".pool", "written"), "data");
    fs.writeFileSync(path.join(dir, "elsewhere"), "");
    fs.symlinkSync(path.join(dir, "elsewhere"), path.join(dir, ".pool", "link"));
    fs.linkSync(path.join(dir, "elsewhere"), path.join(dir, ".pool", "hardlink"));
    const logs = logFiles();
    logs.load();
    expect(logs.pooled).toBe(1);
    const fd = logs.open(path.join(dir, "w1.out"));
    fs.closeSync(fd);
    expect(fs.existsSync(path.join(dir, ".pool", "empty"))).toBe(false);
  });

  it("opens a run's file from the pool, or creates it and its folder, appending, never through a link", async () => {
    const logs = logFiles();
    logs.load();
    logs.scheduleRefill(0);
    await clock.runAll();
    const file = path.join(dir, "w1.out");
    fs.closeSync(logs.open(file));
    expect(logs.pooled).toBe(3);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);

    const empty = logFiles({ poolMin: 0 });
    const nested = path.join(dir, "deeper", "w2.out");
    for (const text of ["a", "b"]) {
      const fd = empty.open(nested);
      fs.writeSync(fd, text);
      fs.closeSync(fd);
    }
    expect(fs.readFileSync(nested, "utf8")).toBe("ab");
    fs.symlinkSync(path.join(dir, "elsewhere"), path.join(dir, "w3.out"));
    expect(() => empty.open(path.join(dir, "w3.out"))).toThrow(/ELOOP/);
  });

  it("rotates a file over its cap once, to .1, and deletes the copy with the file", () => {
    const logs = logFiles();
    const file = path.join(dir, "w1.out");
    fs.writeFileSync(file, "0123456789");
    logs.rotate(file);
    expect(fs.existsSync(`${file}.1`)).toBe(false);
    fs.appendFileSync(file, "!");
    logs.rotate(file);
    expect(fs.readFileSync(`${file}.1`, "utf8")).toBe("0123456789!");
    expect(fs.readFileSync(file, "utf8")).toBe("");
    logs.delete(file, false);
    expect(fs.existsSync(file) || fs.existsSync(`${file}.1`)).toBe(false);
  });

  it("deletes a file's .1 only when it rotated it or an earlier supervisor may have", () => {
    const logs = logFiles();
    const file = path.join(dir, "w1.out");
    for (const fromEarlier of [false, true]) {
      fs.writeFileSync(file, "");
      fs.writeFileSync(`${file}.1`, "old");
      logs.delete(file, fromEarlier);
      expect(fs.existsSync(file)).toBe(false);
      expect(fs.existsSync(`${file}.1`)).toBe(!fromEarlier);
    }
  });

  it("notes a rotation that fails and leaves no temporary copy", () => {
    const logs = logFiles({
      fs: {
        ...fs,
        truncateSync: () => {
          throw new Error("EIO: no");
        },
      } as typeof fs,
    });
    const file = path.join(dir, "w1.out");
    fs.writeFileSync(file, "01234567890");
    logs.rotate(file);
    expect(diag).toEqual([`log rotation of ${file} failed: EIO: no`]);
    expect(fs.existsSync(`${file}.1.tmp`)).toBe(false);
  });
});
