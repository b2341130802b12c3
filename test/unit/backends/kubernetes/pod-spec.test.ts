/** The Pod and Secret built for a start request: read and checked without a cluster. */
import { describe, expect, it } from "vitest";
import { LABELS, type StartRequest } from "../../../../src/backends/backend.js";
import { labelValue, podName } from "../../../../src/backends/kubernetes/names.js";
import { buildPodManifests, kernelSelector } from "../../../../src/backends/kubernetes/pod-spec.js";
import { isRuntimeKernelError } from "../../../../src/errors.js";

const request = (over: Partial<StartRequest> = {}): StartRequest => ({
  kernelId: "k1",
  workloadId: "agent-7",
  runId: "01J9ZX0000000000000000RUN1",
  profile: "agents",
  owner: "alice@example.com",
  runnable: { image: "registry.local/agent:1.2", command: ["agent", "--serve"] },
  env: {},
  labels: {
    [LABELS.kernelId]: "k1",
    [LABELS.workloadId]: "agent-7",
    [LABELS.runId]: "01J9ZX0000000000000000RUN1",
    [LABELS.profile]: "agents",
    [LABELS.createdAt]: "1700000000000",
    [LABELS.maxLifetimeAt]: "1700003600000",
  },
  ...over,
});
const build = (r: StartRequest, profile = {}) =>
  buildPodManifests(r, { namespace: "ns", namePrefix: "rk", profile });

describe("names", () => {
  it("a Pod name is <prefix>-<workload>-<hash of run>: a DNS-1123 label, distinct per run", () => {
    const a = podName("rk", "Agent_7.Main", "run-1");
    const b = podName("rk", "Agent_7.Main", "run-2");
    expect(a).toMatch(/^rk-agent-7-main-[0-9a-f]{10}$/);
    expect(b).not.toBe(a);
    const long = podName("rk", "x".repeat(200), "run-1");
    expect(long.length).toBeLessThanOrEqual(63);
    expect(long).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  });

  it("runs whose ids share a long prefix still get different names", () => {
    expect(podName("rk", "w", "01J9ZX00000000000000000001")).not.toBe(
      podName("rk", "w", "01J9ZX00000000000000000002"),
    );
  });

  it("label values are kept when valid, else sanitised with a stable hash", () => {
    expect(labelValue("k1")).toBe("k1");
    const v = labelValue("alice@example.com");
    expect(v).toMatch(/^alice-example\.com-[0-9a-f]{8}$/);
    expect(labelValue("alice@example.com")).toBe(v);
    expect(labelValue("x".repeat(100)).length).toBeLessThanOrEqual(63);
  });
});

describe("buildPodManifests", () => {
  it("builds a bare Pod that never restarts, with identity labels and the full labels in annotations", () => {
    const { pod } = build(request());
    expect(pod.spec?.restartPolicy).toBe("Never");
    expect(pod.metadata.namespace).toBe("ns");
    expect(pod.metadata.labels).toEqual({
      [LABELS.kernelId]: "k1",
      [LABELS.workloadId]: "agent-7",
      [LABELS.runId]: "01J9ZX0000000000000000RUN1",
      [LABELS.profile]: "agents",
      [LABELS.owner]: labelValue("alice@example.com"),
    });
    expect(pod.metadata.annotations?.[LABELS.maxLifetimeAt]).toBe("1700003600000");
    expect(JSON.parse(pod.metadata.annotations?.["runtime-kernel.dev/labels"] ?? "{}")[LABELS.owner]).toBe(
      "alice@example.com",
    );
    expect(kernelSelector("k1")).toBe(`${LABELS.kernelId}=k1`);
  });

  it("runs the image and argv in one container with the safe default security context", () => {
    const { pod } = build(request());
    const c = pod.spec?.containers[0];
    expect(c?.image).toBe("registry.local/agent:1.2");
    expect(c?.command).toEqual(["agent", "--serve"]);
    expect(c?.securityContext).toMatchObject({
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      capabilities: { drop: ["ALL"] },
    });
    expect(pod.spec?.automountServiceAccountToken).toBe(false);
    expect(pod.spec?.enableServiceLinks).toBe(false);
  });

  it("puts every env value in the per-run Secret and only references in the Pod", () => {
    const { pod, secret } = build(request({ env: { API_KEY: "sk-secret-value", MODE: "fast" } }));
    expect(JSON.stringify(pod)).not.toContain("sk-secret-value");
    expect(secret?.metadata.name).toBe(pod.metadata.name);
    expect(secret?.stringData).toEqual({ API_KEY: "sk-secret-value", MODE: "fast" });
    expect(secret?.immutable).toBe(true);
    expect(pod.spec?.containers[0]?.env).toEqual([
      {
        name: "API_KEY",
        valueFrom: { secretKeyRef: { name: pod.metadata.name, key: "API_KEY", optional: false } },
      },
      {
        name: "MODE",
        valueFrom: { secretKeyRef: { name: pod.metadata.name, key: "MODE", optional: false } },
      },
    ]);
    expect(build(request()).secret).toBeUndefined();
  });

  it("maps resources to equal requests and limits", () => {
    const { pod } = build(request({ resources: { cpu: 1.5, memoryMb: 512, gpu: 1 } }), {
      gpuResource: "example.com/gpu",
    });
    expect(pod.spec?.containers[0]?.resources).toEqual({
      requests: { cpu: "1500m", memory: "512Mi", "example.com/gpu": "1" },
      limits: { cpu: "1500m", memory: "512Mi", "example.com/gpu": "1" },
    });
  });

  it("applies the profile: node selector, tolerations, security context overrides", () => {
    const { pod } = build(request(), {
      nodeSelector: { pool: "agents" },
      tolerations: [{ key: "dedicated", operator: "Equal", value: "agents", effect: "NoSchedule" }],
      securityContext: { runAsNonRoot: false, runAsUser: 0 },
      serviceAccountName: "agent-runner",
      imagePullPolicy: "Always",
    });
    expect(pod.spec?.nodeSelector).toEqual({ pool: "agents" });
    expect(pod.spec?.tolerations).toHaveLength(1);
    expect(pod.spec?.serviceAccountName).toBe("agent-runner");
    expect(pod.spec?.containers[0]?.imagePullPolicy).toBe("Always");
    expect(pod.spec?.containers[0]?.securityContext).toMatchObject({
      runAsNonRoot: false,
      runAsUser: 0,
      allowPrivilegeEscalation: false,
    });
  });

  it("mounts the workspace as a subPath of the profile's claim", () => {
    const { pod } = build(request({ workspace: "alice/agent-7" }), {
      workspace: { claimName: "workspaces", mountPath: "/workspace" },
    });
    expect(pod.spec?.volumes).toEqual([
      { name: "workspace", persistentVolumeClaim: { claimName: "workspaces" } },
    ]);
    expect(pod.spec?.containers[0]?.volumeMounts).toEqual([
      { name: "workspace", mountPath: "/workspace", subPath: "alice/agent-7" },
    ]);
    // It starts there, as on the other backends, unless the runnable names a cwd.
    expect(pod.spec?.containers[0]?.workingDir).toBe("/workspace");
    const elsewhere = build(
      request({ workspace: "alice/agent-7", runnable: { image: "busybox", cwd: "/tmp" } }),
      {
        workspace: { claimName: "workspaces", mountPath: "/workspace" },
      },
    );
    expect(elsewhere.pod.spec?.containers[0]?.workingDir).toBe("/tmp");
  });

  it("takes an absolute workspace as a host path inside a hostPath volume (as kernelRuntimeProvider passes it)", () => {
    const profile = {
      workspace: { volume: { hostPath: { path: "/srv/sessions/" } }, mountPath: "/workspace" },
    };
    const { pod } = build(request({ workspace: "/srv/sessions/s-1" }), profile);
    expect(pod.spec?.volumes).toEqual([{ name: "workspace", hostPath: { path: "/srv/sessions/" } }]);
    expect(pod.spec?.containers[0]?.volumeMounts).toEqual([
      { name: "workspace", mountPath: "/workspace", subPath: "s-1" },
    ]);
    // The volume's root itself: no subPath at all.
    const root = build(request({ workspace: "/srv/sessions" }), profile).pod;
    expect(root.spec?.containers[0]?.volumeMounts).toEqual([{ name: "workspace", mountPath: "/workspace" }]);
  });

  it("gives each mount root one volume and each mount a subPath of it, read-only where asked", () => {
    const mounts = [
      { source: "/srv/ws/alice/a", target: "/a", readOnly: false, root: "/srv/ws" },
      { source: "/data/sets", target: "/sets", readOnly: true, root: "/data/sets" },
      { source: "/srv/ws/alice/b", target: "/b", readOnly: true, root: "/srv/ws" },
    ];
    const profile = { mountRoots: { "/data/sets": { persistentVolumeClaim: { claimName: "sets" } } } };
    const { pod } = build(request({ mounts }), profile);
    expect(pod.spec?.volumes).toEqual([
      { name: "mount-0", hostPath: { path: "/srv/ws", type: "Directory" } },
      { name: "mount-1", persistentVolumeClaim: { claimName: "sets" } },
    ]);
    expect(pod.spec?.containers[0]?.volumeMounts).toEqual([
      { name: "mount-0", mountPath: "/a", subPath: "alice/a" },
      { name: "mount-1", mountPath: "/sets", readOnly: true },
      { name: "mount-0", mountPath: "/b", subPath: "alice/b", readOnly: true },
    ]);
  });

  it("refuses a mount outside its root or over another, naming it", () => {
    const mounts = [
      { source: "/srv/other", target: "/a", readOnly: false, root: "/srv/ws" },
      { source: "/srv/ws/x", target: "/w", readOnly: false, root: "/srv/ws" },
    ];
    expect(() =>
      build(request({ workspace: "x", mounts }), { workspace: { claimName: "c", mountPath: "/w" } }),
    ).toThrow(/mounts\.0\.source: must lie inside its root \(\/srv\/ws\); mounts\.1\.target/);
  });

  it("refuses bad input with an error naming the field", () => {
    const cases: [Partial<StartRequest>, object, RegExp][] = [
      [{ runnable: { command: ["x"] } }, {}, /runnable\.image/],
      [{ env: { "BAD NAME": "1" } }, {}, /env\.BAD NAME/],
      [{ workspace: "w" }, {}, /workspace: profile "agents" has no Kubernetes workspace volume/],
      [
        { workspace: "../escape" },
        { workspace: { claimName: "c", mountPath: "/w" } },
        /workspace: must be a relative path/,
      ],
      [
        { workspace: "/srv/other/s-1" },
        { workspace: { volume: { hostPath: { path: "/srv/sessions" } }, mountPath: "/w" } },
        /workspace: must lie inside the hostPath workspace volume \(\/srv\/sessions\)/,
      ],
      [
        { workspace: "/srv/sessions/s-1" },
        { workspace: { claimName: "c", mountPath: "/w" } },
        /workspace: an absolute path is a host path, which needs a hostPath workspace volume/,
      ],
      [{ resources: { cpu: 0 } }, {}, /resources\.cpu/],
    ];
    for (const [over, profile, message] of cases) {
      let error: unknown;
      try {
        build(request(over), profile);
      } catch (e) {
        error = e;
      }
      expect(isRuntimeKernelError(error, "INVALID_SPEC")).toBe(true);
      expect((error as Error).message).toMatch(message);
    }
  });
});
