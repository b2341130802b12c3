/**
 * dockerode, an optional peer dependency of `runtime-kernel/docker`: loaded when the entry
 * is imported, so that a missing one fails there, saying what to install.
 * @module
 */
import type Dockerode from "dockerode";
import { requirePeer } from "../optional-peer.js";

/** The dockerode client class. */
export const DockerodeClient = requirePeer<typeof Dockerode>("dockerode", "runtime-kernel/docker");
