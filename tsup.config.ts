import { defineConfig } from "tsup";

export default defineConfig({
  entry: {
    index: "src/index.ts",
    "testing/index": "src/testing/index.ts",
    "docker/index": "src/backends/docker/index.ts",
    "kubernetes/index": "src/backends/kubernetes/index.ts",
    "gestalt/index": "src/gestalt/index.ts",
    "server/index": "src/server/index.ts",
    cli: "src/cli.ts",
  },
  format: ["esm", "cjs"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
  splitting: true,
  // vitest is a peer of the conformance suite only; never bundle it.
  external: ["vitest"],
});
