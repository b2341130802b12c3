/**
 * Hostname-based egress for Gestalt plugins: the proxy lives in `net/egress-proxy.ts`, where
 * the sandboxed process backend uses it too.
 * @module
 */
export {
  createEgressProxy,
  type EgressDecision,
  type EgressPolicy,
  type EgressProxy,
  type EgressProxyOptions,
  isHostAllowed,
} from "../net/egress-proxy.js";
