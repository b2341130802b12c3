/**
 * Names and label values that reach the API server. Pod and Secret names must be DNS-1123
 * labels and label values have their own grammar; the kernel's ids need not fit either, so
 * they are sanitised here and kept in full in an annotation.
 * @module
 */
import { dns1123, MAX_LABEL, runName, shortHash } from "../names.js";

export { dns1123 };

/** The Pod (and Secret) name of one run: `<prefix>-<workloadId>-<hash of runId>` (see `runName`). */
export const podName: (prefix: string, workloadId: string, runId: string) => string = runName;

const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

/**
 * A valid label value for `value`: itself when it already is one, else a sanitised form with a
 * hash suffix (deterministic, so selectors built from the same id match).
 */
export function labelValue(value: string): string {
  if (value.length <= MAX_LABEL && LABEL_VALUE.test(value)) return value;
  const clean = value
    .replace(/[^A-Za-z0-9_.-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, MAX_LABEL - 9)
    .replace(/[^A-Za-z0-9]+$/, "");
  return clean ? `${clean}-${shortHash(value, 8)}` : shortHash(value, 16);
}

const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Whether `key` is a valid label (or annotation) key: `[prefix/]name`. */
export function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf("/");
  const name = slash < 0 ? key : key.slice(slash + 1);
  const prefix = slash < 0 ? undefined : key.slice(0, slash);
  if (name.length === 0 || name.length > MAX_LABEL || !QUALIFIED_NAME.test(name)) return false;
  return prefix === undefined || (prefix.length <= 253 && DNS_SUBDOMAIN.test(prefix));
}

/** Whether `value` is a valid label value as it is. */
export function isLabelValue(value: string): boolean {
  return value.length <= MAX_LABEL && LABEL_VALUE.test(value);
}

/** Whether `name` is a valid environment variable name for a Pod (and so a valid Secret key). */
export function isEnvName(name: string): boolean {
  return /^[-._a-zA-Z][-._a-zA-Z0-9]*$/.test(name);
}
