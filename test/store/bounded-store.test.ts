import { afterEach, beforeEach, describe, expect, jest, test } from "@jest/globals";
import { boundedStore, StoreTimeoutError } from "../../app/store/bounded-store.js";
import type { JobStore } from "../../app/store/job-store.js";

/** A promise settled by the test. */
function deferred<T = unknown>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** A store whose `get` is `get`, and a plain property. */
function storeWith(get: (...args: unknown[]) => Promise<unknown>): JobStore {
  return { get, leaseMs: 60_000 } as unknown as JobStore;
}

/** The promise's outcome so far: a fake clock must not be waited on with a plain await. */
function watch<T>(promise: Promise<T>) {
  const seen: { settled: boolean; value?: T; error?: unknown } = { settled: false };
  promise.then(
    (value) => Object.assign(seen, { settled: true, value }),
    (error: unknown) => Object.assign(seen, { settled: true, error }),
  );
  return seen;
}

describe("boundedStore: every store call has a deadline (injected clock)", () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  test("a call answered in time gives its value; its arguments pass through; no timer is left", async () => {
    const calls: unknown[][] = [];
    const bounded = boundedStore(storeWith(async (...args) => (calls.push(args), { jobId: 1 })), 1_000);
    await expect(bounded.get(1)).resolves.toEqual({ jobId: 1 });
    expect(calls).toEqual([[1]]);
    expect(jest.getTimerCount()).toBe(0);
  });

  test("a call failing in time fails with its own error", async () => {
    const bounded = boundedStore(storeWith(() => Promise.reject(new Error("PERMISSION_DENIED"))), 1_000);
    await expect(bounded.get(1)).rejects.toThrow("PERMISSION_DENIED");
    expect(jest.getTimerCount()).toBe(0);
  });

  test("a call not answered within the bound fails with StoreTimeoutError, at the bound and not before", async () => {
    const slow = deferred();
    const bounded = boundedStore(storeWith(() => slow.promise), 1_000);
    const outcome = watch(bounded.get(1));
    await jest.advanceTimersByTimeAsync(999);
    expect(outcome.settled).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    expect(outcome.error).toBeInstanceOf(StoreTimeoutError);
    expect(outcome.error).toMatchObject({ name: "StoreTimeoutError", message: "job store did not answer get within 1000 ms" });
    // A late answer changes nothing.
    slow.resolve({ jobId: 1 });
    await jest.advanceTimersByTimeAsync(0);
    expect(outcome.value).toBeUndefined();
  });

  test("properties that are not methods pass through", () => {
    const bounded = boundedStore(storeWith(async () => undefined), 1_000) as unknown as { leaseMs: number };
    expect(bounded.leaseMs).toBe(60_000);
  });

  test("drain with nothing running: true at once", async () => {
    const bounded = boundedStore(storeWith(async () => undefined), 1_000);
    await bounded.get(1);
    const drained = watch(bounded.drain(5_000));
    await jest.advanceTimersByTimeAsync(0);
    expect(drained).toEqual({ settled: true, value: true });
  });

  test("drain waits for a call still running past its deadline, and answers true when it ends", async () => {
    const slow = deferred();
    const bounded = boundedStore(storeWith(() => slow.promise), 100);
    const call = watch(bounded.get(1));
    await jest.advanceTimersByTimeAsync(100);
    expect(call.error).toBeInstanceOf(StoreTimeoutError);

    const drained = watch(bounded.drain(10_000));
    await jest.advanceTimersByTimeAsync(5_000);
    expect(drained.settled).toBe(false);
    slow.resolve(undefined);
    await jest.advanceTimersByTimeAsync(0);
    expect(drained).toEqual({ settled: true, value: true });
  });

  test("a call that failed is not running any more", async () => {
    const failing = deferred();
    const bounded = boundedStore(storeWith(() => failing.promise), 100);
    const call = watch(bounded.get(1));
    await jest.advanceTimersByTimeAsync(100);
    failing.reject(new Error("late failure"));
    await jest.advanceTimersByTimeAsync(0);
    expect(call.error).toBeInstanceOf(StoreTimeoutError);
    const drained = watch(bounded.drain(1_000));
    await jest.advanceTimersByTimeAsync(0);
    expect(drained).toEqual({ settled: true, value: true });
  });

  test("drain gives up at its limit: false while a call still runs", async () => {
    const bounded = boundedStore(storeWith(() => new Promise(() => undefined)), 100);
    void bounded.get(1).catch(() => undefined);
    const drained = watch(bounded.drain(1_000));
    await jest.advanceTimersByTimeAsync(999);
    expect(drained.settled).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    expect(drained).toEqual({ settled: true, value: false });
  });

  test("drain's last wait is cut to its limit (polls every 250 ms, the last one shorter)", async () => {
    const bounded = boundedStore(storeWith(() => new Promise(() => undefined)), 100);
    void bounded.get(1).catch(() => undefined);
    const drained = watch(bounded.drain(1_100));
    await jest.advanceTimersByTimeAsync(1_099);
    expect(drained.settled).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    expect(drained).toEqual({ settled: true, value: false });
  });

  test("drain waits for every running call, not only the first", async () => {
    const [first, second] = [deferred(), deferred()];
    const answers = [first.promise, second.promise];
    const bounded = boundedStore(storeWith(() => answers.shift()!), 10_000);
    const calls = [watch(bounded.get(1)), watch(bounded.get(2))];
    const drained = watch(bounded.drain(60_000));
    first.resolve("a");
    await jest.advanceTimersByTimeAsync(1_000);
    expect(calls[0]).toEqual({ settled: true, value: "a" });
    expect(drained.settled).toBe(false);
    second.resolve("b");
    await jest.advanceTimersByTimeAsync(0);
    expect(drained).toEqual({ settled: true, value: true });
  });
});
