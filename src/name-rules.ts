/**
 * The shapes of the names every layer checks, written once: environment variable names (a
 * spec's env, brokered credentials, the HTTP contract, Gestalt's config and bindings) and
 * DNS-1123 labels (workload ids), and host allow-list entries (egress, callbacks). Only
 * patterns: each caller words its own refusal.
 * @module
 */

/** A POSIX-portable environment variable name. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The refusal of a name that is not {@link ENV_NAME}, for zod schemas. */
export const ENV_NAME_MESSAGE = "must be a valid environment variable name ([A-Za-z_][A-Za-z0-9_]*)";

/** A DNS-1123 label: what Docker and Kubernetes names can carry without mangling. */
export const DNS1123_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** An allow-list entry: an exact hostname (or IPv4 address), or `*.suffix` for any subdomain. */
export const HOST_PATTERN =
  /^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;

/** The refusal of an entry that is not {@link HOST_PATTERN}, for zod schemas. */
export const HOST_PATTERN_MESSAGE = "must be a hostname or *.suffix (no scheme, port or path)";
