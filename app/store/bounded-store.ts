import type { JobStore } from "./job-store.js";

export class StoreTimeoutError extends Error {
  constructor(method: string, ms: number) {
    super(`job store did not answer ${method} within ${ms} ms`);
    this.name = "StoreTimeoutError";
  }
}

export type BoundedStore = JobStore & {
  /** Waits (at most `ms`) for calls still running, including those past their deadline; true when none is left. */
  drain(ms: number): Promise<boolean>;
};

/**
 * Bounds every store call. The Firestore client retries an unreachable backend
 * for up to 10 minutes (measured against a stopped emulator), far past GitHub's
 * 10 s webhook window; failing fast lets the delivery fail visibly, and the
 * claim's idempotency plus reconcile repair whatever a late write did.
 */
export function boundedStore(store: JobStore, ms: number): BoundedStore {
  const running = new Set<Promise<unknown>>();
  const drain = async (limitMs: number) => {
    const deadline = Date.now() + limitMs;
    while (running.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...running]), new Promise((r) => setTimeout(r, Math.min(250, deadline - Date.now())))]);
    }
    return running.size === 0;
  };
  return new Proxy(store as BoundedStore, {
    get(target, property, receiver) {
      if (property === "drain") return drain;
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        const call = value.apply(target, args) as Promise<unknown>;
        running.add(call);
        void call.then(
          () => running.delete(call),
          () => running.delete(call),
        );
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new StoreTimeoutError(String(property), ms)), ms);
        });
        return Promise.race([call, deadline]).finally(() => clearTimeout(timer));
      };
    },
  });
}
