/**
 * Reading a run's output back: each stream has its own file (plus one rotated `.1` copy),
 * written by the workload directly. Reads open and close the files for each chunk, so a
 * follower holds no file descriptor between reads; it wakes on inotify (`fs.watch`) and,
 * as a safety net, on a slow poll.
 * @module
 */
import { type FSWatcher, watch } from "node:fs";
import { open, stat } from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";
import type { LogEntry, LogOptions } from "../backend.js";

/** The two files of a run. */
export interface LogFiles {
  stdout: string;
  stderr: string;
}

/** How the reader learns that the run has ended (so a follower can finish). */
export interface RunEnd {
  ended(): boolean;
  /** Resolves when the run ends; the returned function stops waiting. */
  onEnd(callback: () => void): () => void;
}

const CHUNK = 64 * 1024;
const POLL_MS = 500;

interface StreamState {
  stream: LogEntry["stream"];
  path: string;
  offset: number;
  rotatedIno: number | undefined;
  decoder: StringDecoder;
  partial: string;
}

async function size(path: string): Promise<{ size: number; ino: number } | undefined> {
  try {
    const s = await stat(path);
    return { size: s.size, ino: s.ino };
  } catch {
    return undefined;
  }
}

/** Reads `[start, end)` of a file, chunk by chunk. A missing file reads as empty. */
async function* readRange(path: string, start: number, end: number): AsyncGenerator<Buffer> {
  if (end <= start) return;
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch {
    return;
  }
  try {
    let position = start;
    while (position < end) {
      const buffer = Buffer.allocUnsafe(Math.min(CHUNK, end - position));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
      if (bytesRead === 0) return;
      position += bytesRead;
      yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

function* splitLines(state: StreamState, chunk: Buffer, at: number | undefined): Generator<LogEntry> {
  const text = state.partial + state.decoder.write(chunk);
  const lines = text.split("\n");
  state.partial = lines.pop() ?? "";
  for (const line of lines) yield entry(state.stream, line, at);
}

function entry(stream: LogEntry["stream"], line: string, at: number | undefined): LogEntry {
  return at === undefined ? { stream, line } : { stream, line, at };
}

function* flush(state: StreamState, at: number | undefined): Generator<LogEntry> {
  const rest = state.partial + state.decoder.end();
  state.partial = "";
  state.decoder = new StringDecoder("utf8");
  if (rest !== "") yield entry(state.stream, rest, at);
}

/**
 * Where the last `wanted` lines of a file begin, and how many lines that range holds (fewer
 * when the file is shorter). A last line without its newline counts as a line.
 */
async function tailOffset(
  path: string,
  fileSize: number,
  wanted: number,
): Promise<{ offset: number; lines: number }> {
  if (wanted <= 0 || fileSize === 0) return { offset: fileSize, lines: 0 };
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch {
    return { offset: fileSize, lines: 0 };
  }
  try {
    let position = fileSize;
    let newlines = 0;
    // A trailing newline ends the last line; it does not start another one.
    let trailing = true;
    while (position > 0) {
      const length = Math.min(CHUNK, position);
      position -= length;
      const buffer = Buffer.allocUnsafe(length);
      await handle.read(buffer, 0, length, position);
      for (let i = length - 1; i >= 0; i--) {
        const isNewline = buffer[i] === 0x0a;
        if (trailing) {
          trailing = false;
          if (isNewline) continue;
        }
        if (!isNewline) continue;
        newlines++;
        if (newlines === wanted) return { offset: position + i + 1, lines: wanted };
      }
    }
    return { offset: 0, lines: newlines + 1 };
  } finally {
    await handle.close();
  }
}

/**
 * Yields what one stream holds now (the rotated copy, then the current file), or only its
 * last `tail` lines, and leaves `state` at the end of the current file for a follower. A
 * partial last line stays in `state` (a follower completes it; the caller flushes it otherwise).
 */
async function* readStream(state: StreamState, tail: number | undefined): AsyncGenerator<LogEntry> {
  const rotated = await size(`${state.path}.1`);
  const current = await size(state.path);
  state.rotatedIno = rotated?.ino;
  const currentSize = current?.size ?? 0;
  let from = 0;
  let rotatedFrom = 0;
  if (tail !== undefined) {
    const inCurrent = await tailOffset(state.path, currentSize, tail);
    from = inCurrent.offset;
    rotatedFrom = rotated?.size ?? 0;
    if (inCurrent.lines < tail && rotated) {
      rotatedFrom = (await tailOffset(`${state.path}.1`, rotated.size, tail - inCurrent.lines)).offset;
    }
  }
  if (rotated) {
    for await (const chunk of readRange(`${state.path}.1`, rotatedFrom, rotated.size)) {
      yield* splitLines(state, chunk, undefined);
    }
  }
  for await (const chunk of readRange(state.path, from, currentSize))
    yield* splitLines(state, chunk, undefined);
  state.offset = currentSize;
}

function fresh(stream: LogEntry["stream"], path: string): StreamState {
  return { stream, path, offset: 0, rotatedIno: undefined, decoder: new StringDecoder("utf8"), partial: "" };
}

/** Reads what was appended to one stream since its offset, following a rotation. */
async function* readNew(state: StreamState, at: number): AsyncGenerator<LogEntry> {
  const current = await size(state.path);
  const rotated = await size(`${state.path}.1`);
  if (rotated && rotated.ino !== state.rotatedIno) {
    // Rotated since the last read: the copy holds what we had not read yet, at the same offsets.
    state.rotatedIno = rotated.ino;
    for await (const chunk of readRange(`${state.path}.1`, state.offset, rotated.size))
      yield* splitLines(state, chunk, at);
    state.offset = 0;
  } else if (current && current.size < state.offset) {
    state.offset = 0;
  }
  const end = current?.size ?? 0;
  for await (const chunk of readRange(state.path, state.offset, end)) {
    state.offset += chunk.length;
    yield* splitLines(state, chunk, at);
  }
}

/**
 * The lines of a run's output. Within a stream, lines come in order; stdout and stderr
 * are separate files, so without `follow` all of stdout comes first, and `tail` applies
 * to each stream. With `follow`, new lines come as they are written until the run ends
 * (then the files are drained) or `signal` aborts.
 */
export async function* readLogs(files: LogFiles, options: LogOptions, end: RunEnd): AsyncGenerator<LogEntry> {
  const states = [fresh("stdout", files.stdout), fresh("stderr", files.stderr)];
  const { signal, tail, follow } = options;
  for (const state of states) {
    for await (const line of readStream(state, tail)) {
      if (signal?.aborted) return;
      yield line;
    }
    if (!follow) yield* flush(state, undefined);
  }
  if (!follow) return;

  let wake: (() => void) | undefined;
  // A poke while not waiting (the files changed or the run ended during a read) must not be lost.
  let poked = false;
  const poke = () => {
    const w = wake;
    wake = undefined;
    if (w) w();
    else poked = true;
  };
  const watchers: FSWatcher[] = [];
  for (const state of states) {
    try {
      watchers.push(watch(state.path, { persistent: false }, poke).on("error", () => {}));
    } catch {
      // No inotify for this file (not created yet, or no watches left): the poll covers it.
    }
  }
  const stopEnd = end.onEnd(poke);
  signal?.addEventListener("abort", poke, { once: true });
  try {
    for (;;) {
      if (signal?.aborted) return;
      poked = false;
      const finished = end.ended();
      const at = Date.now();
      for (const state of states) {
        for await (const line of readNew(state, at)) {
          if (signal?.aborted) return;
          yield line;
        }
      }
      if (finished) {
        for (const state of states) yield* flush(state, at);
        return;
      }
      if (poked) {
        poked = false;
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, POLL_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    stopEnd();
    signal?.removeEventListener("abort", poke);
    for (const watcher of watchers) watcher.close();
  }
}
