import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { serveForFile } from "./support.js";

/**
 * The curl commands of docs/http.md, run as they are written (only the address changes)
 * against a live `serve --http`: each must answer the status written after its `#`, and where
 * the doc shows the answer, the real one must have the same fields.
 */
const DOC = readFileSync(resolve(import.meta.dirname, "../../../docs/http.md"), "utf8");
const DOC_URL = "http://127.0.0.1:8090";

interface Example {
  command: string;
  status: number;
  shown?: unknown;
}

function examples(): Example[] {
  const blocks = [...DOC.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({
    lang: m[1],
    text: m[2]!.trim(),
  }));
  const out: Example[] = [];
  blocks.forEach((block, i) => {
    const match = block.lang === "sh" ? /^(curl .*?)\s+#\s*(\d{3})$/.exec(block.text) : null;
    if (!match) return;
    const next = blocks[i + 1];
    out.push({
      command: match[1]!,
      status: Number(match[2]),
      ...(next?.lang === "json" ? { shown: JSON.parse(next.text) } : {}),
    });
  });
  return out;
}

const keys = (value: unknown) =>
  value !== null && typeof value === "object" && !Array.isArray(value)
    ? Object.keys(value).sort()
    : typeof value;

const running = serveForFile({
  tokenFile: undefined,
  profiles: {
    default: { runnable: { command: ["sh", "-c", "trap 'exit 143' TERM; while :; do sleep 0.05; done"] } },
  },
});

describe("the curl examples of docs/http.md", () => {
  it("cover the routes", () => {
    const commands = examples().map((e) => e.command);
    expect(commands.length).toBeGreaterThanOrEqual(8);
    for (const route of ["-X POST", "-X DELETE", "/stop", "/health", "/openapi.json"])
      expect(
        commands.some((c) => c.includes(route)),
        route,
      ).toBe(true);
  });

  it("answer as documented, in order, against a live server", () => {
    for (const example of examples()) {
      const command = example.command.replaceAll(DOC_URL, running.serve.url);
      const output = execFileSync("bash", ["-c", `${command} -w '\\n%{http_code}'`], { encoding: "utf8" });
      const lines = output.trimEnd().split("\n");
      const status = Number(lines.pop());
      const body = JSON.parse(lines.join("\n"));
      expect(status, `${example.command}\n${output}`).toBe(example.status);
      if (example.shown !== undefined) expect(keys(body), example.command).toEqual(keys(example.shown));
    }
  });
});
