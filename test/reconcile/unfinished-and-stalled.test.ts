import { afterEach, describe, expect, jest, test } from "@jest/globals";
import { capacity } from "../../app/reconcile/capacity.js";
import { outOfTime, type ReconcileContext } from "../../app/reconcile/context.js";
import { stalledLaunches } from "../../app/reconcile/stalled-launches.js";
import { unfinishedLaunches } from "../../app/reconcile/unfinished-launches.js";
import { capacityOf, type RunnerTarget } from "../../app/store/job-store.js";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { INSTALLATION_ID, ORG, REPO, recordedJob, SMALL_TARGET } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { createHarness, reconcileWith, trackMocks, useNock } from "../helpers/harness.js";

useNock();

const FULL_REPO = `${ORG}/${REPO}`;
const SMALL_JOB = "projects/kumo-test/locations/us-central1/jobs/gha-runner-small";
const TARGET = SMALL_TARGET;
const CAPPED: RunnerTarget = { ...TARGET, labels: ["kumo", "capped"], maxRunners: 1 };
const GRACE = 5 * 60_000;
let nextJobId = 2_500_000;
const newJobId = () => nextJobId++;
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);
const newJob = recordedJob;

describe("outOfTime (injected clock)", () => {
  afterEach(() => {
    jest.useRealTimers();
  });

  test("a pass is out of time only past its budget", () => {
    jest.useFakeTimers({ now: 1_000_000 });
    const ctx = (startedAt: number) => ({ now: new Date(startedAt), options: { budgetMs: 60_000 } }) as unknown as ReconcileContext;
    expect(outOfTime(ctx(1_000_000 - 60_000))).toBe(false);
    expect(outOfTime(ctx(1_000_000 - 60_001))).toBe(true);
    expect(outOfTime(ctx(1_000_000))).toBe(false);
  });
});

describe("reconcile: unfinished launches", () => {
  const track = trackMocks();

  test("a capacity found full in this pass: its other waiting jobs are not claimed in vain; runners are listed once per org", async () => {
    const h = createHarness();
    const { key, name } = capacityOf(ORG, CAPPED)!;
    await h.deps.store.takeSlot(key, 1, { jobId: 1, org: ORG, name });
    const [first, second] = [newJobId(), newJobId()];
    for (const [jobId, at] of [[first, 6], [second, 5]] as const) {
      await h.deps.store.claim(newJob(jobId, { target: CAPPED, labels: CAPPED.labels }), minutesAgo(at));
      await h.deps.store.markNotLaunched(jobId, 1, { state: "waiting", reason: "full" }, minutesAgo(at));
    }
    // One runner list for the org, although both jobs are looked at.
    track(mockGitHub().canGetToken().hasJob(FULL_REPO, first, "queued").hasJob(FULL_REPO, second, "queued").hasRunners([]));

    const [summary] = await reconcileWith(h, {}, [unfinishedLaunches]);

    expect(summary!.counts).toMatchObject({ checked: 2, waiting: 2, launched: 0, errors: 0 });
    expect(await h.deps.store.get(first)).toMatchObject({ state: "waiting", attempts: 2, waits: 2 });
    // Not claimed: its attempts are as they were.
    expect(await h.deps.store.get(second)).toMatchObject({ state: "waiting", attempts: 1, waits: 1 });
  });

  test("why a job is relaunched: its last error, or the state it was left in", async () => {
    const h = createHarness();
    const [failed, crashed] = [newJobId(), newJobId()];
    await h.deps.store.claim(newJob(failed), minutesAgo(5));
    await h.deps.store.markNotLaunched(failed, 1, { state: "pending", reason: "HTTP 502: Bad Gateway" }, minutesAgo(5));
    await h.deps.store.claim(newJob(crashed), minutesAgo(5)); // its lease (60 s) has expired
    track(mockGitHub().canGetToken().hasJob(FULL_REPO, failed, "queued").hasJob(FULL_REPO, crashed, "queued").hasRunners([]));

    const [summary] = await reconcileWith(h, { maxAttempts: 1 }, [unfinishedLaunches]);

    expect(summary!.counts).toMatchObject({ failed: 2 });
    expect(await h.deps.store.get(failed)).toMatchObject({ state: "failed", lastError: "gave up after 1 launch attempts: HTTP 502: Bad Gateway" });
    expect(await h.deps.store.get(crashed)).toMatchObject({ state: "failed", lastError: "gave up after 1 launch attempts: left claimed" });
  });

  test("records that are not launchable now, or have no target, are not looked at", async () => {
    const h = createHarness();
    const [leased, progressOnly] = [newJobId(), newJobId()];
    await h.deps.store.claim(newJob(leased)); // a launch under way
    await h.deps.store.recordProgress({ jobId: progressOnly, status: "in_progress", installationId: INSTALLATION_ID, org: ORG, repo: FULL_REPO, runId: 1, runAttempt: 1, labels: TARGET.labels });
    // No interceptor: any GitHub call would be an error.
    const [summary] = await reconcileWith(h, {}, [unfinishedLaunches]);
    expect(summary!.counts).toEqual({ checked: 0, launched: 0, closed: 0, waiting: 0, failed: 0, skipped: 0, errors: 0 });
  });

  test("a pass out of time looks at nothing", async () => {
    const h = createHarness();
    const jobId = newJobId();
    await h.deps.store.claim(newJob(jobId), minutesAgo(5));
    const [summary] = await reconcileWith(h, { budgetMs: -1 }, [unfinishedLaunches]);
    expect(summary!.counts).toMatchObject({ checked: 0 });
  });
});

describe("reconcile: a new attempt's explanations", () => {
  const track = trackMocks();

  test("a job explained before (it waited for capacity) is told when reconcile gives up: the check run is updated", async () => {
    const h = createHarness();
    const jobId = newJobId();
    await h.deps.store.claim(newJob(jobId, { headSha: "d".repeat(40), name: "build" }), minutesAgo(10));
    await h.deps.store.markNotLaunched(jobId, 1, { state: "pending", reason: "HTTP 502" }, minutesAgo(10));
    await h.deps.store.explanation(jobId, { jobId, repo: FULL_REPO, headSha: "d".repeat(40), reason: "capacity" });
    await h.deps.store.setExplanation(jobId, { checkRunId: 555 });
    const gh = track(mockGitHub().canGetToken().hasJob(FULL_REPO, jobId, "queued").hasRunners([]).updatesCheckRun(FULL_REPO, 555));

    await reconcileWith(h, { maxAttempts: 1 }, [unfinishedLaunches]);

    expect(gh.checkRuns).toEqual([expect.objectContaining({ method: "PATCH" })]);
    expect(gh.checkRuns[0]!.body.output.title).toBe("Kumo gave up starting a runner for this job");
  });

  test("a job that waits for capacity is not told its launch failed, however long it waited", async () => {
    const h = createHarness({ env: { KUMO_EXPLAIN_AFTER_SECONDS: "0" } });
    const { key, name } = capacityOf(ORG, CAPPED)!;
    await h.deps.store.takeSlot(key, 1, { jobId: 1, org: ORG, name });
    const jobId = newJobId();
    await h.deps.store.claim(newJob(jobId, { target: CAPPED, labels: CAPPED.labels, headSha: "e".repeat(40), createdAt: minutesAgo(60) }), minutesAgo(5));
    await h.deps.store.markNotLaunched(jobId, 1, { state: "pending", reason: "HTTP 502" }, minutesAgo(5));
    // No check-run interceptor: a launch-failed explanation would be tried (and logged as failing).
    track(mockGitHub().canGetToken().hasJob(FULL_REPO, jobId, "queued").hasRunners([]));

    const [summary] = await reconcileWith(h, {}, [unfinishedLaunches]);

    expect(summary!.counts).toMatchObject({ waiting: 1 });
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "waiting" });
    expect(h.logs.find(/could not explain/)).toBeUndefined();
    expect(await h.deps.store.explanation(jobId)).toEqual({ created: false });
  });

  test("the capacity step tells a job waiting for exactly explainAfter how many minutes it has waited", async () => {
    const h = createHarness({ env: { KUMO_EXPLAIN_AFTER_SECONDS: "600" } });
    const { key, name } = capacityOf(ORG, CAPPED)!;
    const holder = newJobId();
    await h.deps.store.claim(newJob(holder, { target: CAPPED, labels: CAPPED.labels }));
    await h.deps.store.takeSlot(key, 1, { jobId: holder, org: ORG, name });
    await h.deps.store.markLaunched(holder, 1, { runnerId: 1, runnerName: `kumo-${holder}-1-aaaaaa`, execution: "e" });
    const now = new Date();
    const [due, early] = [newJobId(), newJobId()];
    for (const [jobId, waitedMs] of [[due, 10 * 60_000], [early, 10 * 60_000 - 1]] as const) {
      await h.deps.store.claim(newJob(jobId, { target: CAPPED, labels: CAPPED.labels, headSha: "f".repeat(40), createdAt: new Date(now.getTime() - waitedMs) }), minutesAgo(1));
      await h.deps.store.markNotLaunched(jobId, 1, { state: "waiting", reason: "full" }, minutesAgo(1));
    }
    const gh = track(mockGitHub().canGetToken().createsCheckRun(FULL_REPO));

    const [summary] = await reconcileWith(h, {}, [capacity], now);

    expect(summary!.counts).toMatchObject({ explained: 1, waiting: 2, live: 1 });
    expect(gh.checkRuns).toHaveLength(1);
    expect(gh.checkRuns[0]!.body).toMatchObject({ external_id: String(due) });
    expect(gh.checkRuns[0]!.body.output.summary).toMatch(/this job has waited 10 min/);
  });
});

describe("reconcile: launches that never came up", () => {
  const track = trackMocks();

  async function launched(h: ReturnType<typeof createHarness>, jobId: number, at: Date) {
    await h.deps.store.claim(newJob(jobId), at);
    await h.deps.store.markLaunched(jobId, 1, { runnerId: 40, runnerName: `kumo-${jobId}-1-aaaaaa`, execution: `${SMALL_JOB}/executions/e-${jobId}` }, at);
  }

  test("looked at once the launch grace has passed, not a millisecond before", async () => {
    const h = createHarness();
    const now = Date.now();
    const [due, young] = [newJobId(), newJobId()];
    await launched(h, due, new Date(now - GRACE));
    await launched(h, young, new Date(now - GRACE + 1));
    track(mockGitHub().canGetToken().hasJob(FULL_REPO, due, "in_progress"));

    const [summary] = await reconcileWith(h, { launchGraceMs: GRACE }, [stalledLaunches], new Date(now));

    expect(summary!.counts).toMatchObject({ checked: 1, closed: 1 });
    expect(await h.deps.store.get(due)).toMatchObject({ state: "running" });
    expect(await h.deps.store.get(young)).toMatchObject({ state: "launched" });
  });

  test("a job GitHub reports waiting for an approval is skipped; an error is counted and logged", async () => {
    const h = createHarness();
    const [approval, broken] = [newJobId(), newJobId()];
    await launched(h, approval, minutesAgo(10));
    await launched(h, broken, minutesAgo(10));
    track(mockGitHub().canGetToken().hasJob(FULL_REPO, approval, "waiting"));
    track(mockGitHub().scope.get(`/repos/${FULL_REPO}/actions/jobs/${broken}`).reply(500, { message: "Server Error" }));

    const [summary] = await reconcileWith(h, {}, [stalledLaunches]);

    expect(summary!.counts).toMatchObject({ checked: 2, skipped: 1, errors: 1, closed: 0 });
    expect(h.logs.find(/stalled launch not repaired/)).toMatchObject({ level: 50, jobId: broken, err: expect.stringMatching(/HTTP 500/) });
    expect(await h.deps.store.get(approval)).toMatchObject({ state: "launched" });
  });

  test("an execution that ended by itself: the new attempt says so", async () => {
    const h = createHarness();
    const jobId = newJobId();
    await launched(h, jobId, minutesAgo(10));
    track(mockGitHub().canGetToken().hasJob(FULL_REPO, jobId, "queued").deletesRunner(40, 404));
    track(mockCloudRun().hasExecution(`${SMALL_JOB}/executions/e-${jobId}`, { succeededCount: 1, completionTime: new Date().toISOString() }));

    const [summary] = await reconcileWith(h, { maxAttempts: 1 }, [stalledLaunches]);

    expect(summary!.counts).toMatchObject({ failed: 1 });
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "failed", lastError: "gave up after 1 launch attempts: execution ended without taking the job" });
  });

  test("a pass out of time looks at nothing", async () => {
    const h = createHarness();
    await launched(h, newJobId(), minutesAgo(10));
    const [summary] = await reconcileWith(h, { budgetMs: -1 }, [stalledLaunches]);
    expect(summary!.counts).toMatchObject({ checked: 0 });
  });
});
