/**
 * What a WatchEvents stream tells the client before its first event, so that a client can
 * resume it after a disconnect without a gap and without mixing two kernels' `seq`s:
 *
 * - `runtime-kernel-events-epoch`: names the sequence the stream's `seq`s belong to. It is
 *   one id per kernel object, so a restarted server (a new kernel, whose `seq`s start over
 *   at 1) has a new epoch, while a kernel served again by a new server keeps its own.
 * - `runtime-kernel-events-seq`: the kernel's last `seq` when the stream subscribed. A
 *   client that asked for live events only resumes from there.
 * @module
 */
import { randomUUID } from "node:crypto";
import { Metadata } from "@grpc/grpc-js";
import type { RuntimeKernel } from "../index.js";

/** Initial-metadata key of the stream's epoch. */
export const EVENTS_EPOCH_HEADER = "runtime-kernel-events-epoch";
/** Initial-metadata key of the kernel's last `seq` at subscription. */
export const EVENTS_SEQ_HEADER = "runtime-kernel-events-seq";

const epochs = new WeakMap<RuntimeKernel, string>();

/** The headers of a stream subscribing now; call it right before subscribing. */
export function eventStreamHeaders(kernel: RuntimeKernel): Metadata {
  let epoch = epochs.get(kernel);
  if (!epoch) {
    epoch = randomUUID();
    epochs.set(kernel, epoch);
  }
  const metadata = new Metadata();
  metadata.set(EVENTS_EPOCH_HEADER, epoch);
  metadata.set(EVENTS_SEQ_HEADER, String(kernel.lastEventSeq));
  return metadata;
}

/** The epoch and subscription `seq` a stream opened with (absent from servers that predate them). */
export function readEventStreamHeaders(metadata: Metadata): { epoch?: string; seq?: number } {
  const epoch = metadata.get(EVENTS_EPOCH_HEADER)[0];
  const seq = Number(metadata.get(EVENTS_SEQ_HEADER)[0]);
  return {
    ...(typeof epoch === "string" ? { epoch } : {}),
    ...(Number.isSafeInteger(seq) && seq >= 0 ? { seq } : {}),
  };
}
