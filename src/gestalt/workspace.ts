/**
 * Agent workspaces inside a session folder (`PrepareWorkspace` / `RemoveWorkspace`): each
 * agent session gets `<session folder>/workspaces/<agent session id>`, holding its git
 * checkouts (made with the system `git`) or, with no checkouts, a plain folder. The
 * request is checked as gestaltd checks it before anything touches the disk; a workspace
 * prepared again with the same request is returned as it is, and one prepared again with a
 * different request is refused.
 * @module
 */
import { execFile } from "node:child_process";
import { mkdir, readFile, realpath, rm, stat, writeFile } from "node:fs/promises";
import { join, posix, relative, sep } from "node:path";
import type { AgentWorkspace, PreparedWorkspace, PrepareWorkspaceRequest } from "./provider.js";
import { RuntimeProviderError } from "./provider.js";

const WORKSPACES = "workspaces";
const RECORDS = ".workspace-requests";
const AGENT_SESSION_ID = /^[A-Za-z0-9._-]+$/;
const SCP_LIKE = /^[^@\s/\\]+@([^:\s]+):(.+)$/;

function invalid(method: string, message: string): RuntimeProviderError {
  return new RuntimeProviderError("INVALID_SPEC", method, message);
}

/** The agent session id is a single path segment of letters, digits, `.`, `_` and `-`. */
function checkAgentSessionId(method: string, id: string): string {
  const trimmed = id.trim();
  if (trimmed === "") throw invalid(method, "agent_session_id is required");
  if (trimmed === "." || trimmed === ".." || !AGENT_SESSION_ID.test(trimmed)) {
    throw invalid(
      method,
      `agent_session_id ${JSON.stringify(id)} must be one path segment of letters, digits, ".", "_" and "-"`,
    );
  }
  return trimmed;
}

/** A relative path that stays inside the workspace, cleaned (`a/./b` is `a/b`). */
function relativePath(field: string, value: string): string {
  const trimmed = value.trim();
  if (trimmed === "") throw new Error(`${field}: a relative path is required`);
  if (trimmed.includes("\\")) throw new Error(`${field}: backslash separators are not allowed`);
  if (trimmed.startsWith("/")) throw new Error(`${field}: absolute paths are not allowed`);
  const cleaned = posix.normalize(trimmed).replace(/\/+$/, "");
  if (cleaned === "." || cleaned === ".." || cleaned.startsWith("../")) {
    throw new Error(`${field}: the path must stay inside the workspace`);
  }
  return cleaned;
}

const contains = (parent: string, child: string) => parent === child || child.startsWith(`${parent}/`);

/** Refuses what gestaltd refuses in a checkout URL: local paths, user info, query, unknown schemes. */
function checkGitUrl(field: string, url: string): void {
  if (SCP_LIKE.test(url)) return;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    if (url.startsWith("/") || url.startsWith(".")) {
      throw new Error(`${field}: local git paths are not allowed; use file:// with an absolute path`);
    }
    throw new Error(`${field}: a git URL with a scheme is required`);
  }
  const scheme = parsed.protocol.replace(/:$/, "").toLowerCase();
  if (parsed.search !== "" || parsed.hash !== "")
    throw new Error(`${field}: query and fragment are not allowed`);
  if (parsed.username !== "" || parsed.password !== "") throw new Error(`${field}: user info is not allowed`);
  if (scheme === "file") {
    if (parsed.hostname !== "" && parsed.hostname !== "localhost") {
      throw new Error(`${field}: file git URLs must be local`);
    }
    return;
  }
  if (!["https", "http", "ssh", "git"].includes(scheme)) {
    throw new Error(`${field}: git URL scheme ${JSON.stringify(scheme)} is not supported`);
  }
  if (parsed.pathname.replace(/^\/+/, "") === "") throw new Error(`${field}: the repository path is missing`);
}

/** The workspace request, checked and cleaned; throws `INVALID_SPEC` naming the field. */
export function normalizeWorkspace(method: string, workspace: AgentWorkspace | undefined): AgentWorkspace {
  if (!workspace) throw invalid(method, "workspace is required");
  try {
    const checkouts = workspace.checkouts.map((checkout, i) => {
      const field = `workspace.checkouts[${i}]`;
      const url = checkout.url.trim();
      if (url === "") throw new Error(`${field}.url is required`);
      checkGitUrl(`${field}.url`, url);
      const ref = (checkout.ref ?? "").trim();
      if (ref.startsWith("-")) throw new Error(`${field}.ref must not start with "-"`);
      return { url, ref, path: relativePath(`${field}.path`, checkout.path) };
    });
    checkouts.forEach((checkout, i) => {
      const other = checkouts.findIndex(
        (c, j) => j < i && (contains(c.path, checkout.path) || contains(checkout.path, c.path)),
      );
      if (other >= 0) {
        throw new Error(`workspace.checkouts[${i}].path overlaps ${JSON.stringify(checkouts[other]!.path)}`);
      }
    });
    // A plain folder starts at its root unless told otherwise; with checkouts, the
    // folder to start in must lie inside one of them, as gestaltd requires.
    const cwd =
      checkouts.length === 0 && ["", "."].includes(workspace.cwd.trim())
        ? "."
        : relativePath("workspace.cwd", workspace.cwd);
    if (checkouts.length > 0 && !checkouts.some((c) => contains(c.path, cwd))) {
      throw new Error("workspace.cwd must be inside one checkout path");
    }
    return { checkouts, cwd };
  } catch (error) {
    if (error instanceof RuntimeProviderError) throw error;
    throw invalid(method, (error as Error).message);
  }
}

function git(args: string[], cwd: string | undefined, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(
      "git",
      // A file:// checkout needs protocol.file.allow (git 2.38 restricts it by default).
      ["-c", "protocol.file.allow=always", ...args],
      {
        ...(cwd ? { cwd } : {}),
        ...(signal ? { signal } : {}),
        // Never wait for a password prompt: a checkout that needs one fails.
        env: { ...process.env, GIT_TERMINAL_PROMPT: "0", GIT_ASKPASS: "" },
        maxBuffer: 1 << 20,
      },
      (error, _stdout, stderr) => {
        if (!error) return resolve();
        const detail = String(stderr).trim() || error.message;
        reject(new Error(`git ${args.filter((a) => a !== "--").join(" ")}: ${detail}`));
      },
    );
  });
}

let gitProbe: Promise<boolean> | undefined;

/** Whether the system `git` runs (probed once per process). */
export function gitAvailable(): Promise<boolean> {
  gitProbe ??= git(["--version"], undefined, undefined).then(
    () => true,
    () => false,
  );
  return gitProbe;
}

/**
 * Where an agent session's workspace lives on this machine, and the record of the request
 * that made it (outside the workspaces folder, so no agent session id can name a record).
 */
function locate(sessionDir: string, agentSessionId: string) {
  return {
    root: join(sessionDir, WORKSPACES, agentSessionId),
    record: join(sessionDir, RECORDS, `${agentSessionId}.json`),
  };
}

/**
 * Prepares the workspace on this machine and returns its paths as the plugin sees them
 * (`insideDir` is the session folder inside the workload).
 */
export async function prepareWorkspace(
  sessionDir: string,
  insideDir: string,
  request: PrepareWorkspaceRequest,
  signal?: AbortSignal,
): Promise<PreparedWorkspace> {
  const method = "PrepareWorkspace";
  const agentSessionId = checkAgentSessionId(method, request.agentSessionId);
  const workspace = normalizeWorkspace(method, request.workspace);
  const { root, record } = locate(sessionDir, agentSessionId);
  const spec = JSON.stringify(workspace);
  const previous = await readFile(record, "utf8").catch(() => undefined);
  if (previous !== undefined && previous !== spec) {
    throw new RuntimeProviderError(
      "WORKLOAD_CONFLICT",
      method,
      `the workspace of agent session "${agentSessionId}" was already prepared with a different request`,
    );
  }
  if (previous === undefined) {
    // A half-made workspace (a failed or interrupted earlier attempt) is started over.
    await rm(root, { recursive: true, force: true });
    await mkdir(root, { recursive: true });
    try {
      for (const checkout of workspace.checkouts) {
        const target = join(root, checkout.path);
        await mkdir(join(target, ".."), { recursive: true });
        await git(["clone", "--quiet", "--", checkout.url, target], undefined, signal);
        if (checkout.ref) {
          await git(["fetch", "--quiet", "origin", "--", checkout.ref], target, signal);
          await git(["checkout", "--quiet", "--detach", "FETCH_HEAD"], target, signal);
        }
      }
      if (workspace.checkouts.length === 0) await mkdir(join(root, workspace.cwd), { recursive: true });
      await checkCwd(root, workspace.cwd);
      await mkdir(join(record, ".."), { recursive: true });
      await writeFile(record, spec, { mode: 0o600 });
    } catch (error) {
      await rm(root, { recursive: true, force: true });
      if (error instanceof RuntimeProviderError) throw error;
      throw new RuntimeProviderError(
        "START_FAILED",
        method,
        `prepare the workspace of agent session "${agentSessionId}": ${(error as Error).message}`,
        { cause: error },
      );
    }
  }
  const inside = posix.join(insideDir, WORKSPACES, agentSessionId);
  return { root: inside, cwd: workspace.cwd === "." ? inside : posix.join(inside, workspace.cwd) };
}

/** The cwd must exist and, symlinks followed, stay inside the workspace. */
async function checkCwd(root: string, cwd: string): Promise<void> {
  const realRoot = await realpath(root);
  let realCwd: string;
  try {
    realCwd = await realpath(join(root, cwd));
  } catch {
    throw new RuntimeProviderError(
      "INVALID_SPEC",
      "PrepareWorkspace",
      `workspace.cwd: "${cwd}" does not exist in the checkout`,
    );
  }
  const rel = relative(realRoot, realCwd);
  if (rel === ".." || rel.startsWith(`..${sep}`) || !(await stat(realCwd)).isDirectory()) {
    throw new RuntimeProviderError(
      "INVALID_SPEC",
      "PrepareWorkspace",
      `workspace.cwd: "${cwd}" is not a folder inside the workspace`,
    );
  }
}

/** Removes an agent session's workspace; an absent one is already removed. */
export async function removeWorkspace(sessionDir: string, agentSessionId: string): Promise<void> {
  const id = checkAgentSessionId("RemoveWorkspace", agentSessionId);
  const { root, record } = locate(sessionDir, id);
  await rm(record, { force: true });
  await rm(root, { recursive: true, force: true });
}
