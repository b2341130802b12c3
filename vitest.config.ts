import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/** The package's own entries, for code written as a user writes it (examples/): from src, not dist. */
const selfImports = [
  { find: /^runtime-kernel$/, replacement: fileURLToPath(new URL("src/index.ts", import.meta.url)) },
  {
    find: /^runtime-kernel\/testing\/vitest$/,
    replacement: fileURLToPath(new URL("src/testing/vitest.ts", import.meta.url)),
  },
  {
    find: /^runtime-kernel\/testing$/,
    replacement: fileURLToPath(new URL("src/testing/index.ts", import.meta.url)),
  },
];

/**
 * One project per substrate, so `vitest run --project docker` runs one tier and a
 * substrate's global setup (start the engine or cluster, stop it by pid afterwards)
 * runs only when its tests do.
 */
export default defineConfig({
  test: {
    passWithNoTests: true,
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts", "test/conformance/fake.test.ts", "test/examples/**/*.test.ts"],
        },
      },
      {
        resolve: { alias: selfImports },
        test: {
          name: "process",
          include: [
            "test/integration/process/**/*.test.ts",
            "test/conformance/process.test.ts",
            "test/conformance/mutants.test.ts",
            "test/conformance/process-sandbox.test.ts",
            "test/conformance/process-spawners.test.ts",
            "examples/**/*.test.ts",
          ],
          globalSetup: ["test/setup/bubblewrap.global.ts"],
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: "docker",
          include: ["test/integration/docker/**/*.test.ts", "test/conformance/docker.test.ts"],
          globalSetup: ["test/setup/docker.global.ts"],
          testTimeout: 60_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "kubernetes",
          include: ["test/integration/kubernetes/**/*.test.ts", "test/conformance/kubernetes.test.ts"],
          globalSetup: ["test/setup/kubernetes.global.ts"],
          testTimeout: 120_000,
          hookTimeout: 1_800_000,
          fileParallelism: false,
        },
      },
      {
        test: {
          name: "gestalt",
          include: ["test/integration/gestalt/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 300_000,
        },
      },
      {
        test: {
          // The packed tarball installed into empty projects: what a user gets from npm.
          name: "package",
          include: ["test/package/**/*.test.ts"],
          globalSetup: ["test/setup/package.global.ts"],
          testTimeout: 120_000,
          hookTimeout: 600_000,
        },
      },
      {
        test: {
          name: "schedule",
          include: ["test/integration/schedule/**/*.test.ts"],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: "redis",
          include: ["test/integration/redis/**/*.test.ts"],
          globalSetup: ["test/setup/redis.global.ts"],
          testTimeout: 60_000,
          hookTimeout: 900_000,
        },
      },
      {
        test: {
          name: "server",
          include: [
            "test/integration/server/**/*.test.ts",
            "test/integration/cli/**/*.test.ts",
            "test/integration/http/**/*.test.ts",
          ],
          testTimeout: 60_000,
        },
      },
    ],
  },
});
