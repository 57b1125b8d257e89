import { randomUUID } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import { Firestore } from "@google-cloud/firestore";
import nock from "nock";
import { FirestoreJobStore } from "../../app/store/firestore-job-store.js";
import { capacity, slotVerdict, SLOT_CHECK_MS } from "../../app/reconcile/capacity.js";
import { unfinishedLaunches } from "../../app/reconcile/unfinished-launches.js";
import { capacityOf } from "../../app/store/job-store.js";
import { INSTALLATION_ID, ORG, REPO, workflowJobPayload } from "../helpers/fixtures.js";
import { createHarness, emulatorStore, reconcileWith, type Harness } from "../helpers/harness.js";
import { World } from "../helpers/world.js";

const CAPPED = ["kumo", "capped"];
const SMALL_JOB = "projects/kumo-test/locations/us-central1/jobs/gha-runner-small";
const TARGET = { labels: CAPPED, group: "cloudrun", groupId: 7, job: SMALL_JOB, maxRunners: 3 };
const settings = (max: number) => `runners:\n  - labels: [kumo, capped]\n    group: cloudrun\n    job: gha-runner-small\n    maxRunners: ${max}\n`;
let nextJobId = 1_500_000;
const jobIds = (n: number) => Array.from({ length: n }, () => nextJobId++);
const queued = (id: number) => workflowJobPayload("queued", { id, labels: CAPPED }) as { action: string; workflow_job: { id: number } };

async function states(h: Harness, ids: number[]): Promise<Record<string, number>> {
  const tally: Record<string, number> = {};
  for (const id of ids) {
    const state = (await h.deps.store.get(id))?.state ?? "none";
    tally[state] = (tally[state] ?? 0) + 1;
  }
  return tally;
}

describe("maxRunners: exact, and freed capacity used at once", () => {
  beforeAll(() => {
    nock.disableNetConnect();
    nock.enableNetConnect("127.0.0.1");
  });
  afterEach(() => nock.cleanAll());
  afterAll(() => nock.enableNetConnect());

  test("12 jobs at once on two instances, cap 3: exactly 3 runners; every completion starts the next, oldest first; never more than 3", async () => {
    const world = new World(settings(3));
    world.install();
    const store = emulatorStore();
    const [a, b] = [createHarness({ store }), createHarness({ store })];
    const ids = jobIds(12);

    await Promise.all(ids.map((id, i) => world.deliver(i % 2 ? b : a, queued(id))));

    expect(world.running()).toBe(3);
    expect(world.registrations.size).toBe(3);
    expect(await states(a, ids)).toEqual({ launched: 3, waiting: 9 });
    expect(await store.listSlots()).toHaveLength(3);
    const waiting = [];
    for (const id of ids) if ((await store.get(id))!.state === "waiting") waiting.push(id);

    // A storm of redeliveries on both instances and two reconcile passes at once change nothing.
    world.jobStatus.forEach((_s, id) => world.jobStatus.set(id, "queued"));
    await Promise.all([
      ...ids.flatMap((id) => [world.deliver(a, queued(id)), world.deliver(b, queued(id))]),
      reconcileWith(a, {}, [capacity, unfinishedLaunches]),
      reconcileWith(b, {}, [capacity, unfinishedLaunches]),
    ]);
    expect(world.running()).toBe(3);
    expect(world.registrations.size).toBe(3);
    expect(world.peakRunning).toBe(3);

    // Each completion launches the oldest waiting job from its own webhook.
    const order: number[] = [];
    for (let round = 0; round < 12; round++) {
      const running = (await Promise.all(ids.map((id) => store.get(id)))).filter((r) => r?.state === "launched");
      if (running.length === 0) break;
      const done = running[0]!;
      const before = new Set(world.executions.keys());
      await world.finish(round % 2 ? a : b, done.jobId, done.execution, CAPPED);
      order.push(...[...world.executions.entries()].filter(([name]) => !before.has(name)).map(([, e]) => Number(e.runnerName.split("-")[1])));
      expect(world.running()).toBe(Math.min(3, 12 - round - 1));
    }
    // Oldest first: the payloads share GitHub's created_at, so by job id.
    expect(order).toEqual(waiting);
    expect(world.peakRunning).toBe(3);
    expect(await states(a, ids)).toEqual({ completed: 12 });
    expect(await store.listSlots()).toEqual([]);
  });

  test("a crash after taking capacity frees it once the claim's lease expires; reconcile launches the oldest waiting job into it", async () => {
    const world = new World(settings(3));
    world.install();
    const store = emulatorStore(1_000);
    const h = createHarness({ store });
    const [first, second, crashed, waiting] = jobIds(4) as [number, number, number, number];
    await world.deliver(h, queued(first));
    await world.deliver(h, queued(second));
    // The app died between taking the slot and registering the runner.
    world.jobStatus.set(crashed, "queued");
    const claim = await store.claim({ jobId: crashed, runId: 1, runAttempt: 1, installationId: INSTALLATION_ID, org: ORG, repo: `${ORG}/${REPO}`, labels: CAPPED, target: TARGET }, new Date(Date.now() - 5_000));
    expect(claim.claimed).toBe(true);
    const { key, name } = capacityOf(ORG, TARGET)!;
    expect(await store.takeSlot(key, 3, { jobId: crashed, org: ORG, name })).toBe(true);
    await world.deliver(h, queued(waiting));
    expect(await states(h, [waiting])).toEqual({ waiting: 1 });

    const [summary] = await reconcileWith(h, {}, [capacity]);

    expect(summary!.counts).toMatchObject({ released: 1, launched: 1, live: 3 });
    expect(summary!.details).toEqual([`${ORG} [kumo, capped] → gha-runner-small: live=3 cap=3 waiting=0`]);
    expect(await states(h, [first, second, waiting])).toEqual({ launched: 3 });
    expect(world.running()).toBe(3);
    // The crashed job is relaunched by step 1, and waits: the cap is used.
    const [step1] = await reconcileWith(h, {}, [unfinishedLaunches]);
    expect(step1!.counts).toMatchObject({ waiting: 1, launched: 0 });
    expect(world.running()).toBe(3);
    expect(world.violations().filter((v) => !v.includes(String(crashed)))).toEqual([]);
  });

  test("a lost completed webhook: reconcile asks GitHub, gives the capacity back and launches the next job", async () => {
    const world = new World(settings(1));
    world.install();
    const h = createHarness();
    const [done, next] = jobIds(2) as [number, number];
    await world.deliver(h, queued(done));
    await world.deliver(h, queued(next));
    expect(await states(h, [done, next])).toEqual({ launched: 1, waiting: 1 });
    // The runner ran the job, but GitHub's completed never arrived.
    const record = await h.deps.store.get(done);
    world.executions.get(record!.execution!)!.running = false;
    world.jobStatus.set(done, "completed");

    const soon = await reconcileWith(h, {}, [capacity]);
    expect(soon[0]!.counts).toMatchObject({ asked: 0, released: 0, live: 1, waiting: 1 });

    const later = await reconcileWith(h, {}, [capacity], new Date(Date.now() + SLOT_CHECK_MS + 1_000));
    expect(later[0]!.counts).toMatchObject({ asked: 1, released: 1, launched: 1, live: 1, waiting: 0 });
    expect(await states(h, [done, next])).toEqual({ completed: 1, launched: 1 });
    expect(world.running()).toBe(1);
  });

  test("a runner frees between a job's look at the capacity and its mark as waiting: the job still launches at once", async () => {
    const world = new World(settings(1));
    world.install();
    /** Runs `race` once, right after a takeSlot that found no capacity. */
    class RacyStore extends FirestoreJobStore {
      race: (() => Promise<unknown>) | undefined;
      override async takeSlot(...args: Parameters<FirestoreJobStore["takeSlot"]>): Promise<boolean> {
        const taken = await super.takeSlot(...args);
        const race = this.race;
        this.race = undefined;
        if (!taken && race) await race();
        return taken;
      }
    }
    const store = new RacyStore(new Firestore({ projectId: `kumo-test-${randomUUID().slice(0, 8)}`, ignoreUndefinedProperties: true }), 60_000);
    const h = createHarness({ store });
    const [first, second] = jobIds(2) as [number, number];
    await world.deliver(h, queued(first));
    const record = await store.get(first);
    // The first job completes after the second looked, before it is marked waiting: its completion finds nobody waiting.
    store.race = () => world.finish(h, first, record!.execution, CAPPED);

    await world.deliver(h, queued(second));

    expect(await states(h, [first, second])).toEqual({ completed: 1, launched: 1 });
    expect(world.running()).toBe(1);
  });

  test("a job cancelled before pickup gives its runner and its capacity to the next job", async () => {
    const world = new World(settings(1));
    world.install();
    const h = createHarness();
    const [cancelled, next] = jobIds(2) as [number, number];
    await world.deliver(h, queued(cancelled));
    await world.deliver(h, queued(next));
    world.jobStatus.set(cancelled, "completed");
    const payload = workflowJobPayload("completed", { id: cancelled, labels: CAPPED });
    Object.assign(payload.workflow_job, { conclusion: "cancelled", runner_id: null, runner_name: null });

    await world.deliver(h, payload as never);

    expect(await states(h, [cancelled, next])).toEqual({ completed: 1, launched: 1 });
    expect(world.running()).toBe(1);
    expect(world.violations()).toEqual([]);
  });
});

describe("capacity slots (Firestore emulator)", () => {
  test("20 takers at once for 3 slots: exactly 3 win; a holder keeps its slot; a released slot is taken again", async () => {
    const store = emulatorStore();
    const key = `k${nextJobId++}`;
    const ids = jobIds(20);
    const won = await Promise.all(ids.map((jobId) => store.takeSlot(key, 3, { jobId, org: ORG, name: "n" })));
    const holders = ids.filter((_, i) => won[i]);
    expect(holders).toHaveLength(3);
    expect(new Set((await store.listSlots(key)).map((s) => s.index))).toEqual(new Set([0, 1, 2]));
    expect(await store.takeSlot(key, 3, { jobId: holders[0]!, org: ORG, name: "n" })).toBe(true);
    expect(await store.listSlots(key)).toHaveLength(3);
    expect(await store.releaseSlot(holders[0]!)).toBe(true);
    expect(await store.releaseSlot(holders[0]!)).toBe(false);
    const loser = ids.find((id) => !holders.includes(id))!;
    expect(await store.takeSlot(key, 3, { jobId: loser, org: ORG, name: "n" })).toBe(true);
    expect(await store.takeSlot(key, 3, { jobId: nextJobId++, org: ORG, name: "n" })).toBe(false);
  });

  test.each([
    ["no record", undefined, 0, { keep: false, why: "job record gone" }],
    ["completed", { state: "completed" }, 0, { keep: false, why: "job completed" }],
    ["failed", { state: "failed" }, 0, { keep: false, why: "job failed" }],
    ["waiting", { state: "waiting" }, 0, { keep: false, why: "job waiting, not launching" }],
    ["pending", { state: "pending" }, 0, { keep: false, why: "job pending, not launching" }],
    ["a launch under its lease", { state: "claimed", leaseUntil: new Date(60_000) }, 0, { keep: true }],
    ["a crashed launch", { state: "claimed", leaseUntil: new Date(1_000) }, 0, { keep: false, why: "launch crashed: its claim expired" }],
    ["launched, checked recently", { state: "launched" }, SLOT_CHECK_MS - 1, { keep: true }],
    ["launched, not checked for a while", { state: "launched" }, SLOT_CHECK_MS, { ask: true }],
    ["running, not checked for a while", { state: "running" }, SLOT_CHECK_MS, { ask: true }],
  ] as const)("slot of %s", (_name, record, age, verdict) => {
    const now = new Date(10_000 + age);
    expect(slotVerdict({ takenAt: new Date(10_000) }, record as never, now)).toEqual(verdict);
  });
});
