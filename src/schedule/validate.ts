/**
 * zod refusals as {@link InvalidSpecError}s whose issues name each field, for the job and
 * for the options of the scheduler and its stores.
 * @module
 */
import type { z } from "zod";
import { InvalidSpecError, type ValidationIssue } from "../index.js";

/** One issue per bad field; an unknown key is named in the path, not only in the message. */
export function issuesOf(error: z.ZodError): ValidationIssue[] {
  return error.issues.flatMap((issue) => {
    const path = issue.path.map(String);
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({ path: [...path, key].join("."), message: "is not a known field" }));
    }
    const message =
      issue.code === "invalid_key" ? (issue.issues[0]?.message ?? issue.message) : issue.message;
    return [{ path: path.join("."), message }];
  });
}

/** Parses `input`, or throws `INVALID_SPEC` naming each bad field of `subject`. */
export function parseOrRefuse<T>(schema: z.ZodType<T>, input: unknown, subject: string): T {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new InvalidSpecError(issuesOf(parsed.error), { subject });
  return parsed.data;
}
