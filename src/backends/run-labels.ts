/**
 * The run-label codec: how the kernel writes what it must find again about a run into
 * `StartRequest.labels` (see `LABELS`), and how the kernel and the backends read it back.
 * Owns the format only; it must not import the kernel, nor anything of a concrete backend.
 * @module
 */
import { LABELS } from "./backend.js";

/** What a run's labels record about it. */
export interface RunLabels {
  kernelId: string;
  workloadId: string;
  runId: string;
  profile: string;
  owner?: string;
  /** Epoch ms at which the run was created. */
  createdAt: number;
  /** Epoch ms of the hard max-lifetime deadline; absent when disabled. */
  maxLifetimeAt?: number;
  /** The restart attempt of this run (0: the first run). */
  restart: number;
  /** The spec's trace id. */
  traceId?: string;
}

/** What can be read back from labels found on a substrate: nothing in them is trusted. */
export interface DecodedRunLabels {
  workloadId?: string;
  profile?: string;
  /** Absent when missing or empty. */
  owner?: string;
  /** 0 when missing or not a number. */
  createdAt: number;
  /** Present only as a finite epoch ms after 0. */
  maxLifetimeAt?: number;
  /** 0 when missing or not a number. */
  restart: number;
  /** Absent when missing or empty; the kernel checks it as it checks a spec's. */
  traceId?: string;
}

/** The labels of a run: the caller's own first, then the kernel's, which win. */
export function encodeRunLabels(run: RunLabels, own?: Record<string, string>): Record<string, string> {
  const labels: Record<string, string> = {
    ...own,
    [LABELS.kernelId]: run.kernelId,
    [LABELS.workloadId]: run.workloadId,
    [LABELS.runId]: run.runId,
    [LABELS.profile]: run.profile,
    [LABELS.createdAt]: String(run.createdAt),
  };
  if (run.owner !== undefined) labels[LABELS.owner] = run.owner;
  if (run.maxLifetimeAt !== undefined) labels[LABELS.maxLifetimeAt] = String(run.maxLifetimeAt);
  if (run.restart > 0) labels[LABELS.restart] = String(run.restart);
  if (run.traceId !== undefined) labels[LABELS.traceId] = run.traceId;
  return labels;
}

/** Reads back what {@link encodeRunLabels} wrote, dropping what is missing or malformed. */
export function decodeRunLabels(labels: Record<string, string>): DecodedRunLabels {
  const decoded: DecodedRunLabels = {
    createdAt: Number(labels[LABELS.createdAt]) || 0,
    restart: Number(labels[LABELS.restart] ?? 0) || 0,
  };
  const workloadId = labels[LABELS.workloadId];
  if (workloadId !== undefined) decoded.workloadId = workloadId;
  const profile = labels[LABELS.profile];
  if (profile !== undefined) decoded.profile = profile;
  const owner = labels[LABELS.owner];
  if (owner) decoded.owner = owner;
  const maxLifetimeAt = Number(labels[LABELS.maxLifetimeAt]);
  if (Number.isFinite(maxLifetimeAt) && maxLifetimeAt > 0) decoded.maxLifetimeAt = maxLifetimeAt;
  const traceId = labels[LABELS.traceId];
  if (traceId) decoded.traceId = traceId;
  return decoded;
}
