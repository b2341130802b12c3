/**
 * A process run as the kernel sees it: its JSON handle, made from what the supervisor records,
 * and what the supervisor's replies mean in the port's terms (exit statuses, start errors).
 * Pure translations: it must not call the supervisor or touch any file but /proc.
 * @module
 */
import { readFileSync } from "node:fs";
import {
  BackendUnavailableError,
  isRuntimeKernelError,
  ResourceExhaustedError,
  StartFailedError,
} from "../../errors.js";
import type { ExitStatus, WorkloadHandle } from "../backend.js";
import type { RunRecord, WireExit } from "./protocol.js";
import { SupervisorError } from "./supervisor-client.js";

/** The JSON handle of one process run. */
export interface ProcessHandle extends WorkloadHandle {
  backend: "process";
  /** The workload's pid, which is also its process group id. */
  pid: number;
  /** Field 22 of /proc/<pid>/stat: with the pid, identifies the process across pid reuse. */
  startTime: number;
  /** /proc/sys/kernel/random/boot_id at the start: a pid and start time only mean something within one boot. */
  bootId: string;
  /** The file that receives the run's stdout. */
  stdoutPath: string;
  /** The file that receives the run's stderr. */
  stderrPath: string;
}

/** An exit as the supervisor reports it, in the port's terms. */
export function toExitStatus(exit: WireExit): ExitStatus {
  if (exit.lost) return { exitCode: null, lost: true };
  return exit.signal ? { exitCode: exit.exitCode, signal: exit.signal } : { exitCode: exit.exitCode };
}

/** This boot's id (empty when unreadable). */
export function readBootId(): string {
  try {
    return readFileSync("/proc/sys/kernel/random/boot_id", "latin1").trim();
  } catch {
    return "";
  }
}

/** The handle of a run the supervisor has on record. */
export function handleOf(record: RunRecord): ProcessHandle {
  return {
    workloadId: record.workloadId,
    runId: record.runId,
    backend: "process",
    pid: record.pid,
    startTime: record.startTime,
    bootId: record.bootId,
    stdoutPath: record.stdoutPath,
    stderrPath: record.stderrPath,
  };
}

/** What a failed start request means for the caller: a typed error naming the workload. */
export function startError(workloadId: string, error: unknown): Error {
  if (error instanceof SupervisorError) {
    if (error.code === "RESOURCE_EXHAUSTED") return new ResourceExhaustedError(error.message, { workloadId });
    if (error.code === "BACKEND_UNAVAILABLE")
      return new BackendUnavailableError(error.message, { workloadId });
    return new StartFailedError(workloadId, error.message);
  }
  if (isRuntimeKernelError(error)) return error;
  return new StartFailedError(workloadId, `Cannot start "${workloadId}": ${(error as Error).message}`, {
    cause: error,
  });
}
