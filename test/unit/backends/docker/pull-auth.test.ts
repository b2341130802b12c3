import { describe, expect, it } from "vitest";
import { splitImage } from "../../../../src/backends/docker/image-pull.js";
import { authForImage, registryOf } from "../../../../src/backends/docker/pull-auth.js";

const b64 = (s: string) => Buffer.from(s).toString("base64");

describe("registry of an image", () => {
  it.each([
    ["busybox", "docker.io"],
    ["library/busybox:1.36", "docker.io"],
    ["docker.io/library/busybox", "docker.io"],
    ["ghcr.io/acme/agent:1", "ghcr.io"],
    ["localhost/agent", "localhost"],
    ["127.0.0.1:5000/agent:dev", "127.0.0.1:5000"],
    ["runtime-kernel/busybox:test", "docker.io"],
  ])("%s is on %s", (image, registry) => {
    expect(registryOf(image)).toBe(registry);
  });
});

describe("pull credentials from a Docker config JSON", () => {
  it("decode the base64 auth of the image's registry", () => {
    const config = JSON.stringify({ auths: { "ghcr.io": { auth: b64("bot:s3cret:with:colons") } } });
    expect(authForImage("ghcr.io/acme/agent:1", config)).toEqual({
      username: "bot",
      password: "s3cret:with:colons",
      serveraddress: "ghcr.io",
    });
  });

  it("match Docker Hub under any of its spellings", () => {
    const config = JSON.stringify({
      auths: { "https://index.docker.io/v1/": { username: "u", password: "p" } },
    });
    expect(authForImage("acme/agent", config)).toEqual({
      username: "u",
      password: "p",
      serveraddress: "https://index.docker.io/v1/",
    });
  });

  it("prefer an identity token", () => {
    const config = JSON.stringify({ auths: { "registry.local:5000": { identitytoken: "tok" } } });
    expect(authForImage("registry.local:5000/a", config)).toEqual({
      identitytoken: "tok",
      serveraddress: "registry.local:5000",
    });
  });

  it("go anonymous for a registry the document does not name", () => {
    expect(
      authForImage("quay.io/a/b", JSON.stringify({ auths: { "ghcr.io": { auth: b64("u:p") } } })),
    ).toBeUndefined();
  });

  it("refuse a malformed entry without echoing it", () => {
    const config = JSON.stringify({ auths: { "ghcr.io": { auth: b64("no-colon-secret") } } });
    expect(() => authForImage("ghcr.io/a", config)).toThrowError(/not base64 of user:password/);
    try {
      authForImage("ghcr.io/a", config);
    } catch (error) {
      expect((error as Error).message).not.toContain("no-colon-secret");
    }
  });
});

describe("image references for the pull API", () => {
  it.each([
    ["busybox", { repository: "busybox", tag: "latest" }],
    ["runtime-kernel/busybox:test", { repository: "runtime-kernel/busybox", tag: "test" }],
    ["127.0.0.1:5000/agent", { repository: "127.0.0.1:5000/agent", tag: "latest" }],
    ["127.0.0.1:5000/agent:v2", { repository: "127.0.0.1:5000/agent", tag: "v2" }],
    ["a/b@sha256:abc", { repository: "a/b", tag: "sha256:abc" }],
  ])("%s", (image, expected) => {
    expect(splitImage(image)).toEqual(expected);
  });
});
