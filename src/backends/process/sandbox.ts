/**
 * The sandbox of a process workload: the bubblewrap (`bwrap`) argv that runs a command in
 * namespaces of its own (user, pid, ipc, uts, cgroup, network), on a filesystem that holds
 * the system's programs read-only, a private /tmp, its own /proc, a minimal /dev and its
 * mounts, and nothing else of the host; with every capability dropped and `no_new_privs`.
 * {@link sandboxArgv} is pure (what reaches `spawn` can be read and tested without running
 * it); {@link probeSandbox} looks at the host once, when the backend is built.
 * @module
 */
import { existsSync, lstatSync, readlinkSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { BackendUnavailableError, InvalidSpecError, type ValidationIssue } from "../../errors.js";
import type { EgressPolicy } from "../../net/egress-proxy.js";
import type { StartRequest, WorkloadMount } from "../backend.js";

/** Options of `ProcessBackend({ sandbox })`; see docs/isolation.md. */
export interface ProcessSandboxOptions {
  /**
   * Host paths bound read-only into every sandbox: the programs, libraries and the few /etc
   * files they need. Missing ones are skipped; a top-level link (`/bin -> usr/bin`) stays a
   * link. Default {@link DEFAULT_SYSTEM_PATHS}. `["/"]` gives the host's whole root read-only
   * (every file that the workload's uid may read, the kernel's state dir included: avoid).
   */
  systemPaths?: readonly string[];
  /**
   * `"none"` (default): a network namespace with loopback only; a workload with `egress`
   * reaches out through the egress proxy alone. `"host"`: the host's network, unfenced.
   */
  network?: "none" | "host";
  /**
   * Run each owner's workloads as a uid and gid of their own, on the host and inside: uid =
   * `base + fnv1a32(owner) % count` (the owner `""` when a spec has none), so two tenants
   * cannot read each other's files or signal each other. Needs a supervisor running as root.
   * `true` means `{ base: 1_000_000, count: 1_000_000 }`. Give each owner's directories to
   * its uid ({@link sandboxIdentity}); two owners may hash to one uid (1 in a million per
   * pair): hosts with many tenants pick a larger `count` or check.
   */
  uidPerOwner?: boolean | { base?: number; count?: number };
  /** The bubblewrap binary. Default: `bwrap` found on `PATH`. */
  bwrap?: string;
}

/**
 * The default system paths: programs and libraries (under merged /usr these are links into
 * /usr), the dynamic loader's cache, name-service files without secrets (`passwd`, `group`,
 * not `shadow`), time zone, and TLS roots.
 */
export const DEFAULT_SYSTEM_PATHS: readonly string[] = [
  "/usr",
  "/bin",
  "/sbin",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
  "/etc/alternatives",
  "/etc/ld.so.cache",
  "/etc/ld.so.conf",
  "/etc/ld.so.conf.d",
  "/etc/passwd",
  "/etc/group",
  "/etc/nsswitch.conf",
  "/etc/hosts",
  "/etc/localtime",
  "/etc/ssl",
  "/etc/ca-certificates",
];

/** The uids of `uidPerOwner: true`: [1,000,000, 2,000,000), clear of the usual system and subuid ranges. */
const DEFAULT_UID_RANGE = { base: 1_000_000, count: 1_000_000 };

/** A system path as the host has it: a directory or file to bind, or a link to recreate. */
export type SystemPath = { path: string; link?: string };

/** What the host offers a sandbox, found once by {@link probeSandbox}. */
export interface HostSandbox {
  bwrap: string;
  /** `env` from coreutils (inside the sandbox), which resets SIGTERM to its default before the command. */
  env: string;
  /** `setpriv` from util-linux, which takes on an owner's uid before bwrap runs. */
  setpriv: string;
  /** The Node binary that runs a workload's egress forwarder inside its sandbox. */
  node: string;
  system: SystemPath[];
  network: "none" | "host";
  uidPerOwner?: { base: number; count: number };
}

/** bubblewrap is missing, or the host cannot give what `sandbox` asks: not worth a retry. */
function unavailable(message: string): BackendUnavailableError {
  return new BackendUnavailableError(message, { retryable: false });
}

function which(name: string, path: string | undefined): string | undefined {
  if (name.includes("/")) return existsSync(name) ? name : undefined;
  for (const dir of (path ?? "").split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/**
 * Looks at the host for what `options` needs: bubblewrap (refusing, naming the Debian
 * package, when it is missing: never a silent fallback to no sandbox), the system paths
 * and which of them are links, and root when `uidPerOwner` asks for it.
 */
export function probeSandbox(
  options: ProcessSandboxOptions,
  env: NodeJS.ProcessEnv = process.env,
): HostSandbox {
  const path = env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  const bwrap = which(options.bwrap ?? "bwrap", path);
  if (!bwrap) {
    throw unavailable(
      `ProcessBackend({ sandbox }) needs bubblewrap, and ${options.bwrap ?? "bwrap"} was not found on PATH: install the Debian package "bubblewrap" (apt-get install bubblewrap)`,
    );
  }
  const tool = (name: string, pkg: string) => {
    const found = which(name, path);
    if (!found) throw unavailable(`ProcessBackend({ sandbox }) needs ${name} (Debian package "${pkg}")`);
    return found;
  };
  const issues: ValidationIssue[] = [];
  const system: SystemPath[] = [];
  for (const [i, p] of (options.systemPaths ?? DEFAULT_SYSTEM_PATHS).entries()) {
    if (typeof p !== "string" || !p.startsWith("/")) {
      issues.push({ path: `sandbox.systemPaths.${i}`, message: "must be an absolute path" });
      continue;
    }
    let stats: ReturnType<typeof lstatSync>;
    try {
      stats = lstatSync(p);
    } catch {
      continue;
    }
    system.push(stats.isSymbolicLink() ? { path: p, link: readlinkSync(p) } : { path: p });
  }
  const network = options.network ?? "none";
  if (network !== "none" && network !== "host") {
    issues.push({ path: "sandbox.network", message: 'must be "none" or "host"' });
  }
  const own = options.uidPerOwner;
  const uidPerOwner = own ? { ...DEFAULT_UID_RANGE, ...(own === true ? {} : own) } : undefined;
  if (uidPerOwner) {
    const { base, count } = uidPerOwner;
    if (
      !Number.isSafeInteger(base) ||
      !Number.isSafeInteger(count) ||
      base < 1 ||
      count < 1 ||
      base + count > 2 ** 31
    ) {
      issues.push({
        path: "sandbox.uidPerOwner",
        message: "base and count must be positive integers with base + count <= 2^31",
      });
    }
  }
  if (issues.length > 0) throw new InvalidSpecError(issues, { subject: "ProcessBackend options" });
  if (uidPerOwner && (process.geteuid?.() ?? 0) !== 0) {
    throw unavailable(
      "sandbox.uidPerOwner needs the supervisor to run as root (to take on each owner's uid)",
    );
  }
  return {
    bwrap,
    env: "/usr/bin/env",
    setpriv: uidPerOwner ? tool("setpriv", "util-linux") : "setpriv",
    node: process.execPath,
    system,
    network,
    ...(uidPerOwner ? { uidPerOwner } : {}),
  };
}

/** FNV-1a, 32 bits: a stable, well-spread hash of an owner's name. */
function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, "utf8")) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

/**
 * The uid and gid that `owner`'s workloads run as under `uidPerOwner` (`{ base, count }`, or
 * `true` for the defaults): what a host gives each owner's directories to.
 */
export function sandboxIdentity(
  owner: string | undefined,
  uidPerOwner: true | { base?: number; count?: number },
): { uid: number; gid: number } {
  const { base, count } = { ...DEFAULT_UID_RANGE, ...(uidPerOwner === true ? {} : uidPerOwner) };
  const uid = base + (fnv1a32(owner ?? "") % count);
  return { uid, gid: uid };
}

/** Everything of one run that shapes its sandbox. */
export interface SandboxRun {
  request: StartRequest;
  /** The argv to run inside (already wrapped by prlimit when limits apply). */
  command: string[];
  /** The working directory inside the sandbox. */
  cwd: string;
  /** The host path of the unix socket of the run's egress proxy, when it has one. */
  egressSocket?: string;
}

/** Where a sandboxed workload finds its egress proxy: HTTP_PROXY and HTTPS_PROXY point here. */
export const EGRESS_PROXY_URL = "http://127.0.0.1:3128";
/** Where the egress proxy's socket is bound inside the sandbox. */
const EGRESS_SOCKET = "/run/rk-egress.sock";
const EGRESS_READY = "/tmp/.rk-egress-ready";

/**
 * The egress forwarder, run by Node inside the sandbox: the loopback port of
 * {@link EGRESS_PROXY_URL}, each connection piped to the proxy's socket bound in. It says it
 * is listening by creating {@link EGRESS_READY}.
 */
const FORWARDER = `const net=require("node:net");net.createServer((c)=>{const u=net.connect(${JSON.stringify(EGRESS_SOCKET)});c.pipe(u).pipe(c);c.on("error",()=>u.destroy());u.on("error",()=>c.destroy())}).listen(3128,"127.0.0.1",()=>require("node:fs").writeFileSync(${JSON.stringify(EGRESS_READY)},""))`;

/**
 * Starts the forwarder (\$1 is Node, \$2 its code), waits until it listens (at most 5 s, or
 * until it died), then becomes the command.
 */
const WITH_FORWARDER = `"$1" -e "$2" & f=$!; shift 2; n=0
while [ ! -e ${EGRESS_READY} ] && [ "$n" -lt 500 ] && kill -0 "$f" 2>/dev/null; do sleep 0.01; n=$((n + 1)); done
exec "$@"`;

/** A host directory given to the workload, whatever the request called it. */
function bindsOf(request: StartRequest): Array<Pick<WorkloadMount, "source" | "target" | "readOnly">> {
  // The workspace is a one-entry set at its own path, so a cwd relative to it means the same
  // inside as outside.
  const workspace = request.workspace;
  return [
    ...(workspace !== undefined ? [{ source: workspace, target: workspace, readOnly: false }] : []),
    ...(request.mounts ?? []),
  ];
}

/**
 * The argv that runs `run.command` sandboxed: spawned by the supervisor (which stays the
 * parent, and signals and reaps it as any workload), with the workload's environment given
 * through the spawn's own (never on a command line, where other users could read it).
 * Throws {@link InvalidSpecError} naming the field for a mount it cannot make.
 */
export function sandboxArgv(host: HostSandbox, run: SandboxRun): string[] {
  const { request } = run;
  const issues: ValidationIssue[] = [];
  const args: string[] = [
    "--unshare-user",
    // No user namespace of its own inside: it would hold every capability there.
    "--disable-userns",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup",
    ...(host.network === "none" ? ["--unshare-net"] : []),
    "--die-with-parent",
    "--cap-drop",
    "ALL",
    "--hostname",
    request.workloadId.slice(0, 63),
  ];
  for (const entry of host.system) {
    if (entry.link !== undefined) args.push("--symlink", entry.link, entry.path);
    else args.push("--ro-bind", entry.path, entry.path);
  }
  args.push("--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp");
  const targets = new Set<string>();
  for (const [i, mount] of bindsOf(request).entries()) {
    const field =
      i === 0 && request.workspace !== undefined
        ? "workspace"
        : `mounts.${i - (request.workspace !== undefined ? 1 : 0)}`;
    if (!mount.source.startsWith("/") || !mount.target.startsWith("/")) {
      issues.push({ path: field, message: "needs absolute source and target paths" });
    } else if (targets.has(mount.target) || ["/", "/proc", "/dev"].includes(mount.target)) {
      issues.push({ path: `${field}.target`, message: `${mount.target} is already mounted` });
    } else {
      targets.add(mount.target);
      args.push(mount.readOnly ? "--ro-bind" : "--bind", mount.source, mount.target);
    }
  }
  if (issues.length > 0) {
    throw new InvalidSpecError(issues, { workloadId: request.workloadId, subject: "start request" });
  }
  let command = run.command;
  if (run.egressSocket !== undefined) {
    args.push("--bind", run.egressSocket, EGRESS_SOCKET);
    if (programInSandbox(host, request, host.node, undefined) === undefined) {
      args.push("--ro-bind", host.node, host.node);
    }
    command = ["/bin/sh", "-c", WITH_FORWARDER, "sh", host.node, FORWARDER, ...command];
  }
  args.push("--chdir", run.cwd);
  const bwrap = [host.bwrap, ...args, "--", host.env, "--default-signal=TERM", ...command];
  const identity = host.uidPerOwner ? sandboxIdentity(request.owner, host.uidPerOwner) : undefined;
  const asOwner = identity
    ? [host.setpriv, `--reuid=${identity.uid}`, `--regid=${identity.gid}`, "--clear-groups", "--", ...bwrap]
    : bwrap;
  // bwrap itself is what the supervisor spawns (see sandbox-signals.ts for how a stop and an
  // exit go through it): SIGTERM ignored, so that the signal to the group that stops the
  // command does not kill bubblewrap first (and the command with it, through
  // --die-with-parent); the command gets it back from `env --default-signal`.
  return [host.env, "--ignore-signal=TERM", ...asOwner];
}

/**
 * Where the sandbox would find `program` (`argv[0]`), as a host path, or undefined when it
 * would not: so that a missing program fails the start with START_FAILED, as it does
 * unsandboxed, instead of bwrap's exit 1. A name without '/' is looked up on `path` (the
 * workload's PATH).
 */
export function programInSandbox(
  host: HostSandbox,
  request: StartRequest,
  program: string,
  path: string | undefined,
): string | undefined {
  const binds = bindsOf(request).sort((a, b) => b.target.length - a.target.length);
  const hostPathOf = (inside: string): string | undefined => {
    for (const bind of binds) {
      if (inside === bind.target || inside.startsWith(`${bind.target}/`)) {
        return bind.source + inside.slice(bind.target.length);
      }
    }
    for (const entry of host.system) {
      const link = entry.link;
      if (inside === entry.path || inside.startsWith(`${entry.path}/`)) {
        // A top-level link such as /bin -> usr/bin: follow it inside the sandbox.
        if (link === undefined) return inside;
        const target = link.startsWith("/") ? link : join(dirname(entry.path), link);
        return target === entry.path ? undefined : hostPathOf(target + inside.slice(entry.path.length));
      }
    }
    return undefined;
  };
  const candidates = program.includes("/")
    ? [program]
    : (path ?? "")
        .split(":")
        .filter((dir) => dir.startsWith("/"))
        .map((dir) => join(dir, program));
  for (const candidate of candidates) {
    const found = hostPathOf(candidate);
    if (found !== undefined && existsSync(found)) return found;
  }
  return undefined;
}

/**
 * The egress policy of a run (`runnable.egress`: `{ allowedHosts, defaultAction }`, a
 * profile's setting), checked: only a sandbox with no network of its own can hold a workload
 * to a proxy. Throws {@link InvalidSpecError} naming the field.
 */
export function egressOf(request: StartRequest, host: HostSandbox | undefined): EgressPolicy | undefined {
  const egress = request.runnable.egress as EgressPolicy | undefined;
  if (egress === undefined) return undefined;
  const refuse = (path: string, message: string) =>
    new InvalidSpecError([{ path: `runnable.egress${path}`, message }], {
      workloadId: request.workloadId,
      subject: "start request",
    });
  if (host?.network !== "none") {
    throw refuse(
      "",
      'needs ProcessBackend({ sandbox }) with network "none": a process with a network of its own would not need the proxy',
    );
  }
  if (host?.uidPerOwner)
    throw refuse(
      "",
      "is not available with sandbox.uidPerOwner yet (the proxy's socket lives in the root-only state dir)",
    );
  if (typeof egress !== "object" || egress === null)
    throw refuse("", "must be { allowedHosts, defaultAction }");
  const { allowedHosts, defaultAction } = egress;
  if (
    allowedHosts !== undefined &&
    (!Array.isArray(allowedHosts) || allowedHosts.some((h) => typeof h !== "string" || h === ""))
  ) {
    throw refuse(".allowedHosts", "must be a list of host names (exact, or *.suffix)");
  }
  if (
    defaultAction !== undefined &&
    defaultAction !== "allow" &&
    defaultAction !== "deny" &&
    defaultAction !== ""
  ) {
    throw refuse(".defaultAction", 'must be "allow" or "deny"');
  }
  return egress;
}
