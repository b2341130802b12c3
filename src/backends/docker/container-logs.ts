/**
 * A container's output as `logs` yields it: both streams demultiplexed, timestamped by the
 * engine, followed or not. It owns only the log request; it never looks at the container's state.
 * @module
 */
import type { Readable } from "node:stream";
import type Dockerode from "dockerode";
import type { RuntimeKernelError } from "../../errors.js";
import type { LogEntry, LogOptions } from "../backend.js";
import { LogDemuxer } from "./log-demux.js";

/** Turns an engine failure while reading logs (`what`) into the error `logs` rejects with. */
export type LogFailure = (what: string, error: unknown) => RuntimeKernelError;

/** The output of `container`, as `Backend.logs` yields it. */
export async function* containerLogs(
  container: Dockerode.Container,
  options: LogOptions,
  failure: LogFailure,
): AsyncIterable<LogEntry> {
  const { follow = false, tail, signal } = options;
  if (signal?.aborted) return;
  const query = {
    stdout: true,
    stderr: true,
    timestamps: true,
    ...(tail === undefined ? {} : { tail: Math.max(0, Math.floor(tail)) }),
  };
  const demux = new LogDemuxer(true);
  if (!follow) {
    let body: Buffer;
    try {
      body = (await container.logs({ ...query, follow: false })) as unknown as Buffer;
    } catch (error) {
      throw failure("reading logs", error);
    }
    yield* demux.push(Buffer.isBuffer(body) ? body : Buffer.from(String(body), "utf8"));
    yield* demux.end();
    return;
  }
  let stream: Readable;
  try {
    stream = (await container.logs({ ...query, follow: true })) as unknown as Readable;
  } catch (error) {
    throw failure("following logs", error);
  }
  const abort = () => stream.destroy();
  signal?.addEventListener("abort", abort, { once: true });
  try {
    for await (const chunk of stream) {
      yield* demux.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as string));
    }
  } catch (error) {
    if (!signal?.aborted) throw failure("following logs", error);
  } finally {
    signal?.removeEventListener("abort", abort);
    stream.destroy();
  }
  yield* demux.end();
}
