import {
  appendFileSync,
  copyFileSync,
  mkdtempSync,
  renameSync,
  rmSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type LogFiles, type RunEnd, readLogs } from "../../../../src/backends/process/log-reader.js";
import type { LogEntry } from "../../../../src/index.js";

let dir: string;
let files: LogFiles;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "rk-logs-"));
  files = { stdout: join(dir, "w.r.stdout.log"), stderr: join(dir, "w.r.stderr.log") };
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** A run whose end the test decides. */
function controllableEnd(): RunEnd & { end(): void } {
  let ended = false;
  const callbacks = new Set<() => void>();
  return {
    ended: () => ended,
    onEnd: (callback) => {
      callbacks.add(callback);
      return () => callbacks.delete(callback);
    },
    end: () => {
      ended = true;
      for (const c of callbacks) c();
    },
  };
}
const finished: RunEnd = { ended: () => true, onEnd: () => () => {} };

async function collect(lines: AsyncIterable<LogEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const l of lines) out.push(`${l.stream}:${l.line}`);
  return out;
}

describe("reading a run's logs", () => {
  it("yields stdout then stderr, line by line, the last line even without its newline", async () => {
    writeFileSync(files.stdout, "a\nb\nc");
    writeFileSync(files.stderr, "x\n");
    expect(await collect(readLogs(files, {}, finished))).toEqual([
      "stdout:a",
      "stdout:b",
      "stdout:c",
      "stderr:x",
    ]);
  });

  it("reads missing files as empty", async () => {
    expect(await collect(readLogs(files, {}, finished))).toEqual([]);
  });

  it("keeps the last `tail` lines of each stream", async () => {
    writeFileSync(files.stdout, "1\n2\n3\n4\n");
    writeFileSync(files.stderr, "e1\ne2");
    expect(await collect(readLogs(files, { tail: 2 }, finished))).toEqual([
      "stdout:3",
      "stdout:4",
      "stderr:e1",
      "stderr:e2",
    ]);
    expect(await collect(readLogs(files, { tail: 0 }, finished))).toEqual([]);
    expect(await collect(readLogs(files, { tail: 10 }, finished))).toHaveLength(6);
  });

  it("reads the rotated copy first, and reaches into it for a tail", async () => {
    writeFileSync(`${files.stdout}.1`, "old-1\nold-2\n");
    writeFileSync(files.stdout, "new-1\n");
    expect(await collect(readLogs(files, {}, finished))).toEqual([
      "stdout:old-1",
      "stdout:old-2",
      "stdout:new-1",
    ]);
    expect(await collect(readLogs(files, { tail: 2 }, finished))).toEqual(["stdout:old-2", "stdout:new-1"]);
  });

  it("counts lines across chunk boundaries and multi-byte characters", async () => {
    const long = "é".repeat(50_000);
    writeFileSync(files.stdout, `${long}\nshort\n`);
    const lines = await collect(readLogs(files, {}, finished));
    expect(lines).toEqual([`stdout:${long}`, "stdout:short"]);
    expect(await collect(readLogs(files, { tail: 1 }, finished))).toEqual(["stdout:short"]);
  });
});

describe("following a run's logs", () => {
  it("yields new lines as they are written, and ends once the run ended and the files are drained", async () => {
    writeFileSync(files.stdout, "before\n");
    const end = controllableEnd();
    const seen: string[] = [];
    const done = (async () => {
      for await (const l of readLogs(files, { follow: true }, end)) {
        seen.push(`${l.stream}:${l.line}`);
        if (l.line === "before") appendFileSync(files.stdout, "during\npart");
        if (l.line === "during") {
          appendFileSync(files.stderr, "oops\n");
          appendFileSync(files.stdout, "ial");
          end.end();
        }
      }
    })();
    await done;
    expect(seen.filter((s) => s.startsWith("stdout"))).toEqual([
      "stdout:before",
      "stdout:during",
      "stdout:partial",
    ]);
    expect(seen).toContain("stderr:oops");
  });

  it("follows a copy-and-truncate rotation without losing what was not read yet", async () => {
    writeFileSync(files.stdout, "one\n");
    const end = controllableEnd();
    const seen: string[] = [];
    for await (const l of readLogs(files, { follow: true }, end)) {
      seen.push(l.line);
      if (l.line === "one") {
        appendFileSync(files.stdout, "two\n");
        copyFileSync(files.stdout, `${files.stdout}.1.tmp`);
        renameSync(`${files.stdout}.1.tmp`, `${files.stdout}.1`);
        truncateSync(files.stdout, 0);
        appendFileSync(files.stdout, "three\n");
        end.end();
      }
    }
    expect(seen).toEqual(["one", "two", "three"]);
  });

  it("stops when its signal aborts", async () => {
    writeFileSync(files.stdout, "x\n");
    const controller = new AbortController();
    const seen: string[] = [];
    for await (const l of readLogs(files, { follow: true, signal: controller.signal }, controllableEnd())) {
      seen.push(l.line);
      controller.abort();
    }
    expect(seen).toEqual(["x"]);
  });
});
