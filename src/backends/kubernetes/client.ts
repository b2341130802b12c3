/**
 * @kubernetes/client-node, an optional peer dependency of `runtime-kernel/kubernetes`: loaded
 * when the entry is imported, so that a missing one fails there, saying what to install.
 * @module
 */
import type * as ClientNode from "@kubernetes/client-node";
import { requirePeer } from "../optional-peer.js";

const client = requirePeer<typeof ClientNode>("@kubernetes/client-node", "runtime-kernel/kubernetes");

/** The client's kubeconfig loader. */
export const KubeConfig = client.KubeConfig;
export type KubeConfig = ClientNode.KubeConfig;
/** The client's typed core/v1 API. */
export const CoreV1Api = client.CoreV1Api;
export type CoreV1Api = ClientNode.CoreV1Api;
export type { Cluster } from "@kubernetes/client-node";
