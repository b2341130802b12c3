#!/usr/bin/env node
// The `runtime-kernel` command. Runs the built CLI (dist/cli.js) when the package is built,
// else the TypeScript source through tsx, so `npx runtime-kernel` works in a fresh clone
// right after `npm install`, before any build.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const built = new URL("../dist/cli.js", import.meta.url);
if (existsSync(fileURLToPath(built))) {
  await import(built.href);
} else {
  const { register } = await import("tsx/esm/api");
  register();
  await import(new URL("../src/cli.ts", import.meta.url).href);
}
