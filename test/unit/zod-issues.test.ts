import { describe, expect, it } from "vitest";
import { z } from "zod";
import { issuesOf } from "../../src/zod-issues.js";

function refusal(schema: z.ZodType, input: unknown): z.ZodError {
  const result = schema.safeParse(input);
  if (result.success) throw new Error("expected a refusal");
  return result.error;
}

describe("issuesOf", () => {
  const schema = z.strictObject({
    name: z.string({ error: "must be a string" }),
    labels: z.record(z.string().min(1, "label keys must not be empty"), z.string()).optional(),
    nested: z.strictObject({ n: z.number() }).optional(),
  });

  it("names each bad field by its dotted path, with the schema's message", () => {
    expect(issuesOf(refusal(schema, { name: 1 }))).toEqual([{ path: "name", message: "must be a string" }]);
  });

  it("names every unknown key in the path, one issue each, not only in the message", () => {
    expect(issuesOf(refusal(schema, { name: "a", nested: { n: 1, x: 1, y: 2 } }))).toEqual([
      { path: "nested.x", message: "is not a known field" },
      { path: "nested.y", message: "is not a known field" },
    ]);
  });

  it("says why a record key is refused, in the key schema's words", () => {
    expect(issuesOf(refusal(schema, { name: "a", labels: { "": "v" } }))).toEqual([
      { path: "labels", message: "label keys must not be empty" },
    ]);
  });

  it("puts a prefix before every path, and words an unknown key as told", () => {
    expect(
      issuesOf(refusal(schema, { name: 1, extra: true }), {
        prefix: "runnable.docker",
        unknownKey: "is not a known key",
      }),
    ).toEqual([
      { path: "runnable.docker.name", message: "must be a string" },
      { path: "runnable.docker.extra", message: "is not a known key" },
    ]);
  });

  it("keeps zod's one issue per object for unknown keys when told to", () => {
    expect(issuesOf(refusal(schema, { name: "a", x: 1, y: 2 }), { unknownKey: false })).toEqual([
      { path: "", message: 'Unrecognized keys: "x", "y"' },
    ]);
  });
});
