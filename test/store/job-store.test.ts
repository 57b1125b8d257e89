import { describe, expect, test } from "@jest/globals";
import { capacityOf, isLaunchable, leaseActive, type RunnerTarget } from "../../app/store/job-store.js";

const SMALL: RunnerTarget = { labels: ["kumo", "small"], group: "cloudrun", groupId: 7, job: "projects/p/locations/r/jobs/small", maxRunners: 2 };

describe("capacityOf: which capacity a job counts against", () => {
  test("none without a cap", () => {
    expect(capacityOf("octo-org", { ...SMALL, maxRunners: undefined })).toBeUndefined();
    expect(capacityOf("octo-org", { ...SMALL, maxRunners: 0 })).toBeUndefined();
  });

  test("the cap and a readable name of the spec", () => {
    expect(capacityOf("octo-org", SMALL)).toEqual({ key: expect.stringMatching(/^[0-9a-f]{24}$/), max: 2, name: "octo-org [kumo, small] → small" });
  });

  test("one key per org, Cloud Run job and label list: two capped specs never share their capacity", () => {
    const key = (org: string, target: Partial<RunnerTarget>) => capacityOf(org, { ...SMALL, ...target })!.key;
    const base = key("octo-org", {});
    // The same spec: the same key, whatever the cap, group or group id (a changed cap keeps its holders).
    expect(key("octo-org", { maxRunners: 5, group: "other", groupId: 9 })).toBe(base);
    const others = [
      key("other-org", {}),
      key("octo-org", { job: "projects/p/locations/r/jobs/large" }),
      key("octo-org", { labels: ["kumo", "large"] }),
      key("octo-org", { labels: ["kumo"] }),
      key("octo-org", { labels: ["kumo", "small", "gpu"] }),
    ];
    expect(new Set([base, ...others]).size).toBe(6);
    // The parts are kept apart: moving a character from one part to the next is another spec.
    expect(key("ab", { job: "c", labels: ["d"] })).not.toBe(key("a", { job: "bc", labels: ["d"] }));
  });
});

describe("leases", () => {
  const now = new Date(100_000);
  test("a lease is active strictly before its end", () => {
    expect(leaseActive({}, now)).toBe(false);
    expect(leaseActive({ leaseUntil: new Date(100_001) }, now)).toBe(true);
    expect(leaseActive({ leaseUntil: new Date(100_000) }, now)).toBe(false);
    expect(leaseActive({ leaseUntil: new Date(99_999) }, now)).toBe(false);
  });

  test.each([
    ["claimed", undefined, true],
    ["pending", undefined, true],
    ["waiting", undefined, true],
    ["claimed", new Date(100_001), false],
    ["pending", new Date(100_001), false],
    ["pending", new Date(100_000), true],
    ["launched", undefined, false],
    ["failed", undefined, false],
    ["running", undefined, false],
    ["completed", undefined, false],
  ] as const)("a %s record with lease until %p is launchable: %p", (state, leaseUntil, launchable) => {
    expect(isLaunchable({ state, ...(leaseUntil ? { leaseUntil } : {}) }, now)).toBe(launchable);
  });
});
