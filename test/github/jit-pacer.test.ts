import { describe, expect, test } from "@jest/globals";
import { JitPacer } from "../../app/github/jit-pacer.js";
import { jobIdOfRunner, runnerName } from "../../app/github/jit-runners.js";

describe("JitPacer", () => {
  test("hands out the burst at once, then refuses what would wait too long", async () => {
    let now = 0;
    const pacer = new JitPacer(60, 0, () => now);
    const granted = await Promise.all(Array.from({ length: 61 }, () => pacer.acquire()));
    expect(granted.filter(Boolean)).toHaveLength(60);
    now += 1_000; // one token per second
    expect(await pacer.acquire()).toBe(true);
    expect(await pacer.acquire()).toBe(false);
  });

  test("waits for a token when it comes within maxWaitMs", async () => {
    const pacer = new JitPacer(600, 500); // one token per 100 ms
    for (let i = 0; i < 600; i++) await pacer.acquire();
    const started = Date.now();
    expect(await pacer.acquire()).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(50);
  });

  test("pause() holds every token until GitHub's retry-after", async () => {
    let now = 0;
    const pacer = new JitPacer(180, 1_000, () => now);
    pacer.pause(30_000);
    expect(await pacer.acquire()).toBe(false);
    now = 30_000;
    expect(await pacer.acquire()).toBe(true);
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
