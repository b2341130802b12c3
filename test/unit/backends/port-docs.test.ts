/**
 * docs/backend-port.md and the TSDoc of src/backends/backend.ts say the same thing: the
 * contract is the TSDoc's text, copied verbatim between the `contract` markers, and every type
 * the page writes out has the source's fields with the source's types.
 */
import { readFileSync } from "node:fs";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const source = readFileSync("src/backends/backend.ts", "utf8");
const page = readFileSync("docs/backend-port.md", "utf8");

/** The lines between the contract markers, from the first marker to the last. */
function contract(text: string): string {
  const start = text.indexOf("<!-- contract:start -->");
  const end = text.indexOf("<!-- contract:end -->");
  expect(start, "the contract:start marker").toBeGreaterThanOrEqual(0);
  expect(end, "the contract:end marker").toBeGreaterThan(start);
  return text.slice(start, end);
}

/** Each interface's members, as `name -> normalized declaration`. */
function interfaces(code: string): Map<string, Map<string, string>> {
  const file = ts.createSourceFile("x.ts", code, ts.ScriptTarget.Latest, true);
  const found = new Map<string, Map<string, string>>();
  const normal = (node: ts.Node) => node.getText(file).replace(/\s+/g, " ").replace(/[;,]$/, "");
  file.forEachChild((node) => {
    if (!ts.isInterfaceDeclaration(node)) return;
    const members = new Map<string, string>();
    members.set("<type parameters>", node.typeParameters?.map(normal).join(", ") ?? "");
    for (const member of node.members)
      members.set(member.name ? normal(member.name) : "[index]", normal(member));
    found.set(node.name.text, members);
  });
  return found;
}

describe("docs/backend-port.md", () => {
  it("holds the contract of the TSDoc of src/backends/backend.ts, word for word", () => {
    const fromSource = contract(source)
      .split("\n")
      .map((line) => line.replace(/^ \* ?/, ""))
      .join("\n")
      .trimEnd();
    expect(contract(page).trimEnd()).toBe(fromSource);
  });

  it("writes out every interface of the port with the source's fields and types", () => {
    const described = page.slice(0, page.indexOf("## Writing a backend"));
    const blocks = [...described.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]).join("\n");
    const documented = interfaces(blocks);
    const exported = interfaces(source);
    expect([...documented.keys()].sort()).toEqual([...exported.keys()].sort());
    for (const [name, members] of exported) {
      expect(Object.fromEntries(documented.get(name) ?? []), name).toEqual(Object.fromEntries(members));
    }
  });
});
