/**
 * zod refusals as {@link InvalidSpecError}s whose issues name each field, for the job and
 * for the options of the scheduler and its stores.
 * @module
 */
import type { z } from "zod";
import { InvalidSpecError } from "../errors.js";
import { issuesOf } from "../zod-issues.js";

/** Parses `input`, or throws `INVALID_SPEC` naming each bad field of `subject`. */
export function parseOrRefuse<T>(schema: z.ZodType<T>, input: unknown, subject: string): T {
  const parsed = schema.safeParse(input);
  if (!parsed.success) throw new InvalidSpecError(issuesOf(parsed.error), { subject });
  return parsed.data;
}
