/**
 * A sandboxed agent on the process backend: it gets its own workspace, and cannot read the
 * secret file that lies right next to it on the host, nor reach the network.
 * Needs bubblewrap (apt-get install bubblewrap). Run: npx tsx examples/sandbox.ts
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRuntimeKernel, ProcessBackend } from "runtime-kernel";

const base = mkdtempSync(join(tmpdir(), "rk-sandbox-example-"));
const workspaces = join(base, "workspaces");
const workspace = join(workspaces, "agent-1");
mkdirSync(workspace, { recursive: true });
writeFileSync(join(workspace, "task.txt"), "summarize the quarter\n");
// The host's secret, one directory up from the agent's workspace.
const secret = join(workspaces, "secret.env");
writeFileSync(secret, "API_KEY=sk-not-for-agents\n");

const kernel = createRuntimeKernel({
  backend: new ProcessBackend({ stateDir: join(base, "state"), sandbox: {} }),
  profiles: {
    agent: {
      // The agent tries its task, the secret next to it, and the network.
      runnable: {
        command: [
          "sh",
          "-c",
          [
            'echo "task: $(cat task.txt)"',
            `cat ${secret} >/dev/null 2>&1 && echo "secret: READ" || echo "secret: unreadable"`,
            'cat ../secret.env >/dev/null 2>&1 && echo "../secret: READ" || echo "../secret: unreadable"',
            'bash -c \'exec 3<>/dev/tcp/1.1.1.1/443\' 2>/dev/null && echo "network: open" || echo "network: none"',
            "echo done > result.txt",
          ].join("; "),
        ],
      },
      mountRoots: [workspaces],
    },
  },
});

await kernel.create({ workloadId: "agent-1", profile: "agent", workspace });
const status = await kernel.waitFor("agent-1", "stopped");
for await (const entry of kernel.logs("agent-1")) console.log(entry.line);
console.log(`agent-1: ${status.stopReason}, exit ${status.exitCode}`);
await kernel.shutdown();
rmSync(base, { recursive: true, force: true });
