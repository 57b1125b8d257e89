import { describe, expect, test } from "@jest/globals";
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
