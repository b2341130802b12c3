import { defineConfig } from "tsup";

export default defineConfig({
  entry: {
    index: "src/index.ts",
    "testing/index": "src/testing/index.ts",
    "testing/vitest": "src/testing/vitest.ts",
    "docker/index": "src/backends/docker/index.ts",
    "kubernetes/index": "src/backends/kubernetes/index.ts",
    "gestalt/index": "src/gestalt/index.ts",
    "server/index": "src/server/index.ts",
    "http/index": "src/http/index.ts",
    "schedule/index": "src/schedule/index.ts",
    cli: "src/cli.ts",
  },
  format: ["esm", "cjs"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
  splitting: true,
  // Rollup, not tsup's default sucrase pass, turns the split chunks into CommonJS: sucrase
  // rewrites `?.` and `??` into calls of module-level helpers, which the process supervisor's
  // source (copied out of its function with toString) would then call without defining.
  treeshake: true,
  // vitest is a peer of the conformance suite only; never bundle it.
  external: ["vitest"],
});
