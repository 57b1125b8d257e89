import { describe, expect, test } from "@jest/globals";
import { JitPacer } from "../../app/github/jit-pacer.js";
import { jobIdOfRunner, runnerName } from "../../app/github/jit-runners.js";

/** A clock that only moves when the test moves it; sleeps are recorded and end at once. */
function fakeClock() {
  const clock = {
    at: 0,
    slept: [] as number[],
    now: () => clock.at,
    sleep: async (ms: number) => {
      clock.slept.push(ms);
    },
  };
  return clock;
}

describe("JitPacer", () => {
  test("hands out the burst at once, then refuses what would wait too long", async () => {
    const clock = fakeClock();
    const pacer = new JitPacer(60, 0, clock);
    const granted = await Promise.all(Array.from({ length: 61 }, () => pacer.acquire()));
    expect(granted.filter(Boolean)).toHaveLength(60);
    expect(granted[60]).toBe(false);
    clock.at += 1_000; // one token per second
    expect(await pacer.acquire()).toBe(true);
    expect(await pacer.acquire()).toBe(false);
    expect(clock.slept).toEqual([]);
  });

  test("callers past the burst wait their turn, one token interval apart, up to maxWaitMs", async () => {
    const clock = fakeClock();
    const pacer = new JitPacer(600, 500, clock); // one token per 100 ms
    for (let i = 0; i < 600; i++) expect(await pacer.acquire()).toBe(true);
    expect(clock.slept).toEqual([]);

    const granted = await Promise.all(Array.from({ length: 6 }, () => pacer.acquire()));

    expect(granted).toEqual([true, true, true, true, true, false]);
    expect(clock.slept).toEqual([100, 200, 300, 400, 500]);
  });

  test("tokens come back with time, never above the burst", async () => {
    const clock = fakeClock();
    const pacer = new JitPacer(60, 0, clock);
    for (let i = 0; i < 60; i++) await pacer.acquire();
    clock.at += 10 * 60_000; // ten minutes: still only one minute's burst
    const granted = await Promise.all(Array.from({ length: 61 }, () => pacer.acquire()));
    expect(granted.filter(Boolean)).toHaveLength(60);
  });

  test("pause() holds every token until GitHub's retry-after", async () => {
    const clock = fakeClock();
    const pacer = new JitPacer(180, 1_000, clock);
    pacer.pause(30_000);
    expect(await pacer.acquire()).toBe(false);
    clock.at = 29_500;
    expect(await pacer.acquire()).toBe(true);
    expect(clock.slept).toEqual([500]);
    clock.at = 30_000;
    expect(await pacer.acquire()).toBe(true);
    expect(clock.slept).toEqual([500]);
  });
});

describe("runner names", () => {
  test("carry the job id, and only ours parse", () => {
    const name = runnerName("kumo", 12345, 2);
    expect(name).toMatch(/^kumo-12345-2-[0-9a-f]{6}$/);
    expect(jobIdOfRunner("kumo", name)).toBe(12345);
    expect(jobIdOfRunner("kumo", "kumo-abc")).toBeUndefined();
    expect(jobIdOfRunner("kumo", "other-12345-2-abcdef")).toBeUndefined();
  });
});
