/**
 * zod's refusals as {@link ValidationIssue}s that name each bad field, for every layer that
 * validates with zod. It owns only that translation; what is refused is each schema's business.
 * @module
 */
import type { z } from "zod";
import type { ValidationIssue } from "./errors.js";

/** How {@link issuesOf} names what it finds. */
export interface IssueNaming {
  /** Put before every path (say, `runnable.docker`). */
  prefix?: string;
  /**
   * The message of each unknown key, named in the path (default "is not a known field");
   * `false` keeps zod's one issue per object, whose message lists the keys.
   */
  unknownKey?: string | false;
}

/**
 * One issue per bad field: each unknown key named in the path (not only in the message), and
 * a refused record key with its key schema's message (zod says only "Invalid key in record").
 */
export function issuesOf(error: z.ZodError, naming: IssueNaming = {}): ValidationIssue[] {
  const { unknownKey = "is not a known field" } = naming;
  return error.issues.flatMap((issue) => {
    const path = [naming.prefix ?? "", ...issue.path.map(String)].filter(Boolean);
    if (issue.code === "unrecognized_keys" && unknownKey !== false) {
      return issue.keys.map((key) => ({ path: [...path, key].join("."), message: unknownKey }));
    }
    const message =
      issue.code === "invalid_key" ? (issue.issues[0]?.message ?? issue.message) : issue.message;
    return [{ path: path.join("."), message }];
  });
}
