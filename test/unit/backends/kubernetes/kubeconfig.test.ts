import { describe, expect, it } from "vitest";
import { missingKubeConfig, SERVICE_ACCOUNT_TOKEN } from "../../../../src/backends/kubernetes/kubeconfig.js";

const only =
  (...paths: string[]) =>
  (path: string) =>
    paths.includes(path);

describe("finding the default kubeconfig", () => {
  it("says that none was found, and every place it looked, when nothing is there", () => {
    expect(missingKubeConfig({ HOME: "/home/u" }, only())).toBe(
      "no kubeconfig found: KUBECONFIG is not set, /home/u/.kube/config does not exist, " +
        `and there is no in-cluster service account (${SERVICE_ACCOUNT_TOKEN}); set KUBECONFIG, or pass the kubeConfig option`,
    );
    expect(missingKubeConfig({}, only())).toContain("HOME is not set (so no ~/.kube/config)");
  });

  it("finds KUBECONFIG, ~/.kube/config, or the in-cluster service account, in the client's order", () => {
    expect(missingKubeConfig({ KUBECONFIG: "/etc/k.yaml" }, only())).toBeUndefined();
    expect(missingKubeConfig({ HOME: "/home/u" }, only("/home/u/.kube/config"))).toBeUndefined();
    expect(missingKubeConfig({ HOME: "/home/u" }, only(SERVICE_ACCOUNT_TOKEN))).toBeUndefined();
  });
});
