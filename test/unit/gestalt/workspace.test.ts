/**
 * Agent workspaces: the request is checked as gestaltd checks it, before anything touches
 * the disk, and a prepared workspace is reported with the paths the plugin sees.
 */
import { existsSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { normalizeWorkspace, prepareWorkspace, removeWorkspace } from "../../../src/gestalt/workspace.js";

const checkout = (url: string, path = "repo", ref?: string) => ({ url, path, ...(ref ? { ref } : {}) });

describe("normalizeWorkspace", () => {
  it("accepts the URL forms gestaltd accepts, and cleans the paths", () => {
    expect(
      normalizeWorkspace("PrepareWorkspace", {
        checkouts: [
          checkout(" https://example.com/a/b.git ", "src/./a/", " main "),
          checkout("git@example.com:org/c.git", "src/c"),
          checkout("file:///srv/repos/d", "d"),
          checkout("ssh://example.com/e", "e"),
        ],
        cwd: "src/a/sub/",
      }),
    ).toEqual({
      checkouts: [
        { url: "https://example.com/a/b.git", ref: "main", path: "src/a" },
        { url: "git@example.com:org/c.git", ref: "", path: "src/c" },
        { url: "file:///srv/repos/d", ref: "", path: "d" },
        { url: "ssh://example.com/e", ref: "", path: "e" },
      ],
      cwd: "src/a/sub",
    });
  });

  it("makes a workspace without checkouts a plain folder, started at its root unless told", () => {
    expect(normalizeWorkspace("PrepareWorkspace", { checkouts: [], cwd: "" })).toEqual({
      checkouts: [],
      cwd: ".",
    });
    expect(normalizeWorkspace("PrepareWorkspace", { checkouts: [], cwd: "work/here" })).toEqual({
      checkouts: [],
      cwd: "work/here",
    });
  });

  it.each([
    [[checkout("")], "repo", "workspace.checkouts[0].url is required"],
    [[checkout("/srv/repo")], "repo", "workspace.checkouts[0].url: local git paths are not allowed"],
    [[checkout("./repo")], "repo", "local git paths are not allowed"],
    [[checkout("example.com/repo")], "repo", "a git URL with a scheme is required"],
    [[checkout("ftp://example.com/repo")], "repo", 'git URL scheme "ftp" is not supported'],
    [[checkout("https://u:p@example.com/r")], "repo", "user info is not allowed"],
    [[checkout("ssh://git@example.com/r")], "repo", "user info is not allowed"],
    [[checkout("https://example.com/r?x=1")], "repo", "query and fragment are not allowed"],
    [[checkout("file://elsewhere/r")], "repo", "file git URLs must be local"],
    [[checkout("https://example.com/")], "repo", "the repository path is missing"],
    [
      [checkout("https://example.com/r", "/abs")],
      "abs",
      "workspace.checkouts[0].path: absolute paths are not allowed",
    ],
    [[checkout("https://example.com/r", "../up")], "up", "the path must stay inside the workspace"],
    [[checkout("https://example.com/r", "a\\b")], "a", "backslash separators are not allowed"],
    [[checkout("https://example.com/r", "a", "--upload-pack=x")], "a", 'ref must not start with "-"'],
    [
      [checkout("https://example.com/r", "a"), checkout("https://example.com/s", "a/b")],
      "a",
      'workspace.checkouts[1].path overlaps "a"',
    ],
    [[checkout("https://example.com/r", "a")], "b", "workspace.cwd must be inside one checkout path"],
    [[checkout("https://example.com/r", "a")], "", "workspace.cwd: a relative path is required"],
  ])("refuses %j with cwd %j: %s", (checkouts, cwd, message) => {
    expect(() => normalizeWorkspace("PrepareWorkspace", { checkouts, cwd })).toThrow(
      expect.objectContaining({ code: "INVALID_SPEC", message: expect.stringContaining(message) }),
    );
  });
});

describe("prepareWorkspace and removeWorkspace in a session folder", () => {
  let session: string;
  beforeAll(() => {
    session = mkdtempSync(join(tmpdir(), "rk-gws-"));
  });
  afterAll(() => rmSync(session, { recursive: true, force: true }));

  it("makes a plain folder and reports it as the plugin sees the session folder", async () => {
    const prepared = await prepareWorkspace(session, "/workspace", {
      sessionId: "s",
      agentSessionId: "agent.1_a-b",
      workspace: { checkouts: [], cwd: "work" },
    });
    expect(prepared).toEqual({
      root: "/workspace/workspaces/agent.1_a-b",
      cwd: "/workspace/workspaces/agent.1_a-b/work",
    });
    expect(statSync(join(session, "workspaces/agent.1_a-b/work")).isDirectory()).toBe(true);
    await removeWorkspace(session, "agent.1_a-b");
    expect(existsSync(join(session, "workspaces/agent.1_a-b"))).toBe(false);
    // Removing what is gone succeeds.
    await removeWorkspace(session, "agent.1_a-b");
  });

  it.each(["", ".", "..", "a/b", "a b", "ä"])("refuses agent session id %j", async (id) => {
    await expect(
      prepareWorkspace(session, session, {
        sessionId: "s",
        agentSessionId: id,
        workspace: { checkouts: [], cwd: "" },
      }),
    ).rejects.toMatchObject({ code: "INVALID_SPEC", message: expect.stringMatching(/agent_session_id/) });
  });
});
