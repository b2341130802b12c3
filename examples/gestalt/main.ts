/**
 * Starts a hosted plugin through the built-in `local` runtime provider and calls it.
 *
 *   npx tsx examples/gestalt/main.ts
 *
 * The plugin (plugin.ts) runs as its own process on the kernel's process backend, in a
 * private session folder; the host dials it back over gRPC on its unix socket.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createRuntimeKernel, ProcessBackend } from "runtime-kernel";
import { createPluginHost, GESTALT_PLUGIN_PROFILE, loadGestaltConfig } from "runtime-kernel/gestalt";
import { GreeterClient } from "./greeter.js";
import { HealthClient } from "./health.js";

// 1. A kernel on the process backend, with the profile plugin workloads use.
const stateDir = mkdtempSync(join(tmpdir(), "gestalt-example-"));
const backend = new ProcessBackend({ stateDir });
const kernel = createRuntimeKernel({ backend, profiles: { [GESTALT_PLUGIN_PROFILE]: { runnable: {} } } });

// 2. The configuration: one runtime provider (the built-in local one) and one hosted plugin.
//    The plugin is TypeScript, run by Node with tsx's loader.
const plugin = fileURLToPath(new URL("./plugin.ts", import.meta.url));
const config = loadGestaltConfig(`
runtime:
  providers:
    local:
      driver: local
      default: true
plugins:
  greeter:
    command: ${JSON.stringify(process.execPath)}
    args: ["--import", ${JSON.stringify(import.meta.resolve("tsx"))}, ${JSON.stringify(plugin)}]
    env:
      GREETING_STYLE: friendly
    runtime: {} # hosted, on the default runtime provider
`);

// 3. The host: selects the provider, checks its profile, starts a session, starts the
//    plugin in it and dials it back.
const host = createPluginHost({ config, kernel });
try {
  const started = await host.startPlugin("greeter");
  console.log(`started "${started.name}" on provider "${started.provider}" at ${started.dialTarget}`);

  const health = started.client(HealthClient);
  const status = await new Promise<string>((resolve, reject) =>
    health.check({ service: "" }, (error, response) => (error ? reject(error) : resolve(response.status))),
  );
  console.log(`health: ${status}`);

  const greeter = started.client(GreeterClient);
  const reply = await new Promise<{ message: string }>((resolve, reject) =>
    greeter.greet({ name: "world" }, (error, response) => (error ? reject(error) : resolve(response))),
  );
  console.log(reply.message);

  console.log(JSON.stringify(await host.describeProviders(), null, 2));
} finally {
  // 4. Stop every session the host started, then the kernel.
  await host.close();
  await kernel.shutdown();
  await backend.stopSupervisor({ force: true }).catch(() => {});
  await backend.close();
  rmSync(stateDir, { recursive: true, force: true });
}
