/**
 * The supervisor's max-lifetime backstop: one timer, set for the earliest `killAt` of the runs
 * still alive, that has a run killed once its time is over, whether or not a kernel is
 * connected. It owns that timer only; it must not signal, read or write anything itself: its
 * owner lists the runs and kills them. Part of the supervisor's program (see `supervisor.ts`):
 * each function reaches Node only through its parameters.
 * @module
 */
import type { Clock } from "../../clock.js";

/** What {@link createBackstop} needs; `R` is its owner's run. */
export interface BackstopOptions<R> {
  clock: Clock;
  /** Every run the owner holds. */
  runs(): Iterable<R>;
  /** When the run is to be killed: `undefined` once it has exited or when it has no max lifetime. */
  killAt(run: R): number | undefined;
  /** Kills the run (its time is over). */
  kill(run: R): void;
}

/** The backstop of one supervisor. */
export interface Backstop {
  /** Makes sure the backstop fires by `killAt` (epoch ms); `undefined` asks for nothing. */
  arm(killAt: number | undefined): void;
}

/** The state the functions below share. */
export interface BackstopState<R> {
  options: BackstopOptions<R>;
  timer: unknown;
  /** When the timer fires; Infinity while none is set. */
  at: number;
}

/** A backstop over `options.runs()`; no timer is set until {@link Backstop.arm} asks for one. */
export function createBackstop<R>(options: BackstopOptions<R>): Backstop {
  const state: BackstopState<R> = { options, timer: undefined, at: Number.POSITIVE_INFINITY };
  return { arm: (killAt) => armBackstop(state, killAt) };
}

/** Sets the timer for `killAt`, unless one is set for earlier already. */
export function armBackstop<R>(state: BackstopState<R>, killAt: number | undefined): void {
  if (killAt === undefined || killAt >= state.at) return;
  const { clock } = state.options;
  if (state.timer !== undefined) clock.clearTimeout(state.timer);
  state.at = killAt;
  state.timer = clock.setTimeout(() => fireBackstop(state), Math.max(0, killAt - clock.now()));
}

/** Kills the runs whose time is over, then sets the timer for the next one. */
export function fireBackstop<R>(state: BackstopState<R>): void {
  const { clock, runs, killAt, kill } = state.options;
  state.timer = undefined;
  state.at = Number.POSITIVE_INFINITY;
  const t = clock.now();
  let next: number | undefined;
  for (const run of runs()) {
    const at = killAt(run);
    if (at === undefined) continue;
    if (at <= t) kill(run);
    else if (next === undefined || at < next) next = at;
  }
  armBackstop(state, next);
}
