import { describe, expect, test } from "@jest/globals";
import { EXPLAINED_COLLECTION, REDELIVERIES_COLLECTION, type FirestoreJobStore } from "../../app/store/firestore-job-store.js";
import type { WarmLaunch } from "../../app/store/job-store.js";
import type { NewJob } from "../../app/store/job-store.js";
import { emulatorStore } from "../helpers/harness.js";

let nextJobId = 900_000;
function job(overrides: Partial<NewJob> = {}): NewJob {
  return {
    jobId: nextJobId++,
    runId: 5,
    runAttempt: 1,
    installationId: 1,
    org: "octo-org",
    repo: "octo-org/app",
    labels: ["kumo", "small"],
    target: { labels: ["kumo", "small"], group: "cloudrun", groupId: 7, job: "projects/p/locations/r/jobs/j" },
    deliveryId: "d-1",
    ...overrides,
  };
}
const at = (ms: number) => new Date(Date.UTC(2026, 10, 25, 12, 0, 0) + ms);

describe("FirestoreJobStore (Firestore emulator)", () => {
  test("the first claim creates the record with a lease and a TTL", async () => {
    const store = emulatorStore(60_000);
    const j = job();
    const result = await store.claim(j, at(0));
    expect(result.claimed).toBe(true);
    const record = await store.get(j.jobId);
    expect(record).toMatchObject({ state: "claimed", attempts: 1, leaseUntil: at(60_000), receivedAt: at(0), target: j.target });
    expect(record!.expireAt.getTime()).toBeGreaterThan(at(0).getTime());
  });

  test("20 concurrent claims of one job: exactly one wins", async () => {
    const store = emulatorStore();
    const j = job();
    const results = await Promise.all(Array.from({ length: 20 }, () => store.claim(j)));
    expect(results.filter((r) => r.claimed)).toHaveLength(1);
  });

  test("a claim is protected by its lease, then re-claimable with the next attempt", async () => {
    const store = emulatorStore(60_000);
    const j = job();
    await store.claim(j, at(0));
    expect((await store.claim(j, at(59_000))).claimed).toBe(false);
    const retaken = await store.claim(j, at(61_000));
    expect(retaken).toMatchObject({ claimed: true, record: { attempts: 2, state: "claimed" } });
  });

  test("concurrent take-overs of an expired claim: exactly one wins", async () => {
    const store = emulatorStore(1_000);
    const j = job();
    await store.claim(j, at(0));
    const results = await Promise.all(Array.from({ length: 8 }, () => store.claim(j, at(5_000))));
    expect(results.filter((r) => r.claimed)).toHaveLength(1);
    expect(await store.get(j.jobId)).toMatchObject({ attempts: 2 });
  });

  test("a launched job is never claimed again by a late delivery", async () => {
    const store = emulatorStore(1_000);
    const j = job();
    await store.claim(j, at(0));
    await store.markLaunched(j.jobId, 1, { runnerId: 3, runnerName: "kumo-x", execution: "e" }, at(100));
    expect((await store.claim(j, at(3_600_000))).claimed).toBe(false);
    const record = await store.get(j.jobId);
    expect(record).toMatchObject({ state: "launched", runnerName: "kumo-x", execution: "e", launchedAt: at(100) });
    expect(record!.leaseUntil).toBeUndefined();
  });

  test("pending waits for retry-after; failed is never retried by a delivery", async () => {
    const store = emulatorStore(60_000);
    const pending = job();
    await store.claim(pending, at(0));
    await store.markNotLaunched(pending.jobId, 1, { state: "pending", reason: "rate limited", retryAfterMs: 30_000 }, at(1_000));
    expect((await store.claim(pending, at(20_000))).claimed).toBe(false);
    expect((await store.claim(pending, at(31_001))).claimed).toBe(true);

    const failed = job();
    await store.claim(failed, at(0));
    await store.markNotLaunched(failed.jobId, 1, { state: "failed", reason: "PERMISSION_DENIED" }, at(1_000));
    expect((await store.claim(failed, at(3_600_000))).claimed).toBe(false);
    expect(await store.get(failed.jobId)).toMatchObject({ state: "failed", lastError: "PERMISSION_DENIED" });
  });

  test("an outcome of a superseded attempt does not overwrite the newer claim", async () => {
    const store = emulatorStore(1_000);
    const j = job();
    await store.claim(j, at(0));
    await store.claim(j, at(5_000)); // attempt 2 took over
    await store.markNotLaunched(j.jobId, 1, { state: "failed", reason: "late answer of attempt 1" }, at(6_000));
    expect(await store.get(j.jobId)).toMatchObject({ state: "claimed", attempts: 2 });
  });

  test("progress never moves a job backwards, and records who ran it", async () => {
    const store = emulatorStore();
    const j = job();
    await store.claim(j, at(0));
    const base = { jobId: j.jobId, installationId: 1, org: "octo-org", repo: "octo-org/app", runId: 5, runAttempt: 1, labels: ["kumo", "small"] };
    await store.recordProgress({ ...base, status: "completed", conclusion: "cancelled", completedAt: at(9_000) }, at(9_000));
    await store.recordProgress({ ...base, status: "in_progress", runnerName: "kumo-other", runnerId: 8, startedAt: at(5_000) }, at(10_000));
    await store.markLaunched(j.jobId, 1, { runnerId: 3, runnerName: "kumo-mine", execution: "e" }, at(11_000));
    expect(await store.get(j.jobId)).toMatchObject({
      state: "completed",
      conclusion: "cancelled",
      assignedRunnerName: "kumo-other",
      runnerName: "kumo-mine",
      startedAt: at(5_000),
      completedAt: at(9_000),
    });
  });
});

const DAY = 24 * 60 * 60 * 1000;
const base = { installationId: 1, org: "octo-org", repo: "octo-org/app", runId: 5, runAttempt: 1, labels: ["kumo", "small"] };

/** A job that found its spec's capacity full. */
async function waitingJob(store: FirestoreJobStore, overrides: Partial<NewJob> = {}, claimedAt = at(0)): Promise<number> {
  const j = job(overrides);
  await store.claim(j, claimedAt);
  await store.markNotLaunched(j.jobId, 1, { state: "waiting", reason: "maxRunners reached" }, claimedAt);
  return j.jobId;
}

describe("FirestoreJobStore: waiting jobs of a spec", () => {
  const target = job().target;

  test("only waiting jobs of this org, Cloud Run job and exact label list", async () => {
    const store = emulatorStore();
    const mine = await waitingJob(store);
    await waitingJob(store, { org: "other-org" });
    await waitingJob(store, { target: { ...target, job: "projects/p/locations/r/jobs/other" } });
    await waitingJob(store, { target: { ...target, labels: ["kumo", "large"] } });
    await waitingJob(store, { target: { ...target, labels: ["kumo"] } });
    await waitingJob(store, { target: { ...target, labels: ["kumo", "small", "gpu"] } });
    const claimed = job();
    await store.claim(claimed, at(0));

    expect((await store.listWaiting("octo-org", target, 10)).map((r) => r.jobId)).toEqual([mine]);
  });

  test("oldest first by GitHub's created_at (else by when Kumo got it), ties by job id, at most `limit`", async () => {
    const store = emulatorStore();
    // Document ids sort as strings ("100000" < "99999"): the store's order must not be Firestore's.
    const newest = await waitingJob(store, { jobId: 10, createdAt: at(-1_000) });
    const oldest = await waitingJob(store, { jobId: 300_000, createdAt: at(-9_000) });
    const tieLow = await waitingJob(store, { jobId: 99_999, createdAt: at(-5_000) });
    const tieHigh = await waitingJob(store, { jobId: 100_000, createdAt: at(-5_000) });
    const received = await waitingJob(store, { jobId: 20 }, at(-3_000)); // no created_at: receivedAt counts

    expect((await store.listWaiting("octo-org", target, 10)).map((r) => r.jobId)).toEqual([oldest, tieLow, tieHigh, received, newest]);
    expect((await store.listWaiting("octo-org", target, 2)).map((r) => r.jobId)).toEqual([oldest, tieLow]);
  });
});

describe("FirestoreJobStore: reconcile's claim takes a record only as it was seen", () => {
  test("same state and attempts, lease over, a target: claimed with the next attempt", async () => {
    const store = emulatorStore(1_000);
    const j = job();
    await store.claim(j, at(0));
    await store.markNotLaunched(j.jobId, 1, { state: "pending", reason: "HTTP 502", retryAfterMs: 30_000 }, at(10));

    // Changed since seen: another state, or another attempt.
    expect((await store.reclaim({ jobId: j.jobId, state: "waiting", attempts: 1 }, at(40_000))).claimed).toBe(false);
    expect((await store.reclaim({ jobId: j.jobId, state: "pending", attempts: 2 }, at(40_000))).claimed).toBe(false);
    // Its retry-after has not passed.
    expect((await store.reclaim({ jobId: j.jobId, state: "pending", attempts: 1 }, at(30_009))).claimed).toBe(false);
    expect(await store.get(j.jobId)).toMatchObject({ state: "pending", attempts: 1 });

    const taken = await store.reclaim({ jobId: j.jobId, state: "pending", attempts: 1 }, at(30_011));
    expect(taken).toMatchObject({ claimed: true, record: { state: "claimed", attempts: 2, claimedAt: at(30_011), leaseUntil: at(31_011), updatedAt: at(30_011) } });
    expect(await store.get(j.jobId)).toMatchObject({ state: "claimed", attempts: 2, leaseUntil: at(31_011), lastError: "HTTP 502" });
    // What was seen is gone: a second pass gets nothing.
    expect((await store.reclaim({ jobId: j.jobId, state: "pending", attempts: 1 }, at(40_000))).claimed).toBe(false);
  });

  test("a record without a target (progress before queued) is never claimed", async () => {
    const store = emulatorStore();
    const jobId = nextJobId++;
    await store.recordProgress({ ...base, jobId, status: "in_progress" }, at(0));
    expect(await store.reclaim({ jobId, state: "running", attempts: 0 }, at(DAY))).toMatchObject({ claimed: false, record: { state: "running", attempts: 0 } });
  });

  test("a new attempt forgets the previous one's task; a redelivery's claim records its delivery", async () => {
    const store = emulatorStore(1_000);
    const j = job({ deliveryId: "d-first" });
    await store.claim(j, at(0));
    await store.markEnqueued(j.jobId, 1, 5_000, at(10));
    expect(await store.takeTask(j.jobId, 1, at(20))).toMatchObject({ claimed: true });
    await store.markNotLaunched(j.jobId, 1, { state: "pending", reason: "HTTP 502" }, at(30));

    const again = await store.claim({ ...j, deliveryId: "d-second" }, at(40));
    expect(again).toMatchObject({ claimed: true, record: { attempts: 2, deliveryId: "d-second" } });
    const record = await store.get(j.jobId);
    expect(record).toMatchObject({ state: "claimed", attempts: 2, deliveryId: "d-second" });
    expect(record!.taskTaken).toBeUndefined();
    expect(record!.enqueued).toBeUndefined();

    await store.markNotLaunched(j.jobId, 2, { state: "pending", reason: "HTTP 502" }, at(50));
    const { deliveryId: _d, ...noDelivery } = j;
    await store.claim(noDelivery, at(60));
    expect(await store.get(j.jobId)).toMatchObject({ attempts: 3, deliveryId: "d-second" });
  });
});

describe("FirestoreJobStore: launch outcomes", () => {
  test("the launch queue: enqueued holds the claim; its task is taken once, for its own attempt only", async () => {
    const store = emulatorStore(1_000);
    const j = job();
    await store.claim(j, at(0));
    await store.markEnqueued(j.jobId, 1, 900_000, at(10));
    expect(await store.get(j.jobId)).toMatchObject({ state: "claimed", enqueued: true, leaseUntil: at(900_010), updatedAt: at(10) });

    expect((await store.takeTask(j.jobId, 2, at(20))).claimed).toBe(false);
    const taken = await store.takeTask(j.jobId, 1, at(20));
    expect(taken).toMatchObject({ claimed: true, record: { state: "claimed", taskTaken: true, claimedAt: at(20), leaseUntil: at(1_020), updatedAt: at(20) } });
    expect(taken.record.enqueued).toBeUndefined();
    expect((await store.get(j.jobId))!.enqueued).toBeUndefined();
    // The same task delivered again.
    expect(await store.takeTask(j.jobId, 1, at(30))).toMatchObject({ claimed: false, record: { taskTaken: true } });
    // A late markEnqueued does not lease a task already taken.
    await store.markEnqueued(j.jobId, 1, 900_000, at(40));
    expect(await store.get(j.jobId)).toMatchObject({ leaseUntil: at(1_020) });
    expect((await store.get(j.jobId))!.enqueued).toBeUndefined();
  });

  test("a pending task is taken again once its retry-after has passed, not before", async () => {
    const store = emulatorStore(1_000);
    const j = job();
    await store.claim(j, at(0));
    await store.markNotLaunched(j.jobId, 1, { state: "pending", reason: "rate limited", retryAfterMs: 5_000 }, at(10));
    expect((await store.takeTask(j.jobId, 1, at(5_009))).claimed).toBe(false);
    expect((await store.takeTask(j.jobId, 1, at(5_011))).claimed).toBe(true);
    await expect(store.takeTask(nextJobId++, 1, at(0))).rejects.toThrow(/has no record/);
  });

  test("a failed launch without retry-after leaves no lease; waits are counted only for a full capacity", async () => {
    const store = emulatorStore(60_000);
    const j = job();
    await store.claim(j, at(0));
    await store.markNotLaunched(j.jobId, 1, { state: "pending", reason: "HTTP 500" }, at(10));
    const pending = await store.get(j.jobId);
    expect(pending).toMatchObject({ state: "pending", lastError: "HTTP 500", updatedAt: at(10) });
    expect(pending!.leaseUntil).toBeUndefined();
    expect(pending!.waits).toBeUndefined();

    await store.claim(j, at(20));
    await store.markNotLaunched(j.jobId, 2, { state: "waiting", reason: "full" }, at(30));
    await store.claim(j, at(40));
    await store.markNotLaunched(j.jobId, 3, { state: "waiting", reason: "still full" }, at(50));
    expect(await store.get(j.jobId)).toMatchObject({ state: "waiting", attempts: 3, waits: 2, lastError: "still full" });
  });

  test("an outcome arriving after GitHub's in_progress keeps the job running, noting only the reason", async () => {
    const store = emulatorStore();
    const j = job();
    await store.claim(j, at(0));
    await store.recordProgress({ ...base, jobId: j.jobId, status: "in_progress" }, at(5));
    await store.markNotLaunched(j.jobId, 1, { state: "failed", reason: "late failure" }, at(10));
    expect(await store.get(j.jobId)).toMatchObject({ state: "running", lastError: "late failure", attempts: 1 });
  });

  test("launched after a failed try of the same attempt: the old error and the lease are gone", async () => {
    const store = emulatorStore();
    const j = job();
    await store.claim(j, at(0));
    await store.markNotLaunched(j.jobId, 1, { state: "pending", reason: "HTTP 502", retryAfterMs: 60_000 }, at(10));
    await store.markLaunched(j.jobId, 1, { runnerId: 1, runnerName: "kumo-r", execution: "e" }, at(20));
    const record = await store.get(j.jobId);
    expect(record).toMatchObject({ state: "launched", runnerName: "kumo-r", launchedAt: at(20), updatedAt: at(20) });
    expect(record!.lastError).toBeUndefined();
    expect(record!.leaseUntil).toBeUndefined();
  });

  test("an in_progress arriving before the launch is recorded: the job stays running", async () => {
    const store = emulatorStore();
    const j = job();
    await store.claim(j, at(0));
    await store.recordProgress({ ...base, jobId: j.jobId, status: "in_progress", runnerName: "kumo-r" }, at(5));
    await store.markLaunched(j.jobId, 1, { runnerId: 1, runnerName: "kumo-r", execution: "e" }, at(10));
    expect(await store.get(j.jobId)).toMatchObject({ state: "running", runnerName: "kumo-r", execution: "e" });
  });
});

describe("FirestoreJobStore: TTLs (Firestore deletes records after expireAt)", () => {
  test("an open record lives 30 days; a completed one 7 days after completion", async () => {
    const store = emulatorStore();
    const j = job();
    await store.claim(j, at(0));
    expect((await store.get(j.jobId))!.expireAt).toEqual(at(30 * DAY));
    await store.recordProgress({ ...base, jobId: j.jobId, status: "in_progress" }, at(1_000));
    expect((await store.get(j.jobId))!.expireAt).toEqual(at(30 * DAY));
    await store.recordProgress({ ...base, jobId: j.jobId, status: "completed" }, at(2_000));
    expect((await store.get(j.jobId))!.expireAt).toEqual(at(2_000 + 7 * DAY));
  });

  test("progress before queued: 30 days while running, 7 once completed", async () => {
    const store = emulatorStore();
    const [running, completed] = [nextJobId++, nextJobId++];
    expect(await store.recordProgress({ ...base, jobId: running, status: "in_progress" }, at(0))).toMatchObject({ state: "running", attempts: 0, expireAt: at(30 * DAY) });
    expect(await store.recordProgress({ ...base, jobId: completed, status: "completed" }, at(0))).toMatchObject({ state: "completed", expireAt: at(7 * DAY) });
    expect((await store.get(running))!.expireAt).toEqual(at(30 * DAY));
  });

  test("explanations live 7 days; redelivery counters 3 days, as long as GitHub keeps deliveries", async () => {
    const store = emulatorStore();
    const jobId = nextJobId++;
    await store.explanation(jobId, { jobId, repo: "octo-org/app", headSha: "abc", reason: "capacity" }, at(0));
    const explained = (await store.db.collection(EXPLAINED_COLLECTION).doc(String(jobId)).get()).data()!;
    expect(explained.expireAt.toDate()).toEqual(at(7 * DAY));
    expect(explained.at.toDate()).toEqual(at(0));

    expect(await store.takeRedelivery("guid-1", 2, at(0))).toBe(true);
    const counter = (await store.db.collection(REDELIVERIES_COLLECTION).doc("guid-1").get()).data()!;
    expect(counter.count).toBe(1);
    expect(counter.at.toDate()).toEqual(at(0));
    expect(counter.expireAt.toDate()).toEqual(at(3 * DAY));
  });
});

describe("FirestoreJobStore: the smaller records", () => {
  test("redeliveries are counted up to max per guid", async () => {
    const store = emulatorStore();
    expect(await store.takeRedelivery("g", 2, at(0))).toBe(true);
    expect(await store.takeRedelivery("g", 2, at(1))).toBe(true);
    expect(await store.takeRedelivery("g", 2, at(2))).toBe(false);
    expect((await store.db.collection(REDELIVERIES_COLLECTION).doc("g").get()).get("count")).toBe(2);
    expect(await store.takeRedelivery("other", 2, at(3))).toBe(true);
    expect(await store.takeRedelivery("none-allowed", 0, at(3))).toBe(false);
  });

  test("marks: set, read back, absent", async () => {
    const store = emulatorStore();
    expect(await store.getMark("deliveries")).toBeUndefined();
    await store.setMark("deliveries", at(5));
    await store.setMark("other", at(9));
    expect(await store.getMark("deliveries")).toEqual(at(5));
    await store.setMark("deliveries", at(7));
    expect(await store.getMark("deliveries")).toEqual(at(7));
  });

  test("an explanation is created once, updated, and forgotten", async () => {
    const store = emulatorStore();
    const j = job();
    await store.claim(j, at(0));
    const create = { jobId: j.jobId, repo: "octo-org/app", headSha: "abc", reason: "capacity" };
    expect(await store.explanation(j.jobId)).toEqual({ created: false });
    expect(await store.explanation(j.jobId, create, at(1))).toEqual({ created: true, explanation: create });
    expect(await store.explanation(j.jobId, { ...create, reason: "other" }, at(2))).toEqual({ created: false, explanation: create });

    await store.setExplanation(j.jobId, { checkRunId: 77, reason: "resolved" });
    expect(await store.explanation(j.jobId)).toEqual({ created: false, explanation: { ...create, checkRunId: 77, reason: "resolved" } });
    expect(await store.get(j.jobId)).toMatchObject({ explained: true });

    // A job Kumo has no record of (its explanation only).
    const lone = nextJobId++;
    await store.explanation(lone, { ...create, jobId: lone }, at(3));
    await expect(store.setExplanation(lone, { checkRunId: 78 })).resolves.toBeUndefined();
    expect(await store.get(lone)).toBeUndefined();

    await store.dropExplanation(j.jobId);
    expect(await store.explanation(j.jobId)).toEqual({ created: false });
  });

  test("slots: a slot is noted as checked; noting a released one is harmless; listed per capacity or all", async () => {
    const store = emulatorStore();
    expect(await store.takeSlot("k1", 2, { jobId: 1, org: "octo-org", name: "n1" }, at(0))).toBe(true);
    expect(await store.takeSlot("k2", 1, { jobId: 2, org: "octo-org", name: "n2" }, at(0))).toBe(true);
    const [slot] = await store.listSlots("k1");
    expect(slot).toEqual({ id: `k1-${slot!.index}`, key: "k1", index: slot!.index, max: 2, jobId: 1, org: "octo-org", name: "n1", takenAt: at(0) });

    await store.touchSlot(slot!.id, at(60_000));
    expect((await store.listSlots("k1"))[0]).toMatchObject({ checkedAt: at(60_000), takenAt: at(0) });
    expect((await store.listSlots("k2"))[0]!.checkedAt).toBeUndefined();
    expect((await store.listSlots()).map((s) => s.jobId).sort()).toEqual([1, 2]);

    await store.releaseSlot(1);
    await expect(store.touchSlot(slot!.id, at(120_000))).resolves.toBeUndefined();
    expect(await store.listSlots("k1")).toEqual([]);
  });

  test("a lowered cap: holders above it keep their slots, a new taker waits until fewer than the cap remain", async () => {
    const store = emulatorStore();
    for (const jobId of [1, 2, 3]) expect(await store.takeSlot("k", 3, { jobId, org: "o", name: "n" })).toBe(true);
    expect(await store.takeSlot("k", 2, { jobId: 4, org: "o", name: "n" })).toBe(false);
    expect(await store.takeSlot("k", 2, { jobId: 1, org: "o", name: "n" })).toBe(true);
    await store.releaseSlot(2);
    expect(await store.takeSlot("k", 2, { jobId: 4, org: "o", name: "n" })).toBe(false);
    await store.releaseSlot(3);
    expect(await store.takeSlot("k", 2, { jobId: 4, org: "o", name: "n" })).toBe(true);
    expect((await store.listSlots("k")).map((s) => s.jobId).sort()).toEqual([1, 4]);
  });

  test("list: records in the given states, oldest update first, at most limit", async () => {
    const store = emulatorStore();
    const [late, early, middle, launched] = [job({ jobId: 10 }), job({ jobId: 300 }), job({ jobId: 2_000 }), job({ jobId: 40 })];
    await store.claim(late, at(3_000));
    await store.claim(early, at(1_000));
    await store.claim(middle, at(0));
    await store.markNotLaunched(middle.jobId, 1, { state: "pending", reason: "x" }, at(2_000));
    await store.claim(launched, at(0));
    await store.markLaunched(launched.jobId, 1, { runnerId: 1, runnerName: "r", execution: "e" }, at(500));

    expect((await store.list(["claimed", "pending"], 10)).map((r) => r.jobId)).toEqual([early.jobId, middle.jobId, late.jobId]);
    expect((await store.list(["launched"], 10)).map((r) => r.jobId)).toEqual([launched.jobId]);
    expect(await store.list(["claimed", "pending", "launched"], 2)).toHaveLength(2);
  });

  test("records received since a time: newest first, only the fields asked, at most limit", async () => {
    const store = emulatorStore();
    const [a, b, c] = [job(), job(), job()];
    await store.claim(a, at(0));
    await store.claim(b, at(1_000));
    await store.claim(c, at(2_000));
    expect(await store.listReceivedSince(at(1_000), 10, ["jobId", "receivedAt"])).toEqual([
      { jobId: c.jobId, receivedAt: at(2_000) },
      { jobId: b.jobId, receivedAt: at(1_000) },
    ]);
    expect(await store.listReceivedSince(at(0), 1, ["jobId"])).toEqual([{ jobId: c.jobId }]);
  });
});

describe("FirestoreJobStore: warm pools", () => {
  const holder = { org: "octo-org", name: "octo-org [kumo, small] → j" };
  const keepAll = (add: number) => (launches: WarmLaunch[]) => ({ keep: launches, add });

  test("launches are added with increasing turns; decide sees what is there and says what stays", async () => {
    const store = emulatorStore();
    const first = await store.updateWarmPool("pool", holder, keepAll(2), at(0));
    expect(first.map((l) => [l.turn, l.at])).toEqual([
      [1, at(0)],
      [2, at(0)],
    ]);
    expect(await store.recordWarmLaunch("pool", first[0]!.id, { runnerId: 9, runnerName: "kumo-0-1-aaaaaa", execution: "e-1" })).toBe(true);
    let seen: WarmLaunch[] = [];
    const next = await store.updateWarmPool(
      "pool",
      holder,
      (launches) => {
        seen = launches;
        return { keep: launches.filter((l) => l.runnerName), add: 1 };
      },
      at(5_000),
    );
    expect(seen).toHaveLength(2);
    expect(next.map((l) => l.turn)).toEqual([3]);
    expect((await store.listWarmLaunches("pool")).map((l) => [l.turn, l.runnerName ?? null]).sort()).toEqual([
      [1, "kumo-0-1-aaaaaa"],
      [3, null],
    ]);
    expect(await store.findWarmLaunch("kumo-0-1-aaaaaa")).toMatchObject({ id: first[0]!.id, turn: 1, execution: "e-1", runnerId: 9 });
    expect(await store.findWarmLaunch("kumo-0-9-ffffff")).toBeUndefined();
  });

  test("two updates at once: the second decides on what the first wrote (no pool is overfilled)", async () => {
    const store = emulatorStore();
    const fill = (launches: WarmLaunch[]) => ({ keep: launches, add: Math.max(0, 2 - launches.length) });
    const [a, b] = await Promise.all([store.updateWarmPool("pool", holder, fill), store.updateWarmPool("pool", holder, fill)]);
    expect(a.length + b.length).toBe(2);
    expect(await store.listWarmLaunches("pool")).toHaveLength(2);
  });

  test("a launch dropped meanwhile cannot be recorded; taking one for the launch route works once; drop removes its runner name", async () => {
    const store = emulatorStore();
    const [launch] = await store.updateWarmPool("pool", holder, keepAll(1));
    expect(await store.takeWarmLaunch("pool", launch!.id)).toMatchObject({ id: launch!.id, turn: 1 });
    expect(await store.takeWarmLaunch("pool", launch!.id)).toBeUndefined();
    await store.recordWarmLaunch("pool", launch!.id, { runnerId: 1, runnerName: "kumo-0-1-bbbbbb", execution: "e" });
    await store.dropWarmLaunch("pool", launch!.id);
    expect(await store.findWarmLaunch("kumo-0-1-bbbbbb")).toBeUndefined();
    expect(await store.recordWarmLaunch("pool", launch!.id, { runnerId: 1, runnerName: "kumo-0-1-bbbbbb", execution: "e" })).toBe(false);
    expect(await store.listWarmLaunches("pool")).toEqual([]);
    expect(await store.takeWarmLaunch("nope", "12345678")).toBeUndefined();
  });

  test("runsJob: a runner an in_progress webhook named for a job still running", async () => {
    const store = emulatorStore();
    const j = job();
    const progress = { jobId: j.jobId, installationId: 1, org: j.org, repo: j.repo, runId: j.runId, runAttempt: 1, labels: j.labels };
    await store.recordProgress({ ...progress, status: "in_progress", runnerName: "kumo-0-1-aaaaaa" });
    expect(await store.runsJob("kumo-0-1-aaaaaa")).toBe(true);
    expect(await store.runsJob("kumo-0-2-bbbbbb")).toBe(false);
    await store.recordProgress({ ...progress, status: "completed", runnerName: "kumo-0-1-aaaaaa" });
    expect(await store.runsJob("kumo-0-1-aaaaaa")).toBe(false);
  });
});
