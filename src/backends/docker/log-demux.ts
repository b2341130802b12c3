/**
 * The engine's log stream for a container without a TTY is multiplexed: frames of an 8-byte
 * header (stream id, three zero bytes, big-endian payload length) and a payload. With
 * `timestamps=1` every frame is one log message prefixed by its RFC 3339 time and a space.
 * This turns those frames into lines, per stream, keeping an unfinished line until its end
 * arrives (possibly in a later frame, possibly split in the middle of a UTF-8 character).
 * @module
 */
import { StringDecoder } from "node:string_decoder";
import type { LogEntry } from "../backend.js";

const HEADER = 8;
const TIMESTAMP = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2}) /;

/** Epoch ms of an RFC 3339 time with up to nanosecond precision (Date.parse takes milliseconds only). */
export function parseTimestamp(seconds: string, fraction: string | undefined, zone: string): number {
  const ms = fraction ? fraction.slice(0, 4).padEnd(4, "0") : "";
  return Date.parse(`${seconds}${ms}${zone}`);
}

interface StreamState {
  decoder: StringDecoder;
  partial: string;
  at: number | undefined;
}

/** Incremental demultiplexer: `push` chunks as they arrive, `end` once the stream closed. */
export class LogDemuxer {
  #pending: Buffer = Buffer.alloc(0);
  readonly #streams: Record<LogEntry["stream"], StreamState> = {
    stdout: { decoder: new StringDecoder("utf8"), partial: "", at: undefined },
    stderr: { decoder: new StringDecoder("utf8"), partial: "", at: undefined },
  };
  readonly #timestamps: boolean;

  /** @param timestamps whether the stream was requested with `timestamps=1`. */
  constructor(timestamps = true) {
    this.#timestamps = timestamps;
  }

  /** The complete lines in `chunk` (and in what earlier chunks left unfinished). */
  push(chunk: Buffer): LogEntry[] {
    const entries: LogEntry[] = [];
    let buffer = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    while (buffer.length >= HEADER) {
      const size = buffer.readUInt32BE(4);
      if (buffer.length < HEADER + size) break;
      const id = buffer[0];
      const payload = buffer.subarray(HEADER, HEADER + size);
      buffer = buffer.subarray(HEADER + size);
      // 0 is stdin (never sent back), 3 is the engine's own error for a failed log read.
      const stream: LogEntry["stream"] | undefined =
        id === 1 ? "stdout" : id === 2 || id === 3 ? "stderr" : undefined;
      if (stream) this.#frame(stream, payload, entries);
    }
    this.#pending = Buffer.from(buffer);
    return entries;
  }

  /** The unfinished lines, once no more data will come. */
  end(): LogEntry[] {
    const entries: LogEntry[] = [];
    for (const stream of ["stdout", "stderr"] as const) {
      const state = this.#streams[stream];
      state.partial += state.decoder.end();
      if (state.partial.length > 0) entries.push(entry(stream, state.partial, state.at));
      state.partial = "";
    }
    return entries;
  }

  #frame(stream: LogEntry["stream"], payload: Buffer, entries: LogEntry[]): void {
    const state = this.#streams[stream];
    let body = payload;
    if (this.#timestamps) {
      // The prefix is ASCII: strip it from the bytes, before a character split across frames
      // (a long message is sent in parts) is decoded.
      const match = TIMESTAMP.exec(payload.subarray(0, 48).toString("latin1"));
      if (match) {
        body = payload.subarray(match[0].length);
        // A continued (partial) message keeps the time of the line it started.
        if (state.partial.length === 0) state.at = parseTimestamp(match[1]!, match[2], match[3]!);
      }
    }
    const text = state.decoder.write(body);
    let start = 0;
    for (let nl = text.indexOf("\n"); nl >= 0; nl = text.indexOf("\n", start)) {
      const line = state.partial + text.slice(start, nl);
      state.partial = "";
      entries.push(entry(stream, line.endsWith("\r") ? line.slice(0, -1) : line, state.at));
      start = nl + 1;
    }
    state.partial += text.slice(start);
  }
}

function entry(stream: LogEntry["stream"], line: string, at: number | undefined): LogEntry {
  return at === undefined || Number.isNaN(at) ? { stream, line } : { stream, line, at };
}

/** Builds one multiplexed frame (for tests and tools that fake the engine). */
export function muxFrame(stream: LogEntry["stream"], payload: string | Buffer): Buffer {
  const body = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload;
  const header = Buffer.alloc(HEADER);
  header[0] = stream === "stdout" ? 1 : 2;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}
