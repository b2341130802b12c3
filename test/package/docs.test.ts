import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { ProcessBackend } from "../../src/backends/process/index.js";
import { exec } from "./support.js";

/**
 * Every TypeScript snippet of the README and docs/, as a user would take it: pasted into a
 * project that installed the packed tarball, compiled by tsc (strict, no skipLibCheck,
 * module nodenext, target esnext so that nothing is rewritten: what Node 20 cannot parse
 * fails), and run with this Node. A snippet is a module of its own; one whose first line is a
 * file name comment (`// vm-backend.ts`) is written under that name, so the page's next
 * snippet can import it.
 *
 * Snippets that need what this tier does not have are compiled and type-checked but not run;
 * TYPE_CHECK_ONLY says which, and why. Shell snippets are checked for syntax (`bash -n`);
 * their commands run in the tiers of what they call (the CLI's in test/integration/cli and
 * test/package/bin.test.ts). Other languages (text, JSON, YAML, Python) are not run here.
 */
const { full } = inject("pkg");
const ROOT = resolve(import.meta.dirname, "../..");
const TSC = join(ROOT, "node_modules/typescript/bin/tsc");

/** Key: `<file>#<n>`, the n-th TypeScript snippet of the file. */
const TYPE_CHECK_ONLY: Record<string, string> = {
  "docs/backend-port.md#4": "registers vitest suites against a real VM service (its declared `api`)",
  "docs/docker-backend.md#1": "needs a Docker engine and the image it names",
  "docs/gestalt.md#1":
    "needs the reader's kernel, config and plugin; examples/gestalt/main.ts runs the same steps (process tier)",
  "docs/gestalt.md#2": "needs a runtime provider process to dial",
  "docs/gestalt.md#3": "a proxy server that runs until closed",
  "docs/gestalt.md#4": "needs a plugin host",
  "docs/http.md#1": "a server, around the reader's kernel",
  "docs/isolation.md#1":
    "a service's paths (/var/lib, /srv) and bubblewrap; examples/sandbox.ts runs the same (process tier)",
  "docs/isolation.md#2": "needs bubblewrap; examples/sandbox.ts runs a sandboxed backend (process tier)",
  "docs/isolation.md#3":
    "needs bubblewrap and root; test/integration/process/sandbox.test.ts runs uidPerOwner",
  "docs/kubernetes-backend.md#1": "needs a Kubernetes cluster",
  "docs/process-backend.md#1":
    "a service's paths (/var/lib, /srv) and an agent that runs until stopped; examples/process.ts runs the same (process tier)",
  "docs/schedule.md#1": "calls the reader's services over HTTP, at times to come",
  "docs/schedule.md#2": "needs the reader's kernel and store",
  "docs/schedule.md#3": "a fragment: the store the scheduler above is given",
  "docs/schedule.md#4": "needs a Redis server",
  "docs/service.md#1": "a server that runs until SIGTERM",
  "docs/service.md#2": "needs a runtime.v1 server",
  "docs/service.md#3": "needs a runtime.v1 server",
  "docs/testing.md#2":
    "registers vitest suites on the reader's backend (examples/minimal-backend runs the same from the tarball: minimal-backend.test.ts)",
};

interface Snippet {
  key: string;
  lang: string;
  code: string;
  /** Where the compiled module is, for those that run. */
  file?: string;
}

function snippetsOf(file: string): Snippet[] {
  const lines = readFileSync(join(ROOT, file), "utf8").split("\n");
  const found: Snippet[] = [];
  let ts = 0;
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\w*)\s*$/.exec(lines[i]!);
    if (!open) continue;
    const end = lines.findIndex((line, j) => j > i && /^```\s*$/.test(line));
    const lang = open[1]!;
    const code = lines.slice(i + 1, end).join("\n");
    found.push({ key: lang === "ts" ? `${file}#${++ts}` : `${file}:${i + 1}`, lang, code });
    i = end;
  }
  return found;
}

const FILES = [
  "README.md",
  ...readdirSync(join(ROOT, "docs"))
    .filter((f) => f.endsWith(".md"))
    .map((f) => `docs/${f}`),
];
const SNIPPETS = FILES.flatMap(snippetsOf);
const TYPESCRIPT = SNIPPETS.filter((s) => s.lang === "ts");
const SHELL = SNIPPETS.filter((s) => s.lang === "sh" || s.lang === "bash");

const base = join(full, "docs-snippets");
let compiled: { code: number | null; output: string };

beforeAll(async () => {
  rmSync(base, { recursive: true, force: true });
  mkdirSync(base, { recursive: true });
  writeFileSync(join(base, "package.json"), JSON.stringify({ type: "module" }));
  for (const snippet of TYPESCRIPT) {
    const [file, n] = snippet.key.split("#");
    const dir = file!.replace(/\W/g, "_");
    const named = /^\/\/ ([\w.-]+)\.ts$/.exec(snippet.code.split("\n")[0]!)?.[1];
    const name = named ?? `snippet-${n}`;
    mkdirSync(join(base, "src", dir), { recursive: true });
    writeFileSync(join(base, "src", dir, `${name}.ts`), snippet.code);
    snippet.file = join(base, "out", dir, `${name}.js`);
  }
  writeFileSync(
    join(base, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        skipLibCheck: false,
        module: "nodenext",
        moduleResolution: "nodenext",
        target: "esnext",
        types: ["node"],
        rootDir: "src",
        outDir: "out",
      },
      include: ["src"],
    }),
  );
  const result = await exec(base, process.execPath, [TSC, "-p", "tsconfig.json"]);
  compiled = { code: result.code, output: result.stdout + result.stderr };
});

afterAll(() => rmSync(base, { recursive: true, force: true }));

/** Stops the process supervisors a snippet left in `dir` (they outlive their kernel by design). */
async function stopSupervisors(dir: string, depth = 3): Promise<void> {
  if (existsSync(join(dir, "supervisor.sock")))
    await new ProcessBackend({ stateDir: dir }).stopSupervisor({ force: true });
  if (depth === 0) return;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) await stopSupervisors(join(dir, entry.name), depth - 1);
  }
}

describe("the snippets of the README and docs/", () => {
  it("are found, and every type-check-only entry names a TypeScript snippet", () => {
    expect(TYPESCRIPT.length).toBeGreaterThan(20);
    const keys = new Set(TYPESCRIPT.map((s) => s.key));
    for (const key of Object.keys(TYPE_CHECK_ONLY)) expect(keys, key).toContain(key);
  });

  it("compile with a consumer's strict tsc against the packed package", () => {
    expect(compiled.output).toBe("");
    expect(compiled.code).toBe(0);
  });

  it.each(TYPESCRIPT.filter((s) => !(s.key in TYPE_CHECK_ONLY)).map((s) => [s.key, s] as const))(
    "%s runs on this Node as written",
    async (_key, snippet) => {
      expect(compiled.code, "the snippets must compile first").toBe(0);
      const cwd = mkdtempSync(join(tmpdir(), "rk-snippet-"));
      // The reader's own agent, for the snippets that run `node agent.js`.
      writeFileSync(join(cwd, "agent.js"), "console.log('agent up'); setInterval(() => {}, 1000);\n");
      try {
        const result = await exec(cwd, process.execPath, [snippet.file!]);
        expect(result.stderr).toBe("");
        expect(result.code).toBe(0);
      } finally {
        await stopSupervisors(cwd);
        rmSync(cwd, { recursive: true, force: true });
      }
    },
  );

  it.each(SHELL.map((s) => [s.key, s] as const))("%s is valid shell", async (_key, snippet) => {
    const result = await promisify(execFile)("bash", ["-n", "-c", snippet.code]).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code: number; stderr: string }) => error,
    );
    expect(result).toMatchObject({ code: 0, stderr: "" });
  });
});
