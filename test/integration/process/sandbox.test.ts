/**
 * Escape attempts from inside a sandboxed process workload, each asserted to fail, and the
 * same attempt from an unsandboxed one asserted to succeed (so each test proves it can see an
 * escape): host files outside its mounts, a read-only mount, a planted link, the host's
 * loopback, other workloads, the host's environment, capabilities; and owners kept apart by
 * their own uids.
 */

import { spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { ProcessBackend, ProcessHandle } from "../../../src/backends/process/index.js";
import { type ExitStatus, LABELS, type StartRequest, sandboxIdentity } from "../../../src/index.js";
import { newBackend, requireRoot, teardown } from "./helpers.js";

// Set before any supervisor starts: it must reach no workload.
const HOST_SECRET = "rk-host-secret-3f9a0c";
process.env.RK_TEST_HOST_SECRET = HOST_SECRET;

const base = mkdtempSync(join(tmpdir(), "rk-sandbox-"));
// Owners' uids must be able to pass through to their directories (not list them).
chmodSync(base, 0o711);
const wsA = join(base, "a");
const wsB = join(base, "b");
const secretFile = join(base, "host-secret.txt");
const sandboxed = newBackend({ sandbox: {} });
const plain = newBackend();
const backends = [sandboxed, plain];

beforeAll(() => {
  for (const dir of [wsA, wsB]) mkdirSync(dir);
  writeFileSync(join(wsB, "secret.txt"), "b's data\n");
  writeFileSync(secretFile, "host data\n");
  // A link planted in a's workspace, pointing out of it.
  symlinkSync(base, join(wsA, "escape"));
});
afterAll(async () => {
  await Promise.all(backends.map((b) => teardown(b)));
  rmSync(base, { recursive: true, force: true });
});

let serial = 0;
function request(script: string, overrides: Partial<StartRequest> = {}): StartRequest {
  const workloadId = overrides.workloadId ?? `w-${++serial}`;
  const runId = `${workloadId}-run-${serial}`;
  return {
    kernelId: "sandbox-test",
    workloadId,
    runId,
    profile: "p",
    runnable: { command: ["sh", "-c", script] },
    env: {},
    labels: { [LABELS.kernelId]: "sandbox-test", [LABELS.workloadId]: workloadId, [LABELS.runId]: runId },
    ...overrides,
  };
}

const never = () => new AbortController().signal;

/** Runs a script to its exit; returns its stdout lines. */
async function run(
  backend: ProcessBackend,
  script: string,
  overrides: Partial<StartRequest> = {},
): Promise<{ status: ExitStatus; lines: string[] }> {
  const handle = await backend.start(request(script, overrides), { signal: never() });
  const status = await new Promise<ExitStatus>((resolve) => backend.watchExit(handle, resolve));
  const lines: string[] = [];
  for await (const entry of backend.logs(handle, {})) if (entry.stream === "stdout") lines.push(entry.line);
  await backend.cleanup(handle);
  return { status, lines };
}

/** A shell line that prints `leak:NAME` if `command` succeeds, else `denied:NAME`. */
const attempt = (name: string, command: string) =>
  `if ${command} >/dev/null 2>&1; then echo leak:${name}; else echo denied:${name}; fi`;

describe("a sandboxed workload", () => {
  it("cannot read host files outside its mounts: another workload's workspace, the kernel's state dir, the host's", async () => {
    const script = [
      attempt("other-workspace", `cat ${join(wsB, "secret.txt")}`),
      attempt("state-dir", `ls ${sandboxed.stateDir}`),
      attempt("host-file", `cat ${secretFile}`),
      attempt("root-home", "ls /root"),
      attempt("shadow", "cat /etc/shadow"),
      attempt("own-workspace", `ls ${wsA}`),
    ].join("; ");
    expect((await run(sandboxed, script, { workspace: wsA })).lines).toEqual([
      "denied:other-workspace",
      "denied:state-dir",
      "denied:host-file",
      "denied:root-home",
      "denied:shadow",
      "leak:own-workspace",
    ]);
    // The same attempts, unsandboxed, all get through: the sandbox is what stops them.
    expect((await run(plain, script, { workspace: wsA })).lines.every((l) => l.startsWith("leak:"))).toBe(
      true,
    );
  });

  it("cannot write to a read-only mount, and writes where it may", async () => {
    const script = [
      attempt("write-ro", "touch /data/new"),
      attempt("read-ro", "cat /data/secret.txt"),
      attempt("write-rw", "touch /out/made"),
    ].join("; ");
    const mounts = [
      { source: wsB, target: "/data", readOnly: true, root: base },
      { source: wsA, target: "/out", readOnly: false, root: base },
    ];
    expect((await run(sandboxed, script, { mounts })).lines).toEqual([
      "denied:write-ro",
      "leak:read-ro",
      "leak:write-rw",
    ]);
    expect(() => statSync(join(wsB, "new"))).toThrow();
    expect(statSync(join(wsA, "made")).isFile()).toBe(true);
  });

  it("cannot follow a link planted in its workspace to outside it", async () => {
    const script = [attempt("link", `cat ${join(wsA, "escape", "host-secret.txt")}`)].join("; ");
    expect((await run(sandboxed, script, { workspace: wsA })).lines).toEqual(["denied:link"]);
    expect((await run(plain, script, { workspace: wsA })).lines).toEqual(["leak:link"]);
  });

  describe("next to a server on the host's loopback", () => {
    let server: Server;
    let connections = 0;
    let port = 0;
    beforeAll(async () => {
      server = createServer((socket) => {
        connections++;
        socket.destroy();
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it("cannot open a TCP connection to it (its network is its own loopback)", async () => {
      const script = attempt("tcp", `bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}'`);
      expect((await run(sandboxed, script)).lines).toEqual(["denied:tcp"]);
      expect(connections).toBe(0);
      expect((await run(plain, script)).lines).toEqual(["leak:tcp"]);
      expect(connections).toBe(1);
    });
  });

  it("cannot see or signal another workload's processes", async () => {
    const other = await sandboxed.start(request("sleep 601", { workloadId: "other" }), { signal: never() });
    try {
      const script = [
        attempt("see", `ls /proc/${other.pid}`),
        attempt("signal", `kill -0 ${other.pid}`),
        // Nothing of the other workload shows in its /proc.
        attempt("list", "grep -qs 'slee[p].601' /proc/[0-9]*/cmdline"),
      ].join("; ");
      const { lines } = await run(sandboxed, script);
      expect(lines.slice(0, 3)).toEqual(["denied:see", "denied:signal", "denied:list"]);
      expect(await sandboxed.exitCode(other as ProcessHandle)).toBeNull();
      expect((await run(plain, script)).lines.slice(0, 3)).toEqual(["leak:see", "leak:signal", "leak:list"]);
    } finally {
      await sandboxed.kill(other);
      await sandboxed.cleanup(other);
    }
  });

  it("cannot read the host's environment, or any host process's", async () => {
    expect((await run(sandboxed, 'echo "home=$HOME tmp=$TMPDIR"')).lines).toEqual(["home=/tmp tmp=/tmp"]);
    const script = [
      attempt("env", `env | grep -q ${HOST_SECRET}`),
      attempt("environ", `cat /proc/[0-9]*/environ | grep -aq ${HOST_SECRET}`),
    ].join("; ");
    expect((await run(sandboxed, script)).lines).toEqual(["denied:env", "denied:environ"]);
    // A host process holding it: unsandboxed, its environment is there to read.
    const holder = spawn("sleep", ["600"], {
      env: { ...process.env, RK_TEST_HOST_SECRET: HOST_SECRET },
      stdio: "ignore",
    });
    try {
      const environ = attempt("environ", `grep -aq ${HOST_SECRET} /proc/${holder.pid}/environ`);
      expect((await run(plain, environ)).lines).toEqual(["leak:environ"]);
      expect((await run(sandboxed, environ)).lines).toEqual(["denied:environ"]);
    } finally {
      holder.kill("SIGKILL");
    }
  });

  it("holds no capability and cannot gain one: no_new_privs, no user namespace of its own, no mount", async () => {
    const script = [
      "grep -E '^(CapEff|CapPrm|CapBnd|CapAmb|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '",
      attempt("userns", "unshare -U -r true"),
      // A directory of its own: were the sandbox broken, nothing of the host's would be covered.
      attempt("mount", "mkdir -p /tmp/rk-mount-probe && mount -t tmpfs none /tmp/rk-mount-probe"),
      attempt("chroot", "chroot / true"),
    ].join("; ");
    expect((await run(sandboxed, script)).lines).toEqual([
      "CapPrm: 0000000000000000",
      "CapEff: 0000000000000000",
      "CapBnd: 0000000000000000",
      "CapAmb: 0000000000000000",
      "NoNewPrivs: 1",
      "denied:userns",
      "denied:mount",
      "denied:chroot",
    ]);
  });
});

describe("egress through the allowlist proxy", () => {
  let server: Server;
  let port = 0;
  const seen: string[] = [];
  beforeAll(async () => {
    server = createHttpServer((req, res) => {
      seen.push(req.url ?? "");
      res.end("hello from the allowed host\n");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    port = (server.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  /** A raw HTTP/1.0 request through the proxy the workload's HTTP_PROXY names; prints the status line. */
  const through = (url: string) =>
    `bash -c 'p=\${HTTP_PROXY#http://}; exec 3<>/dev/tcp/\${p%:*}/\${p##*:} && printf "GET ${url} HTTP/1.0\\r\\n\\r\\n" >&3 && head -1 <&3' | tr -d '\\r'`;

  it("reaches an allowed host only through the proxy, gets 403 for any other, and has no other way out", async () => {
    const script = [
      'echo "proxy: $HTTP_PROXY"',
      through(`http://127.0.0.1:${port}/allowed`),
      through("http://denied.example.com/"),
      attempt("direct", `bash -c 'exec 3<>/dev/tcp/127.0.0.1/${port}'`),
    ].join("; ");
    // Unix servers in this process (the run's proxy among them), to see that none outlives the run.
    const servers = () => process.getActiveResourcesInfo().filter((r) => r === "PipeWrap").length;
    const before = servers();
    const { status, lines } = await run(sandboxed, script, {
      runnable: { command: ["sh", "-c", script], egress: { allowedHosts: ["127.0.0.1"] } },
    });
    await vi.waitFor(() => expect(servers(), "unix handles left after cleanup").toBeLessThanOrEqual(before));
    expect(lines).toEqual([
      "proxy: http://127.0.0.1:3128",
      "HTTP/1.1 200 OK",
      "HTTP/1.1 403 Forbidden",
      "denied:direct",
    ]);
    expect(status.exitCode).toBe(0);
    expect(seen).toEqual(["/allowed"]);
  });

  it("is refused, naming the field, on the unsandboxed backend", async () => {
    await expect(
      plain.start(request("true", { runnable: { command: ["true"], egress: { allowedHosts: [] } } }), {
        signal: never(),
      }),
    ).rejects.toThrow(/runnable\.egress: needs ProcessBackend\(\{ sandbox \}\)/);
  });
});

describe("uidPerOwner", () => {
  const owned = newBackend({ sandbox: { uidPerOwner: { base: 3_000_000, count: 1_000 } } });
  backends.push(owned);
  const alice = sandboxIdentity("alice", { base: 3_000_000, count: 1_000 });
  const bob = sandboxIdentity("bob", { base: 3_000_000, count: 1_000 });
  const dirA = join(base, "owner-a");
  const dirB = join(base, "owner-b");

  beforeAll(() => {
    requireRoot("uidPerOwner");
    expect(alice.uid).not.toBe(bob.uid);
    for (const [dir, id] of [
      [dirA, alice],
      [dirB, bob],
    ] as const) {
      mkdirSync(dir, { mode: 0o700 });
      chownSync(dir, id.uid, id.gid);
    }
    writeFileSync(join(dirB, "secret.txt"), "bob's data\n");
    chownSync(join(dirB, "secret.txt"), bob.uid, bob.gid);
  });

  it("runs each owner as its own uid, so owner A cannot read owner B's workspace even when given its path", async () => {
    const script = [
      "id -u",
      attempt("own", "touch /mine/made"),
      attempt("other", "cat /theirs/secret.txt"),
      attempt("other-list", "ls /theirs"),
    ].join("; ");
    const mounts = [
      { source: dirA, target: "/mine", readOnly: false, root: base },
      { source: dirB, target: "/theirs", readOnly: true, root: base },
    ];
    const { lines } = await run(owned, script, { owner: "alice", mounts });
    expect(lines).toEqual([String(alice.uid), "leak:own", "denied:other", "denied:other-list"]);
    // What it made belongs to its uid on the host too.
    expect(statSync(join(dirA, "made")).uid).toBe(alice.uid);
    // Bob's own workload reads it.
    const bobs = await run(owned, attempt("own", "cat /theirs/secret.txt"), { owner: "bob", mounts });
    expect(bobs.lines).toEqual(["leak:own"]);
  });
});

describe("stopping a sandboxed workload", () => {
  it("reaches the command with a SIGTERM sent while bubblewrap still sets the sandbox up (143 and SIGTERM)", async () => {
    // Terminated as soon as the start resolves: most of these are still in bubblewrap's setup,
    // where SIGTERM is ignored. A lost one would never exit here (nothing sends SIGKILL).
    const handles = await Promise.all(
      Array.from({ length: 20 }, () => sandboxed.start(request("exec sleep 600"), { signal: never() })),
    );
    const exits = handles.map((h) => new Promise<ExitStatus>((resolve) => sandboxed.watchExit(h, resolve)));
    await Promise.all(handles.map((h) => sandboxed.terminate(h, { graceMs: 60_000 })));
    expect(await Promise.all(exits)).toEqual(handles.map(() => ({ exitCode: 143, signal: "SIGTERM" })));
    await Promise.all(handles.map((h) => sandboxed.cleanup(h)));
  });

  it("reports a command's death by signal as that signal, and an exit code above 128 that is no fatal signal as a code", async () => {
    expect((await run(sandboxed, "kill -USR1 $$")).status).toEqual({ exitCode: 138, signal: "SIGUSR1" });
    expect((await run(sandboxed, "exit 145")).status).toEqual({ exitCode: 145 });
    expect((await run(plain, "exit 145")).status).toEqual({ exitCode: 145 });
  });
});
