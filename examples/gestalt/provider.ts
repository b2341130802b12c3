/**
 * Runs `runtime-kernel gestalt-provider` the way gestaltd runs a runtime provider, and hosts
 * a plugin through it:
 *
 *   npx tsx examples/gestalt/provider.ts
 *
 * The host launches the executable that runtime-kernel-provider/manifest.yaml names (a
 * `kind: runtime` package), handshakes with it (kind RUNTIME, protocol 3, ConfigureProvider
 * with the config below), then starts the Greeter plugin in a session on the provider's
 * process backend, dials it back and calls it. A real gestaltd does the same with the same
 * manifest and config.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createPluginHost, loadGestaltConfig } from "runtime-kernel/gestalt";
import { GreeterClient } from "./greeter.js";

const scratch = mkdtempSync(join(tmpdir(), "gestalt-provider-example-"));
const manifest = fileURLToPath(new URL("./runtime-kernel-provider/manifest.yaml", import.meta.url));
const plugin = fileURLToPath(new URL("./plugin.ts", import.meta.url));

// runtime.providers.kernel is the provider package; its config goes to ConfigureProvider.
const config = loadGestaltConfig({
  runtime: {
    providers: {
      kernel: {
        source: { path: manifest },
        default: true,
        config: {
          backend: { type: "process", options: { stateDir: join(scratch, "state") } },
          sessionRoot: join(scratch, "sessions"),
        },
      },
    },
  },
  plugins: {
    greeter: {
      command: process.execPath,
      args: ["--import", import.meta.resolve("tsx"), plugin],
      runtime: {}, // hosted, on the default runtime provider
    },
  },
});

const host = createPluginHost({ config });
try {
  const greeter = await host.startPlugin("greeter");
  const [view] = await host.describeProviders();
  console.log(
    `provider "${view?.name}": ${view?.identity?.description} (version ${view?.identity?.version})`,
  );
  console.log(`started "${greeter.name}" in session ${greeter.sessionId} at ${greeter.dialTarget}`);

  const client = greeter.client(GreeterClient);
  const reply = await new Promise<{ message: string }>((resolve, reject) =>
    client.greet({ name: "gestaltd" }, (error, response) => (error ? reject(error) : resolve(response))),
  );
  console.log(reply.message);
  console.log("session log:", (await host.describeSessions("kernel"))[0]?.logs.join(" | "));
} finally {
  // StopSession for each session (3 s at most), then SIGTERM to the provider (SIGKILL after 2 s).
  await host.close();
  rmSync(scratch, { recursive: true, force: true });
}
