import { describe, expect, test } from "@jest/globals";
import { pino } from "pino";
import type { Logger } from "probot";
import { readConfig } from "../../app/config.js";
import type { KumoDeps } from "../../app/deps.js";
import type { Octokit } from "../../app/github/octokit.js";
import { freeCapacity, launchWaiting, launchWaitingAfter } from "../../app/launch/capacity.js";
import type { QueuedLaunch } from "../../app/launch-queue/queue.js";
import { capacityOf, type ClaimResult, type JobRecord, type RunnerTarget } from "../../app/store/job-store.js";
import { LogCapture } from "../helpers/harness.js";

const ORG = "octo-org";
const TARGET: RunnerTarget = { labels: ["kumo", "small"], group: "cloudrun", groupId: 7, job: "projects/p/locations/r/jobs/small", maxRunners: 2 };
const octokit = {} as Octokit;

function waitingRecord(jobId: number): JobRecord {
  const at = new Date(Date.now() - 30_000);
  return { jobId, runId: 1, runAttempt: 1, installationId: 1, org: ORG, repo: `${ORG}/app`, labels: TARGET.labels, target: TARGET, state: "waiting", attempts: 1, receivedAt: at, updatedAt: at, expireAt: at };
}

/**
 * A scripted store: `slots` live slots of the spec, `waiting()` the jobs listed on
 * each look, `reclaim` whether a job's claim is won. Launches go to a launch
 * queue, so a won claim "launches" with no GitHub or Cloud Run call.
 */
function scripted(options: { slots?: () => number; waiting: () => JobRecord[]; reclaim?: (seen: JobRecord) => boolean; enqueue?: (launch: QueuedLaunch) => void }) {
  const calls: string[] = [];
  const launches: QueuedLaunch[] = [];
  const released: number[] = [];
  const store = {
    listSlots: async (key?: string) => (calls.push(`listSlots ${key}`), Array.from({ length: options.slots?.() ?? 0 }, () => ({}))),
    listWaiting: async (org: string, target: RunnerTarget, limit: number) => (calls.push(`listWaiting ${org} ${target.job} ${limit}`), options.waiting()),
    reclaim: async (seen: JobRecord): Promise<ClaimResult> => {
      calls.push(`reclaim ${seen.jobId}`);
      const claimed = options.reclaim?.(seen) ?? true;
      return claimed ? { claimed: true, record: { ...seen, state: "claimed", attempts: seen.attempts + 1 } } : { claimed: false, record: { ...seen, state: "claimed", attempts: seen.attempts + 1 } };
    },
    takeSlot: async () => true,
    releaseSlot: async (jobId: number) => (released.push(jobId), jobId % 2 === 0),
    markEnqueued: async () => undefined,
    markNotLaunched: async (jobId: number, _attempt: number, outcome: { state: string }) => void calls.push(`markNotLaunched ${jobId} ${outcome.state}`),
  };
  const queue = {
    enqueues: true,
    enqueue: async (launch: QueuedLaunch) => {
      options.enqueue?.(launch);
      launches.push(launch);
    },
  };
  const deps = { store, queue, config: readConfig({}), launcher: {}, pacer: {} } as unknown as KumoDeps;
  const logs = new LogCapture();
  const log = pino({ level: "trace" }, logs.stream) as unknown as Logger;
  return { deps, calls, launches, released, logs, log, looks: () => calls.filter((c) => c.startsWith("listWaiting")).length };
}

describe("launchWaiting: waiting jobs of a capped spec go when capacity frees", () => {
  test("an uncapped spec has nothing waiting: no store call", async () => {
    const s = scripted({ waiting: () => [waitingRecord(1)] });
    expect(await launchWaiting(s.deps, octokit, s.log, ORG, { ...TARGET, maxRunners: undefined })).toBe(0);
    expect(s.calls).toEqual([]);
  });

  test("oldest waiting job first, asked for by spec, three at a time; its claim launches it", async () => {
    let slots = 0;
    const s = scripted({ slots: () => slots, waiting: () => [waitingRecord(11), waitingRecord(12)], enqueue: () => slots++ });
    const key = capacityOf(ORG, TARGET)!.key;

    expect(await launchWaiting(s.deps, octokit, s.log, ORG, { ...TARGET, maxRunners: 1 })).toBe(1);

    expect(s.launches).toEqual([{ jobId: 11, attempt: 2 }]);
    const oneKey = capacityOf(ORG, { ...TARGET, maxRunners: 1 })!.key;
    expect(oneKey).toBe(key);
    expect(s.calls).toEqual([`listSlots ${key}`, `listWaiting ${ORG} ${TARGET.job} 3`, "reclaim 11"]);
    expect(s.logs.find(/capacity freed: launching waiting job of octo-org \[kumo, small\] → small/)).toMatchObject({ jobId: 11, attempt: 2, waitedMs: expect.any(Number) });
    // Received 30 s ago.
    expect(s.logs.find(/capacity freed/)!.waitedMs).toBeGreaterThanOrEqual(30_000);
    expect(s.logs.find(/capacity freed/)!.waitedMs).toBeLessThan(40_000);
  });

  test("a job another instance took is skipped for the next one of the same look", async () => {
    let slots = 0;
    const s = scripted({ slots: () => slots, waiting: () => [waitingRecord(21), waitingRecord(22)], reclaim: (seen) => seen.jobId !== 21, enqueue: () => slots++ });

    expect(await launchWaiting(s.deps, octokit, s.log, ORG, { ...TARGET, maxRunners: 1 })).toBe(1);

    expect(s.launches).toEqual([{ jobId: 22, attempt: 2 }]);
    expect(s.calls.filter((c) => c.startsWith("reclaim"))).toEqual(["reclaim 21", "reclaim 22"]);
  });

  test("never more launches than the cap, even if the slots do not show them yet", async () => {
    let next = 100;
    const s = scripted({ slots: () => 0, waiting: () => [waitingRecord(next++)] });
    expect(await launchWaiting(s.deps, octokit, s.log, ORG, TARGET)).toBe(2);
    expect(s.launches.map((l) => l.jobId)).toEqual([100, 101]);
  });

  test("bounded when others take every job: cap + 3 looks, nothing launched", async () => {
    const s = scripted({ slots: () => 0, waiting: () => [waitingRecord(31)], reclaim: () => false });
    expect(await launchWaiting(s.deps, octokit, s.log, ORG, TARGET)).toBe(0);
    expect(s.looks()).toBe(5);
    expect(s.launches).toEqual([]);
  });

  test("a full capacity: no look at the waiting jobs", async () => {
    const s = scripted({ slots: () => 2, waiting: () => [waitingRecord(41)] });
    expect(await launchWaiting(s.deps, octokit, s.log, ORG, TARGET)).toBe(0);
    expect(s.looks()).toBe(0);
    // Above the cap (it was lowered): the same.
    const over = scripted({ slots: () => 3, waiting: () => [waitingRecord(41)] });
    expect(await launchWaiting(over.deps, octokit, over.log, ORG, TARGET)).toBe(0);
    expect(over.looks()).toBe(0);
  });

  test("nobody waiting: one look", async () => {
    const s = scripted({ slots: () => 0, waiting: () => [] });
    expect(await launchWaiting(s.deps, octokit, s.log, ORG, TARGET)).toBe(0);
    expect(s.looks()).toBe(1);
    expect(s.calls.filter((c) => c.startsWith("reclaim"))).toEqual([]);
  });

  test("stops at the first job that does not launch", async () => {
    let next = 200;
    const s = scripted({
      slots: () => 0,
      waiting: () => [waitingRecord(next++)],
      enqueue: () => {
        throw new Error("queue unreachable");
      },
    });
    expect(await launchWaiting(s.deps, octokit, s.log, ORG, TARGET)).toBe(0);
    expect(s.looks()).toBe(1);
    expect(s.calls).toContain("markNotLaunched 200 pending");
  });
});

describe("freeCapacity and launchWaitingAfter", () => {
  test("a job of no capped spec frees nothing and looks at nothing", async () => {
    const s = scripted({ waiting: () => [waitingRecord(1)] });
    expect(await freeCapacity(s.deps, octokit, s.log, { jobId: 2, org: ORG })).toBe(false);
    expect(await freeCapacity(s.deps, octokit, s.log, { jobId: 2, org: ORG, target: { ...TARGET, maxRunners: undefined } })).toBe(false);
    expect(s.calls).toEqual([]);
    expect(s.released).toEqual([]);
  });

  test("a capped job gives its slot back (true when it held one) and the waiting jobs look at the capacity, even without its slot", async () => {
    const held = scripted({ slots: () => 0, waiting: () => [] });
    expect(await freeCapacity(held.deps, octokit, held.log, { jobId: 2, org: ORG, target: TARGET })).toBe(true);
    expect(held.released).toEqual([2]);
    expect(held.looks()).toBe(1);

    const none = scripted({ slots: () => 0, waiting: () => [] });
    expect(await freeCapacity(none.deps, octokit, none.log, { jobId: 3, org: ORG, target: TARGET })).toBe(false);
    expect(none.released).toEqual([3]);
    expect(none.looks()).toBe(1);
  });

  test.each([
    ["launched", 0, { launched: true, runnerName: "r", execution: "e" }],
    ["failed, capacity unchanged", 0, { launched: false, state: "failed", reason: "x" }],
    ["failed, its slot given back", 1, { launched: false, state: "failed", reason: "x", capacityMayBeFree: true }],
    ["waiting: a slot may have freed meanwhile", 1, { launched: false, state: "waiting", reason: "x", deferred: true, capacityMayBeFree: true }],
  ] as const)("after a launch (%s): waiting jobs looked at %d time(s)", async (_name, looks, outcome) => {
    const s = scripted({ slots: () => 0, waiting: () => [] });
    await launchWaitingAfter(s.deps, octokit, s.log, { org: ORG }, TARGET, outcome);
    expect(s.looks()).toBe(looks);
  });
});
