import { describe, expect, test } from "@jest/globals";
import { unfinishedLaunches } from "../../app/reconcile/unfinished-launches.js";
import { capacityOf, type JobStore, type RunnerTarget } from "../../app/store/job-store.js";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { ORG, REPO, recordedJob, SMALL_TARGET } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { createHarness, reconcileWith, trackMocks, useNock } from "../helpers/harness.js";

useNock();

const FULL_REPO = `${ORG}/${REPO}`;
const TARGET = SMALL_TARGET;
const CAPPED: RunnerTarget = { ...TARGET, labels: ["kumo", "capped"], maxRunners: 1 };
let nextJobId = 2_400_000;
const newJobId = () => nextJobId++;
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);
const newJob = recordedJob;

/** A job whose first two claims found its capacity full, and whose third launch failed (HTTP 502). */
async function waitedTwiceThenFailed(store: JobStore, jobId: number): Promise<void> {
  const at = minutesAgo(10);
  for (const attempt of [1, 2]) {
    await store.claim(newJob(jobId), at);
    await store.markNotLaunched(jobId, attempt, { state: "waiting", reason: "full" }, at);
  }
  await store.claim(newJob(jobId), at);
  await store.markNotLaunched(jobId, 3, { state: "pending", reason: "HTTP 502" }, at);
}

describe("reconcile: a new launch attempt", () => {
  const track = trackMocks();

  test("claims that only found the capacity full do not count against maxAttempts", async () => {
    const h = createHarness();
    const jobId = newJobId();
    await waitedTwiceThenFailed(h.deps.store, jobId);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "pending", attempts: 3, waits: 2 });
    const gh = track(mockGitHub().canGetToken().hasJob(FULL_REPO, jobId, "queued").hasRunners([]).generatesJitConfig());
    track(mockCloudRun().runsJob());

    // Attempt 4, of which 2 launched: within maxAttempts 2.
    const [summary] = await reconcileWith(h, { maxAttempts: 2 }, [unfinishedLaunches]);

    expect(summary!.counts).toMatchObject({ launched: 1, failed: 0 });
    expect(gh.jitRequests[0]!.name).toMatch(new RegExp(`^kumo-${jobId}-4-`));
    expect(h.logs.find(/reconcile: launching a runner/)).toMatchObject({ jobId, attempt: 4, why: "HTTP 502" });
  });

  test("past maxAttempts real launches: failed, with the reason", async () => {
    const h = createHarness();
    const jobId = newJobId();
    await waitedTwiceThenFailed(h.deps.store, jobId);
    track(mockGitHub().canGetToken().hasJob(FULL_REPO, jobId, "queued").hasRunners([]));

    const [summary] = await reconcileWith(h, { maxAttempts: 1 }, [unfinishedLaunches]);

    expect(summary!.counts).toMatchObject({ launched: 0, failed: 1 });
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "failed", attempts: 4, lastError: "gave up after 1 launch attempts: HTTP 502" });
    expect(h.logs.find(/gave up launching a runner/)).toMatchObject({ level: 50, jobId, attempts: 1, why: "HTTP 502" });
  });

  test("a capped job given up on gives its capacity to the job waiting for it", async () => {
    const h = createHarness();
    const [given, waiting] = [newJobId(), newJobId()];
    const { key, name } = capacityOf(ORG, CAPPED)!;
    await h.deps.store.claim(newJob(given, { target: CAPPED, labels: CAPPED.labels }), minutesAgo(10));
    await h.deps.store.takeSlot(key, 1, { jobId: given, org: ORG, name });
    await h.deps.store.markNotLaunched(given, 1, { state: "pending", reason: "HTTP 502" }, minutesAgo(10));
    await h.deps.store.claim(newJob(waiting, { target: CAPPED, labels: CAPPED.labels }), minutesAgo(5));
    await h.deps.store.markNotLaunched(waiting, 1, { state: "waiting", reason: "full" }, minutesAgo(5));
    const gh = track(mockGitHub().canGetToken().hasJob(FULL_REPO, given, "queued").hasJob(FULL_REPO, waiting, "queued").hasRunners([]).generatesJitConfig());
    track(mockCloudRun().runsJob());

    const [summary] = await reconcileWith(h, { maxAttempts: 1 }, [unfinishedLaunches]);

    expect(summary!.counts).toMatchObject({ failed: 1, skipped: 1 });
    expect(await h.deps.store.get(given)).toMatchObject({ state: "failed" });
    expect(await h.deps.store.get(waiting)).toMatchObject({ state: "launched", attempts: 2, runnerName: gh.jitRequests[0]!.name });
    expect((await h.deps.store.listSlots(key)).map((s) => s.jobId)).toEqual([waiting]);
  });

  test("a launch that keeps failing is explained on the job's commit once the job has waited explainAfter; a younger one is not", async () => {
    const h = createHarness({ env: { KUMO_EXPLAIN_AFTER_SECONDS: "300" } });
    const [old, young] = [newJobId(), newJobId()];
    for (const [jobId, createdAt] of [[old, minutesAgo(6)], [young, minutesAgo(4)]] as const) {
      await h.deps.store.claim(newJob(jobId, { createdAt, headSha: "c".repeat(40), name: `job ${jobId}` }), minutesAgo(3));
      await h.deps.store.markNotLaunched(jobId, 1, { state: "pending", reason: "HTTP 502" }, minutesAgo(3));
    }
    const gh = track(
      mockGitHub()
        .canGetToken()
        .hasJob(FULL_REPO, old, "queued")
        .hasJob(FULL_REPO, young, "queued")
        .hasRunners([])
        .generatesJitConfig(2)
        .deletesRunner(1000)
        .deletesRunner(1001)
        .createsCheckRun(FULL_REPO),
    );
    track(mockCloudRun().failsRunJob(503, "UNAVAILABLE", "down").failsRunJob(503, "UNAVAILABLE", "down"));

    const [summary] = await reconcileWith(h, {}, [unfinishedLaunches]);

    expect(summary!.counts).toMatchObject({ errors: 2, launched: 0 });
    expect(gh.checkRuns).toHaveLength(1);
    expect(gh.checkRuns[0]!.body).toMatchObject({ external_id: String(old), conclusion: "neutral" });
  });
});
