/**
 * A scheduler on a ManualClock over a journal in a temporary folder, with a dispatch that
 * records every call and answers as the test says.
 */
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";
import {
  createScheduler,
  type Dispatch,
  type FiringContext,
  type HttpCall,
  openJournalStore,
  type Scheduler,
  type SchedulerOptions,
  type ScheduleStore,
} from "../../../src/schedule/index.js";
import { ManualClock } from "../../../src/testing/index.js";

/** 2026-01-01T00:00:00Z, where ManualClock starts. */
export const T0 = Date.UTC(2026, 0, 1);

export interface Call {
  request: HttpCall;
  context: FiringContext;
  /** The clock's time when the call was made. */
  at: number;
}

const dirs: string[] = [];
const open: Scheduler[] = [];
afterEach(async () => {
  await Promise.allSettled(open.splice(0).map((s) => s.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh folder, removed after the test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "rk-schedule-"));
  dirs.push(dir);
  return dir;
}

export interface Harness {
  clock: ManualClock;
  scheduler: Scheduler;
  store: ScheduleStore;
  journal: string;
  calls: Call[];
  /** Replaces how the dispatch answers (default: 200). */
  answer(dispatch: Dispatch): void;
  /**
   * What a process killed now would leave: a copy of the journal as it is on disk, opened by
   * a new scheduler on the same clock, as a restarted process would.
   */
  afterCrash(options?: Partial<SchedulerOptions>): Promise<Harness>;
}

/** A started scheduler (its `ready` awaited). */
export async function harness(
  options: Partial<SchedulerOptions> & { clock?: ManualClock; journal?: string } = {},
): Promise<Harness> {
  const { journal: given, ...schedulerOptions } = options;
  const clock = options.clock ?? new ManualClock(T0);
  const journal = given ?? join(tempDir(), "schedule.journal");
  const store = options.store ?? (await openJournalStore({ path: journal, clock }));
  const calls: Call[] = [];
  let answer: Dispatch = async () => ({ status_code: 200 });
  const scheduler = createScheduler({
    ...schedulerOptions,
    clock,
    store,
    dispatch: (request, context) => {
      calls.push({ request, context, at: clock.now() });
      return answer(request, context);
    },
  });
  open.push(scheduler);
  await scheduler.ready;
  return {
    clock,
    scheduler,
    store,
    journal,
    calls,
    answer: (dispatch) => {
      answer = dispatch;
    },
    afterCrash: (more = {}) => {
      const copy = join(tempDir(), "schedule.journal");
      copyFileSync(journal, copy);
      const { store: _, ...rest } = options;
      return harness({ ...rest, ...more, clock, journal: copy });
    },
  };
}

/** A dispatch that never answers until its firing is aborted, then rejects with the abort. */
export const hang: Dispatch = (_request, { signal }) =>
  new Promise((_resolve, reject) => signal.addEventListener("abort", () => reject(signal.reason)));

/** Seconds after {@link T0}, as epoch seconds. */
export const at = (seconds: number) => T0 / 1000 + seconds;
