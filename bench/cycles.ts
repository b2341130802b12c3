/**
 * Create+stop+destroy cycles from concurrent callers, timed: what the service and HTTP
 * benches run against each surface, so their figures are measured the same way.
 */

/** The three calls of one cycle, on any surface. */
export interface Calls {
  create(id: string): Promise<unknown>;
  stop(id: string): Promise<unknown>;
  destroy(id: string): Promise<unknown>;
}

/** One round's measurements. */
export interface RoundResult {
  wallMs: number;
  cpuMs: number;
  cycleMs: number[];
  callMs: number[];
}

export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
};
export const median = (xs: number[]) => pct(xs, 50);
export const r3 = (x: number) => Math.round(x * 1000) / 1000;

let serial = 0;

/** `cycles` cycles from `callers.length` concurrent loops (each on a fresh id); every call and cycle timed. */
export async function round(callers: Calls[], cycles: number): Promise<RoundResult> {
  globalThis.gc?.();
  const cycleMs: number[] = [];
  const callMs: number[] = [];
  let remaining = cycles;
  const timed = async (call: () => Promise<unknown>) => {
    const t = performance.now();
    await call();
    callMs.push(performance.now() - t);
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(
    callers.map(async (calls) => {
      while (remaining > 0) {
        remaining--;
        const id = `w-${++serial}`;
        const t = performance.now();
        await timed(() => calls.create(id));
        await timed(() => calls.stop(id));
        await timed(() => calls.destroy(id));
        cycleMs.push(performance.now() - t);
      }
    }),
  );
  const wallMs = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  return { wallMs, cpuMs: (cpu.user + cpu.system) / 1000, cycleMs, callMs };
}

/** Medians over rounds. */
export function summary(results: RoundResult[], cycles: number) {
  return {
    cyclesPerSec: r3(median(results.map((r) => (cycles / r.wallMs) * 1000))),
    callsPerSec: r3(median(results.map((r) => ((3 * cycles) / r.wallMs) * 1000))),
    cycleP50Ms: r3(median(results.map((r) => pct(r.cycleMs, 50)))),
    cycleP99Ms: r3(median(results.map((r) => pct(r.cycleMs, 99)))),
    callP50Ms: r3(median(results.map((r) => pct(r.callMs, 50)))),
    callP99Ms: r3(median(results.map((r) => pct(r.callMs, 99)))),
    cpuMsPerCycle: r3(median(results.map((r) => r.cpuMs / cycles))),
  };
}
