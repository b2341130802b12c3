/**
 * Per-owner quota accounting: how many live workloads each owner has, against `ownerQuota`.
 * Owns the counts only; it must not decide what is live (the kernel charges and releases).
 * @module
 */
import { QuotaExceededError } from "../errors.js";
import { quotaFor } from "./policies.js";

/** Counts live workloads per owner; workloads without an owner are never counted. */
export class OwnerQuota {
  readonly #limit: number | ((owner: string) => number) | undefined;
  readonly #live = new Map<string, number>();

  constructor(limit: number | ((owner: string) => number) | undefined) {
    this.#limit = limit;
  }

  /** Counts one more live workload, or throws `QUOTA_EXCEEDED` and counts nothing. */
  charge(owner: string | undefined, workloadId: string): void {
    if (owner === undefined) return;
    const live = this.#live.get(owner) ?? 0;
    const limit = quotaFor(this.#limit, owner);
    if (live >= limit) throw new QuotaExceededError(owner, limit, { workloadId });
    this.#live.set(owner, live + 1);
  }

  /** Counts one more whatever the limit: a workload found running is live, quota or not. */
  force(owner: string | undefined): void {
    if (owner) this.#live.set(owner, (this.#live.get(owner) ?? 0) + 1);
  }

  /** Counts one fewer. */
  release(owner: string | undefined): void {
    if (owner === undefined) return;
    const live = (this.#live.get(owner) ?? 1) - 1;
    if (live <= 0) this.#live.delete(owner);
    else this.#live.set(owner, live);
  }
}
