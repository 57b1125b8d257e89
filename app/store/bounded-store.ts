import type { JobStore } from "./job-store.js";

export class StoreTimeoutError extends Error {
  constructor(method: string, ms: number) {
    super(`job store did not answer ${method} within ${ms} ms`);
    this.name = "StoreTimeoutError";
  }
}

/**
 * Bounds every store call. The Firestore client retries an unreachable backend
 * for up to 10 minutes (measured against a stopped emulator), far past GitHub's
 * 10 s webhook window; failing fast lets the delivery fail visibly, and the
 * claim's idempotency plus reconcile repair whatever a late write did.
 */
export function boundedStore(store: JobStore, ms: number): JobStore {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const call = value.apply(target, args) as Promise<unknown>;
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new StoreTimeoutError(String(property), ms)), ms);
        });
        return Promise.race([call, deadline]).finally(() => clearTimeout(timer));
      };
    },
  });
}
