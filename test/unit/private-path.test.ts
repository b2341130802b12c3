import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { secretFileProblem } from "../../src/private-path.js";

describe("secretFileProblem: whether a file may be trusted to hold a token or a key", () => {
  let dir: string;
  const file = (name: string, mode: number): string => {
    const path = join(dir, name);
    writeFileSync(path, "s3cret\n");
    chmodSync(path, mode);
    return path;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "rk-secret-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("accepts a file of this user's that nobody else may read or write", () => {
    expect(secretFileProblem(file("token", 0o600))).toBeUndefined();
    expect(secretFileProblem(file("read-only", 0o400))).toBeUndefined();
  });

  it("refuses a file others may read or write, saying which mode it wants", () => {
    for (const mode of [0o644, 0o660, 0o620, 0o606, 0o604]) {
      const path = file(`token-${mode.toString(8)}`, mode);
      expect(secretFileProblem(path)).toEqual({
        path,
        problem: `is open to other users (mode 0${mode.toString(8)}; want 0600, or 0640 if root's)`,
      });
    }
  });

  it("follows links, as a Kubernetes Secret volume's files are", () => {
    const target = file("..data-token", 0o600);
    const link = join(dir, "token");
    symlinkSync(target, link);
    expect(secretFileProblem(link)).toBeUndefined();
    chmodSync(target, 0o644);
    expect(secretFileProblem(link)?.problem).toMatch(/^is open to other users/);
  });

  it("refuses what is not a regular file, and a missing one", () => {
    mkdirSync(join(dir, "sub"));
    expect(secretFileProblem(join(dir, "sub"))?.problem).toBe("is not a regular file");
    expect(secretFileProblem(join(dir, "absent"))?.problem).toBe("does not exist");
  });

  // The test runs as root, like the process tier: chown needs it.
  it("refuses another user's file, and takes root's readable by its group at most", () => {
    const other = file("other", 0o600);
    chownSync(other, 65534, 65534);
    expect(secretFileProblem(other)?.problem).toMatch(/^belongs to uid 65534, not to this process's user/);
    const roots = file("roots", 0o640);
    chownSync(roots, 0, 0);
    expect(secretFileProblem(roots)).toBeUndefined();
    chmodSync(roots, 0o644);
    expect(secretFileProblem(roots)?.problem).toMatch(/^is open to other users/);
  });
});
