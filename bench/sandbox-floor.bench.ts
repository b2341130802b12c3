/**
 * Where a sandboxed stop's time goes: raw bubblewrap, no kernel, with the backend's own argv
 * and with one isolation taken away at a time, beside raw spawn, in the same run.
 *
 *   npm run bench:sandbox-floor
 *
 * Prints one JSON line. For N (default 1,000) concurrent `sleep 60` per variant, rounds
 * interleaved and medians reported: the time until all run (spawned, and in a sandbox the
 * command past bubblewrap's setup), and until all have exited after a SIGTERM to each
 * process group. Variants:
 * - `raw`: `child_process.spawn("sleep")`, the floor of any process;
 * - `sandbox`: the argv `ProcessBackend({ sandbox: {} })` spawns (bwrap's monitor, the
 *   sandbox's pid 1, the command);
 * - `noNet`, `noUser`, `noPid`: the same without its network, user or pid namespace (no pid 1
 *   then): what each costs. Measurements, not options: the sandbox keeps all three;
 * - `mountOnly`: bubblewrap with a mount namespace alone (the host's root read-only, /dev,
 *   /proc): bubblewrap's own floor.
 */
import { type HostSandbox, probeSandbox } from "../src/backends/process/sandbox.js";
import { untilCommandsRun } from "./proc-tree.js";
import { AS_THE_SUPERVISOR_SPAWNS, sandboxedSleepArgv, spawnAll } from "./raw-floor.js";

const N = Number(process.env.BENCH_N ?? 1_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);

const now = () => performance.now();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)] as number;
const round2 = (x: number) => Math.round(x * 100) / 100;

const host: HostSandbox = probeSandbox({});
const sandbox = sandboxedSleepArgv();
const without = (...flags: string[]) => sandbox.filter((arg) => !flags.includes(arg));
const variants: Record<string, string[]> = {
  raw: ["sleep", "60"],
  sandbox,
  noNet: without("--unshare-net"),
  noUser: without("--unshare-user", "--disable-userns"),
  noPid: without("--unshare-pid"),
  mountOnly: [
    host.env,
    "--ignore-signal=TERM",
    host.bwrap,
    "--die-with-parent",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    "--",
    host.env,
    "--default-signal=TERM",
    "sleep",
    "60",
  ],
};

async function measure(argv: string[]): Promise<{ startMs: number; stopMs: number }> {
  const t0 = now();
  const children = await spawnAll(argv, N, AS_THE_SUPERVISOR_SPAWNS);
  const exits = children.map((c) => new Promise((resolve) => c.once("exit", resolve)));
  await untilCommandsRun(children.map((c) => c.pid as number));
  const startMs = now() - t0;
  const t1 = now();
  for (const c of children) process.kill(-(c.pid as number), "SIGTERM");
  await Promise.all(exits);
  return { startMs, stopMs: now() - t1 };
}

const samples: Record<string, Array<{ startMs: number; stopMs: number }>> = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, argv] of Object.entries(variants)) {
    (samples[name] ??= []).push(await measure(argv));
    // What a batch leaves to the kernel's workers (namespaces freed after the exits) is done
    // before the next starts.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
  }
}

const pick = (key: "startMs" | "stopMs") =>
  Object.fromEntries(
    Object.entries(samples).map(([name, xs]) => [name, round2(median(xs.map((x) => x[key])))]),
  );
const stopMs = pick("stopMs");
console.log(
  JSON.stringify({
    bench: "sandbox-floor",
    n: N,
    rounds: ROUNDS,
    stopMs,
    startMs: pick("startMs"),
    stopToRaw: Object.fromEntries(
      Object.entries(stopMs).map(([name, ms]) => [name, round2(ms / (stopMs.raw as number))]),
    ),
  }),
);
