/**
 * Global setup of the `kubernetes` test project: starts a real cluster on this machine through
 * test/setup/kubernetes.sh (building the binaries on first use), hands its kubeconfig to the
 * tests, and stops it by pid afterwards. Anything that cannot start fails the run loudly.
 *
 * Tiers: `RK_K8S_TIERS=api` starts etcd + kube-apiserver only; the default `node` adds
 * kube-scheduler and a kubelet on a private Docker engine (a superset: the API tier's tests run
 * on it too). `RK_K8S_KEEP=1` leaves the cluster running after the tests (for a debugging loop).
 */
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

const script = join(dirname(fileURLToPath(import.meta.url)), "kubernetes.sh");

function run(subcommand: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      "bash",
      [script, subcommand],
      { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, killSignal: "SIGTERM" },
      (error, stdout, stderr) => {
        if (error) {
          reject(
            new Error(
              `test/setup/kubernetes.sh ${subcommand} failed (${error.message.split("\n")[0]}):\n${stderr.slice(-6000)}`,
            ),
          );
        } else {
          if (stderr.trim()) process.stderr.write(stderr);
          resolve(stdout);
        }
      },
    );
    child.stdin?.end();
  });
}

function parseEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

declare module "vitest" {
  export interface ProvidedContext {
    kubernetes: {
      tier: "api" | "node";
      kubeconfig: string;
      namespace: string;
      server: string;
      /** etcd's client URL (tests compact it to expire resourceVersions). */
      etcd?: string;
      /** The busybox test image on the node's Docker engine (node tier only). */
      image?: string;
      /** The node's Docker engine, where images are imported (node tier only). */
      dockerHost?: string;
      nodeName?: string;
    };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const tier = process.env.RK_K8S_TIERS === "api" ? "api" : "node";
  // A cold machine builds Kubernetes from source first (5-8 minutes on 2 cores).
  await run("build", 25 * 60_000);
  const env = parseEnv(await run(tier === "api" ? "start-api" : "start-node", 5 * 60_000));
  const kubeconfig = env.RK_K8S_KUBECONFIG;
  const server = env.RK_K8S_SERVER;
  if (!kubeconfig || !server)
    throw new Error(`kubernetes.sh start-${tier} printed no kubeconfig:\n${JSON.stringify(env)}`);
  if (tier === "node" && !env.RK_TEST_IMAGE)
    throw new Error("kubernetes.sh start-node printed no RK_TEST_IMAGE");
  project.provide("kubernetes", {
    tier: env.RK_K8S_TIER === "node" ? "node" : "api",
    kubeconfig,
    namespace: env.RK_K8S_NAMESPACE ?? "default",
    server,
    ...(env.RK_K8S_ETCD ? { etcd: env.RK_K8S_ETCD } : {}),
    ...(env.RK_TEST_IMAGE ? { image: env.RK_TEST_IMAGE } : {}),
    ...(env.RK_K8S_DOCKER_HOST ? { dockerHost: env.RK_K8S_DOCKER_HOST } : {}),
    ...(env.RK_K8S_NODE_NAME ? { nodeName: env.RK_K8S_NODE_NAME } : {}),
  });
  return async () => {
    if (process.env.RK_K8S_KEEP === "1") return;
    // `stop` fails when the egress guard counted a packet leaving the machine: that fails the run.
    await run("stop", 3 * 60_000);
  };
}
