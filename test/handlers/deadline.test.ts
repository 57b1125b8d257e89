import { afterEach, beforeEach, describe, expect, jest, test } from "@jest/globals";
import { DeadlineError, withDeadline } from "../../app/handlers/deadline.js";

/** The promise's outcome so far (the clock is fake: no plain await on it). */
function watch(promise: Promise<void>) {
  const seen: { settled: boolean; error?: unknown } = { settled: false };
  promise.then(
    () => (seen.settled = true),
    (error: unknown) => Object.assign(seen, { settled: true, error }),
  );
  return seen;
}

describe("withDeadline: one deadline per delivery (injected clock)", () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  test("a handler that finishes in time: its context passed, the delivery succeeds, no timer left", async () => {
    const seen: unknown[] = [];
    const handler = withDeadline(8_000, async (context: { id: string }) => {
      seen.push(context);
    });
    await expect(handler({ id: "d-1" })).resolves.toBeUndefined();
    expect(seen).toEqual([{ id: "d-1" }]);
    expect(jest.getTimerCount()).toBe(0);
  });

  test("a handler that fails in time fails the delivery with its own error, no timer left", async () => {
    const handler = withDeadline(8_000, async () => {
      throw new Error("HTTP 502");
    });
    await expect(handler({})).rejects.toThrow("HTTP 502");
    expect(jest.getTimerCount()).toBe(0);
  });

  test("a handler still running at the deadline fails the delivery then, not before", async () => {
    let finish!: () => void;
    const handler = withDeadline(8_000, () => new Promise<void>((resolve) => (finish = resolve)));
    const delivery = watch(handler({}));
    await jest.advanceTimersByTimeAsync(7_999);
    expect(delivery.settled).toBe(false);
    await jest.advanceTimersByTimeAsync(1);
    expect(delivery.error).toBeInstanceOf(DeadlineError);
    expect(delivery.error).toMatchObject({
      name: "DeadlineError",
      message: "delivery not handled within 8000 ms: failed so that GitHub records it and reconcile redelivers it",
    });
    // Its work may still finish; the delivery has failed already.
    finish();
    await jest.advanceTimersByTimeAsync(0);
    expect(jest.getTimerCount()).toBe(0);
  });

  test("each delivery has a deadline of its own", async () => {
    const handler = withDeadline(1_000, (context: { ms: number }) => new Promise<void>((resolve) => setTimeout(resolve, context.ms)));
    const quick = watch(handler({ ms: 500 }));
    await jest.advanceTimersByTimeAsync(600);
    const slow = watch(handler({ ms: 900 }));
    await jest.advanceTimersByTimeAsync(500);
    // The first delivery's deadline (at 1 000 ms) has passed; the second's (1 600 ms) has not.
    expect(quick).toEqual({ settled: true });
    expect(slow.settled).toBe(false);
    await jest.advanceTimersByTimeAsync(400);
    expect(slow).toEqual({ settled: true });
  });
});
