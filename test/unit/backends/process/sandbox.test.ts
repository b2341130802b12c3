import { describe, expect, it } from "vitest";
import type { StartRequest } from "../../../../src/backends/backend.js";
import {
  egressOf,
  type HostSandbox,
  probeSandbox,
  programInSandbox,
  sandboxArgv,
  sandboxIdentity,
} from "../../../../src/backends/process/sandbox.js";
import { isRuntimeKernelError } from "../../../../src/errors.js";

const SECRET = "sk-live-0123456789abcdef";

const host: HostSandbox = {
  bwrap: "/usr/bin/bwrap",
  env: "/usr/bin/env",
  setpriv: "/usr/bin/setpriv",
  node: "/usr/bin/node",
  system: [{ path: "/usr" }, { path: "/bin", link: "usr/bin" }, { path: "/etc/passwd" }],
  network: "none",
};

function request(overrides: Partial<StartRequest> = {}): StartRequest {
  return {
    kernelId: "k1",
    workloadId: "agent-7",
    runId: "run-1",
    profile: "agent",
    owner: "alice",
    runnable: { command: ["sleep", "600"] },
    env: { API_TOKEN: SECRET },
    labels: {},
    ...overrides,
  };
}

const argv = (req: StartRequest, h: HostSandbox = host, cwd = "/tmp") =>
  sandboxArgv(h, { request: req, command: req.runnable.command as string[], cwd });

/** The bwrap options of an argv: what lies between the bwrap binary and `--`. */
function bwrapOptions(args: string[]): string[] {
  const start = args.indexOf(host.bwrap);
  return args.slice(start + 1, args.indexOf("--", start));
}

/** Each `flag a b` triple of the options, in order. */
function binds(args: string[]): string[][] {
  const options = bwrapOptions(args);
  const out: string[][] = [];
  options.forEach((option, i) => {
    if (["--bind", "--ro-bind", "--symlink"].includes(option)) out.push(options.slice(i, i + 3));
  });
  return out;
}

describe("the sandbox of a process workload", () => {
  it("is bwrap itself, spawned with SIGTERM ignored, which runs the command with SIGTERM given back", () => {
    const args = argv(request());
    expect(args.slice(0, 3)).toEqual(["/usr/bin/env", "--ignore-signal=TERM", "/usr/bin/bwrap"]);
    expect(args.slice(args.indexOf("--") + 1)).toEqual([
      "/usr/bin/env",
      "--default-signal=TERM",
      "sleep",
      "600",
    ]);
  });

  it("unshares every namespace, the network too, drops every capability and dies with its parent", () => {
    const options = bwrapOptions(argv(request()));
    for (const flag of [
      "--unshare-user",
      "--disable-userns",
      "--unshare-pid",
      "--unshare-ipc",
      "--unshare-uts",
      "--unshare-cgroup",
      "--unshare-net",
      "--die-with-parent",
    ]) {
      expect(options).toContain(flag);
    }
    // The command stays in the run's process group, where the supervisor's signals reach it;
    // that group's session is the supervisor's spawn's own, with no terminal.
    expect(options).not.toContain("--new-session");
    expect(options.join(" ")).toContain("--cap-drop ALL");
    expect(options.join(" ")).toContain("--hostname agent-7");
    expect(options.join(" ")).toContain("--dev /dev --proc /proc --tmpfs /tmp");
    expect(bwrapOptions(argv(request(), { ...host, network: "host" }))).not.toContain("--unshare-net");
  });

  it("holds the system paths read-only, links as links, then the workspace and the mounts, and starts in cwd", () => {
    const args = argv(
      request({
        workspace: "/srv/ws/a",
        mounts: [
          { source: "/srv/data", target: "/data", readOnly: true, root: "/srv/data" },
          { source: "/srv/out/a", target: "/out", readOnly: false, root: "/srv/out" },
        ],
      }),
      host,
      "/srv/ws/a",
    );
    expect(binds(args)).toEqual([
      ["--ro-bind", "/usr", "/usr"],
      ["--symlink", "usr/bin", "/bin"],
      ["--ro-bind", "/etc/passwd", "/etc/passwd"],
      ["--bind", "/srv/ws/a", "/srv/ws/a"],
      ["--ro-bind", "/srv/data", "/data"],
      ["--bind", "/srv/out/a", "/out"],
    ]);
    expect(bwrapOptions(args).join(" ")).toMatch(/--chdir \/srv\/ws\/a$/);
  });

  it("never puts the environment on the command line", () => {
    expect(argv(request()).join(" ")).not.toContain(SECRET);
  });

  it("refuses a mount over another or over /proc, naming it", () => {
    const mounts = [
      { source: "/srv/a", target: "/srv/ws", readOnly: false, root: "/srv" },
      { source: "/srv/b", target: "/proc", readOnly: false, root: "/srv" },
    ];
    let error: unknown;
    try {
      argv(request({ workspace: "/srv/ws", mounts }));
    } catch (e) {
      error = e;
    }
    expect(isRuntimeKernelError(error, "INVALID_SPEC")).toBe(true);
    expect((error as { issues: Array<{ path: string }> }).issues.map((i) => i.path)).toEqual([
      "mounts.0.target",
      "mounts.1.target",
    ]);
  });
});

describe("egress", () => {
  it("binds the proxy's socket in and runs the command behind a loopback forwarder", () => {
    const req = request();
    const args = sandboxArgv(host, {
      request: req,
      command: ["sleep", "600"],
      cwd: "/tmp",
      egressSocket: "/state/e1.sock",
    });
    expect(binds(args)).toContainEqual(["--bind", "/state/e1.sock", "/run/rk-egress.sock"]);
    const inner = args.slice(args.lastIndexOf("--default-signal=TERM") + 1);
    expect(inner.slice(0, 2)).toEqual(["/bin/sh", "-c"]);
    expect(inner[4]).toBe("/usr/bin/node");
    expect(inner[5]).toContain('listen(3128,"127.0.0.1"');
    expect(inner.slice(6)).toEqual(["sleep", "600"]);
  });

  it("is refused, naming the field, without a sandbox, with a network, or with a bad policy", () => {
    const req = (egress: unknown) => request({ runnable: { command: ["true"], egress } });
    expect(egressOf(request(), undefined)).toBeUndefined();
    expect(egressOf(req({ allowedHosts: ["api.example.com"] }), host)).toEqual({
      allowedHosts: ["api.example.com"],
    });
    expect(() => egressOf(req({ allowedHosts: [] }), undefined)).toThrow(
      /runnable\.egress: needs ProcessBackend/,
    );
    expect(() => egressOf(req({}), { ...host, network: "host" })).toThrow(/network "none"/);
    expect(() => egressOf(req({ allowedHosts: "x" }), host)).toThrow(/runnable\.egress\.allowedHosts/);
    expect(() => egressOf(req({ defaultAction: "maybe" }), host)).toThrow(/runnable\.egress\.defaultAction/);
  });
});

describe("uidPerOwner", () => {
  it("runs bwrap as the owner's own uid and gid, without the supervisor's groups", () => {
    const args = argv(request({ owner: "alice" }), { ...host, uidPerOwner: { base: 1000, count: 100 } });
    const { uid, gid } = sandboxIdentity("alice", { base: 1000, count: 100 });
    expect(args.slice(2, 7)).toEqual([
      "/usr/bin/setpriv",
      `--reuid=${uid}`,
      `--regid=${gid}`,
      "--clear-groups",
      "--",
    ]);
    expect(args[7]).toBe("/usr/bin/bwrap");
  });

  it("gives each owner a deterministic uid in [base, base + count)", () => {
    const a = sandboxIdentity("alice", true);
    expect(sandboxIdentity("alice", true)).toEqual(a);
    expect(sandboxIdentity("bob", true).uid).not.toBe(a.uid);
    // FNV-1a of "" is its offset basis: the owner-less uid is fixed too.
    expect(sandboxIdentity(undefined, { base: 10, count: 7 }).uid).toBe(10 + (0x811c9dc5 % 7));
    for (const owner of ["a", "b", "tenant-42", "ünïcode"]) {
      const { uid } = sandboxIdentity(owner, { base: 500, count: 10 });
      expect(uid).toBeGreaterThanOrEqual(500);
      expect(uid).toBeLessThan(510);
    }
  });
});

describe("probeSandbox", () => {
  it("refuses, naming the Debian package, when bubblewrap is missing", () => {
    expect(() => probeSandbox({ bwrap: "/nonexistent/bwrap" })).toThrow(
      /install the Debian package "bubblewrap"/,
    );
    expect(() => probeSandbox({}, { PATH: "/nonexistent" })).toThrow(/bwrap was not found on PATH/);
  });

  it("refuses bad options naming the field", () => {
    expect(() =>
      probeSandbox({
        systemPaths: ["usr"],
        network: "bridge" as "none",
        uidPerOwner: { base: 0, count: 10 },
      }),
    ).toThrow(
      /sandbox\.systemPaths\.0: must be an absolute path; sandbox\.network: .*; sandbox\.uidPerOwner: /,
    );
  });

  it("keeps top-level links as links and skips missing paths", () => {
    const probed = probeSandbox({ systemPaths: ["/usr", "/nonexistent-dir"] });
    expect(probed.system).toEqual([{ path: "/usr" }]);
    expect(probed.network).toBe("none");
  });
});

describe("programInSandbox", () => {
  const probed = probeSandbox({});

  it("finds a program on PATH through the system paths, links followed", () => {
    expect(programInSandbox(probed, request(), "sh", "/bin:/usr/bin")).toMatch(/\/sh$/);
    expect(programInSandbox(probed, request(), "/bin/sh", undefined)).toMatch(/\/sh$/);
  });

  it("finds one in a mount at its source, and nothing the sandbox does not hold", () => {
    const req = request({
      mounts: [{ source: "/usr/bin", target: "/tools", readOnly: true, root: "/usr/bin" }],
    });
    expect(programInSandbox(probed, req, "/tools/env", undefined)).toBe("/usr/bin/env");
    expect(programInSandbox(probed, request(), "/tools/env", undefined)).toBeUndefined();
    expect(programInSandbox(probed, request(), "/nonexistent/program", undefined)).toBeUndefined();
    expect(programInSandbox(probed, request(), "no-such-program-here", "/usr/bin")).toBeUndefined();
    // The host's /root is not in the sandbox, whatever is there.
    expect(programInSandbox(probed, request(), "/root/.bashrc", undefined)).toBeUndefined();
  });
});
