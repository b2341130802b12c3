import { describe, expect, it } from "vitest";
import { DNS1123_LABEL, ENV_NAME } from "../../src/name-rules.js";

describe("name rules", () => {
  it("takes POSIX-portable environment variable names and nothing else", () => {
    for (const name of ["PATH", "_x", "a1_B2"]) expect(ENV_NAME.test(name), name).toBe(true);
    for (const name of ["", "1A", "A-B", "A.B", "A B", "É", "A\nB"])
      expect(ENV_NAME.test(name), name).toBe(false);
  });

  it("takes DNS-1123 labels: lowercase letters, digits and inner dashes, at most 63 characters", () => {
    for (const name of ["a", "job-1", "0", "a".repeat(63)]) expect(DNS1123_LABEL.test(name), name).toBe(true);
    for (const name of ["", "-a", "a-", "A", "a_b", "a.b", "a".repeat(64)])
      expect(DNS1123_LABEL.test(name), name).toBe(false);
  });
});
