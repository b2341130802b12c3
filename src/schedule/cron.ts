/**
 * Cron expressions, read with croner (https://github.com/hexagon/croner): maintained, no
 * dependencies, ESM and CJS, and it evaluates patterns in any IANA time zone with defined
 * behaviour across daylight-saving changes. A fixed-time job (no wildcard or step in its
 * minute and hour, as `30 2 * * *`) runs once when its local time occurs twice, and at the
 * first valid minute after the gap when its time is skipped, as Vixie cron does; an interval
 * job (`*\/15 * * * *`) runs on wall-clock slots that exist.
 * @module
 */
import { Cron } from "croner";

const CACHE_LIMIT = 1_000;
const patterns = new Map<string, Cron>();

function patternOf(expression: string, timeZone: string): Cron {
  const key = `${timeZone}\u0000${expression}`;
  let cron = patterns.get(key);
  if (!cron) {
    cron = new Cron(expression, { timezone: timeZone, mode: "5-part", fixedTimeRule: "no-wildcard" });
    if (patterns.size >= CACHE_LIMIT) patterns.clear();
    patterns.set(key, cron);
  }
  return cron;
}

/** The first slot of `expression` strictly after `after` (epoch ms), in `timeZone`; `undefined` if there is none. */
export function nextCronSlot(expression: string, timeZone: string, after: number): number | undefined {
  return patternOf(expression, timeZone).nextRun(new Date(after))?.getTime();
}

/** The first slot after `now` (epoch ms), or why `expression` is not a 5-field cron expression that ever fires. */
export function validateCron(expression: string, timeZone: string, now: number): number | string {
  let next: number | undefined;
  try {
    next = nextCronSlot(expression, timeZone, now);
  } catch (error) {
    return `is not a valid 5-field cron expression: ${(error as Error).message.replace(/^CronPattern: /, "")}`;
  }
  return next ?? "never fires (no matching date)";
}

/** Whether `timeZone` is an IANA zone this runtime knows. */
export function isTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat("en", { timeZone });
    return true;
  } catch {
    return false;
  }
}
