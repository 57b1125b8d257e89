import { describe, expect, test } from "@jest/globals";
import { formatSummary } from "../../app/reconcile/reconcile.js";
import { lostWebhooks } from "../../app/reconcile/lost-webhooks.js";
import { staleRunners } from "../../app/reconcile/stale-runners.js";
import { stalledLaunches } from "../../app/reconcile/stalled-launches.js";
import { unfinishedLaunches } from "../../app/reconcile/unfinished-launches.js";
import type { JobStore, NewJob } from "../../app/store/job-store.js";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { INSTALLATION_ID, ORG, REPO, SETTINGS_YAML, workflowJobPayload } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { createHarness, trackMocks, emulatorStore, reconcileWith, useNock } from "../helpers/harness.js";

useNock();

const SMALL_JOB = "projects/kumo-test/locations/us-central1/jobs/gha-runner-small";
const FULL_REPO = `${ORG}/${REPO}`;
let nextJobId = 1_100_000;
const newJobId = () => nextJobId++;
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);

function newJob(jobId: number, extra: Partial<NewJob["target"]> = {}): NewJob {
  return {
    jobId,
    runId: 1,
    runAttempt: 1,
    installationId: INSTALLATION_ID,
    org: ORG,
    repo: FULL_REPO,
    labels: ["kumo", "small"],
    target: { labels: ["kumo", "small"], group: "cloudrun", groupId: 7, job: SMALL_JOB, ...extra },
  };
}

/** A job launched `minutes` ago whose runner is `runnerName`. */
async function seedLaunched(store: JobStore, jobId: number, minutes: number, runner: { runnerId: number; runnerName: string; execution: string }) {
  await store.claim(newJob(jobId), minutesAgo(minutes));
  await store.markLaunched(jobId, 1, runner, minutesAgo(minutes));
}

describe("reconcile", () => {
  const track = trackMocks();

  test("runJob failed and the registration was left behind: the pass deletes it and leaves exactly one live runner", async () => {
    const h = createHarness();
    const jobId = newJobId();
    // The webhook: JIT ok, runJob 503, and deleting the registration fails too.
    const gh = track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, [{ id: 7, name: "cloudrun" }]).generatesJitConfig(2).deletesRunner(1000, 500));
    const cr = track(mockCloudRun().failsRunJob(503, "UNAVAILABLE").runsJob(1));
    await expect(h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }))).rejects.toThrow();
    const leftBehind = gh.jitRequests[0]!.name;
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "pending" });

    track(mockGitHub().hasJob(FULL_REPO, jobId, "queued").hasRunners([{ id: 1000, name: leftBehind }]).deletesRunner(1000));
    const [summary] = await reconcileWith(h, {}, [unfinishedLaunches]);

    expect(summary!.counts).toMatchObject({ checked: 1, launched: 1, errors: 0 });
    expect(gh.jitRequests.map((r) => r.name)).toEqual([leftBehind, expect.stringMatching(new RegExp(`^kumo-${jobId}-2-`))]);
    expect(cr.runJobCalls).toHaveLength(1);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "launched", attempts: 2, runnerName: gh.jitRequests[1]!.name });
  });

  test("a crash after claiming: the expired claim is relaunched; a job no longer queued is closed", async () => {
    const store = emulatorStore(60_000);
    const h = createHarness({ store });
    const crashed = newJobId();
    const done = newJobId();
    const leased = newJobId();
    await store.claim(newJob(crashed), minutesAgo(5));
    await store.claim(newJob(done), minutesAgo(5));
    await store.claim(newJob(leased)); // a launch under way right now: not touched
    const gh = track(
      mockGitHub()
        .canGetToken()
        .hasJob(FULL_REPO, crashed, "queued")
        .hasJob(FULL_REPO, done, "completed", { conclusion: "success", runner_name: "kumo-x", completed_at: new Date().toISOString() })
        .hasRunners([])
        .generatesJitConfig(1),
    );
    track(mockCloudRun().runsJob(1));

    const [summary] = await reconcileWith(h, {}, [unfinishedLaunches]);

    expect(summary!.counts).toMatchObject({ checked: 2, launched: 1, closed: 1 });
    expect(gh.jitRequests).toHaveLength(1);
    expect(await store.get(crashed)).toMatchObject({ state: "launched", attempts: 2 });
    expect(await store.get(done)).toMatchObject({ state: "completed", conclusion: "success", assignedRunnerName: "kumo-x" });
    expect(await store.get(leased)).toMatchObject({ state: "claimed", attempts: 1 });
  });

  test("launches that never came up: a running execution is left alone; past the attempt bound the job is marked failed", async () => {
    const h = createHarness();
    const ended = newJobId();
    const running = newJobId();
    const exhausted = newJobId();
    await seedLaunched(h.deps.store, ended, 10, { runnerId: 51, runnerName: `kumo-${ended}-1-aaaaaa`, execution: `${SMALL_JOB}/executions/e-ended` });
    await seedLaunched(h.deps.store, running, 10, { runnerId: 52, runnerName: `kumo-${running}-1-bbbbbb`, execution: `${SMALL_JOB}/executions/e-running` });
    await seedLaunched(h.deps.store, exhausted, 10, { runnerId: 53, runnerName: `kumo-${exhausted}-1-cccccc`, execution: `${SMALL_JOB}/executions/e-gone` });
    const gh = track(
      mockGitHub()
        .canGetToken()
        .hasJob(FULL_REPO, ended, "queued")
        .hasJob(FULL_REPO, running, "queued")
        .hasJob(FULL_REPO, exhausted, "queued")
        .deletesRunner(51, 404)
        .deletesRunner(53, 404),
    );
    track(
      mockCloudRun()
        .hasExecution(`${SMALL_JOB}/executions/e-ended`, { failedCount: 1, completionTime: new Date().toISOString() })
        .hasExecution(`${SMALL_JOB}/executions/e-running`, { runningCount: 1 }),
    );
    // e-gone: Cloud Run no longer knows it.
    mockCloudRun().scope.get(`/v2/${SMALL_JOB}/executions/e-gone`).query(true).reply(404, { error: { code: 404, message: "not found", status: "NOT_FOUND" } });

    const [summary] = await reconcileWith(h, { maxAttempts: 1 }, [stalledLaunches]);

    expect(summary!.counts).toMatchObject({ checked: 3, relaunched: 0, running: 1, failed: 2 });
    expect(gh.jitRequests).toHaveLength(0);
    expect(await h.deps.store.get(ended)).toMatchObject({ state: "failed", lastError: expect.stringMatching(/gave up after 1 launch attempts: execution failed/) });
    expect(await h.deps.store.get(exhausted)).toMatchObject({ state: "failed", lastError: expect.stringMatching(/execution not found/) });
    expect(await h.deps.store.get(running)).toMatchObject({ state: "launched", attempts: 1 });
  });

  test("a launch that never came up gets a new runner while attempts remain", async () => {
    const h = createHarness();
    const jobId = newJobId();
    await seedLaunched(h.deps.store, jobId, 10, { runnerId: 61, runnerName: `kumo-${jobId}-1-dddddd`, execution: `${SMALL_JOB}/executions/e-1` });
    const gh = track(mockGitHub().canGetToken().hasJob(FULL_REPO, jobId, "queued").deletesRunner(61, 404).generatesJitConfig(1));
    const cr = track(mockCloudRun().hasExecution(`${SMALL_JOB}/executions/e-1`, { succeededCount: 1, completionTime: new Date().toISOString() }).runsJob(1));

    const [summary] = await reconcileWith(h, {}, [stalledLaunches]);

    expect(summary!.counts).toMatchObject({ relaunched: 1 });
    expect(gh.jitRequests[0]!.name).toMatch(new RegExp(`^kumo-${jobId}-2-`));
    expect(cr.runJobCalls).toHaveLength(1);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "launched", attempts: 2 });
  });

  test("stale runners: idle surplus deleted with its execution cancelled; busy, needed and young ones left alone", async () => {
    const store = emulatorStore();
    const h = createHarness({ store });
    const completed = newJobId();
    const waiting = newJobId();
    const recent = newJobId();
    const busy = newJobId();
    const orphan = newJobId();
    await seedLaunched(store, completed, 30, { runnerId: 71, runnerName: `kumo-${completed}-1-aaaaaa`, execution: `${SMALL_JOB}/executions/e-71` });
    const base = { installationId: INSTALLATION_ID, org: ORG, repo: FULL_REPO, runId: 1, runAttempt: 1, labels: ["kumo", "small"] };
    await store.recordProgress({ ...base, jobId: completed, status: "completed", conclusion: "success", runnerName: "kumo-someone-else" }, minutesAgo(20));
    await seedLaunched(store, waiting, 1, { runnerId: 72, runnerName: `kumo-${waiting}-1-bbbbbb`, execution: `${SMALL_JOB}/executions/e-72` });
    await seedLaunched(store, recent, 1, { runnerId: 73, runnerName: `kumo-${recent}-2-cccccc`, execution: `${SMALL_JOB}/executions/e-73` });
    await store.recordProgress({ ...base, jobId: recent, status: "completed", conclusion: "success" });
    const gh = track(
      mockGitHub()
        .canGetToken()
        .hasInstallations([{ id: INSTALLATION_ID, login: ORG }, { id: 99, login: "someone", type: "User" }])
        .hasRunners([
          { id: 71, name: `kumo-${completed}-1-aaaaaa` },
          { id: 72, name: `kumo-${waiting}-1-bbbbbb` },
          { id: 73, name: `kumo-${recent}-2-cccccc` },
          { id: 74, name: `kumo-${busy}-1-dddddd`, busy: true, status: "online" },
          { id: 75, name: `kumo-${orphan}-1-eeeeee` },
          { id: 76, name: "build-box-1" },
        ])
        .hasSettings("runners:\n  - labels: [kumo, small]\n    job: gha-runner-small\n")
        .deletesRunner(71)
        .deletesRunner(75),
    );
    const cr = track(mockCloudRun().cancelsExecution(1));

    const [summary] = await reconcileWith(h, {}, [staleRunners]);

    expect(summary!.counts).toEqual({ runners: 5, needed: 1, busy: 1, pooled: 0, deleted: 2, young: 1, errors: 0 });
    expect(gh.deletedRunners.sort()).toEqual([71, 75]);
    expect(cr.cancelled).toEqual([`${SMALL_JOB}/executions/e-71`]);
  });

  test("stale runners: a launch under way (claimed, runner of this attempt) is needed even past the grace; a runner of an earlier attempt is not", async () => {
    const store = emulatorStore(10 * 60_000); // a slow launch: the claim is still leased
    const h = createHarness({ store });
    const underWay = newJobId();
    const retried = newJobId();
    await store.claim(newJob(underWay), minutesAgo(3));
    await store.claim(newJob(retried), minutesAgo(30));
    expect((await store.claim(newJob(retried), minutesAgo(3))).record).toMatchObject({ state: "claimed", attempts: 2 });
    const gh = track(
      mockGitHub()
        .canGetToken()
        .hasInstallations([{ id: INSTALLATION_ID, login: ORG }])
        .hasRunners([
          { id: 81, name: `kumo-${underWay}-1-aaaaaa` },
          { id: 82, name: `kumo-${retried}-1-bbbbbb` },
        ])
        .hasSettings(null)
        .deletesRunner(82),
    );

    const [summary] = await reconcileWith(h, {}, [staleRunners]);

    expect(summary!.counts).toEqual({ runners: 2, needed: 1, busy: 0, pooled: 0, deleted: 1, young: 0, errors: 0 });
    expect(gh.deletedRunners).toEqual([82]);
    expect(await store.get(underWay)).toMatchObject({ state: "claimed", attempts: 1 });
  });

  test.each(["waiting", "pending", "requested"])(
    "unfinished launches: a job GitHub reports as %s needs no runner yet: skipped, its record left as it was",
    async (status) => {
      const h = createHarness();
      const jobId = newJobId();
      await h.deps.store.claim(newJob(jobId), minutesAgo(3));
      await h.deps.store.markNotLaunched(jobId, 1, { state: "pending", reason: "HTTP 502" }, minutesAgo(3));
      // No JIT, runner list or Cloud Run interceptor: a launch attempt would be counted as an error.
      track(mockGitHub().canGetToken().hasJob(FULL_REPO, jobId, status));

      const [summary] = await reconcileWith(h, {}, [unfinishedLaunches]);

      expect(summary!.counts).toEqual({ checked: 1, launched: 0, closed: 0, waiting: 0, failed: 0, skipped: 1, errors: 0 });
      const record = await h.deps.store.get(jobId);
      expect(record).toMatchObject({ state: "pending", attempts: 1, lastError: "HTTP 502" });
      expect(record!.conclusion).toBeUndefined();
    },
  );

  test("lost webhooks are redelivered once per pass, a bounded number of times, and the watermark moves", async () => {
    const h = createHarness();
    const now = Date.now();
    const at = (s: number) => new Date(now - s * 1000).toISOString();
    const deliveries = [
      { id: 1, guid: "lost", status: "Invalid HTTP Response: 502", delivered_at: at(10) },
      { id: 2, guid: "recovered", status: "Invalid HTTP Response: 503", delivered_at: at(20) },
      { id: 3, guid: "recovered", status: "OK", delivered_at: at(15), redelivery: true },
      { id: 4, guid: "fine", status: "OK", delivered_at: at(30) },
      { id: 5, guid: "too-old", status: "Invalid HTTP Response: 502", delivered_at: at(7200) },
    ];
    track(mockGitHub().hasDeliveries(deliveries, 3).redelivers(1).redelivers(1));

    const first = await reconcileWith(h, { maxRedeliveries: 2 }, [lostWebhooks]);
    expect(first[0]!.counts).toEqual({ lost: 1, redelivered: 1, givenUp: 0, errors: 0 });
    expect(await h.deps.store.getMark("deliveries")).toBeInstanceOf(Date);
    const second = await reconcileWith(h, { maxRedeliveries: 2 }, [lostWebhooks]);
    expect(second[0]!.counts).toMatchObject({ redelivered: 1 });
    const third = await reconcileWith(h, { maxRedeliveries: 2 }, [lostWebhooks]);
    expect(third[0]!.counts).toEqual({ lost: 1, redelivered: 0, givenUp: 1, errors: 0 });
  });

  test("two passes at once against one store launch a pending job once", async () => {
    const store = emulatorStore();
    const a = createHarness({ store });
    const b = createHarness({ store });
    const jobId = newJobId();
    await store.claim(newJob(jobId), minutesAgo(3));
    await store.markNotLaunched(jobId, 1, { state: "pending", reason: "HTTP 502" }, minutesAgo(3));
    const gh = track(mockGitHub().canGetToken().hasJob(FULL_REPO, jobId, "queued", {}, 2).hasRunners([]).generatesJitConfig(1));
    const cr = track(mockCloudRun().runsJob(1));

    const summaries = await Promise.all([reconcileWith(a, {}, [unfinishedLaunches]), reconcileWith(b, {}, [unfinishedLaunches])]);

    expect(gh.jitRequests).toHaveLength(1);
    expect(cr.runJobCalls).toHaveLength(1);
    expect(summaries.map((s) => s[0]!.counts.launched).sort()).toEqual([0, 1]);
    expect(await store.get(jobId)).toMatchObject({ state: "launched", attempts: 2 });
  });

  test("a full pass prints one summary line per step", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasInstallations([{ id: INSTALLATION_ID, login: ORG }]).hasRunners([]).hasSettings(null).hasDeliveries([]));
    const lines = (await reconcileWith(h)).map(formatSummary);
    expect(lines).toEqual([
      "capacity: specs=0 live=0 waiting=0 released=0 asked=0 launched=0 explained=0 errors=0",
      "unfinished launches: checked=0 launched=0 closed=0 waiting=0 failed=0 skipped=0 errors=0",
      "launches that never came up: checked=0 relaunched=0 closed=0 running=0 failed=0 skipped=0 errors=0",
      "warm pools: pools=0 target=0 warm=0 booting=0 launched=0 retired=0 errors=0",
      "stale runners: runners=0 needed=0 busy=0 pooled=0 deleted=0 young=0 errors=0",
      "runner machines: machines=0 running=0 booting=0 deleted=0 unknown=0 errors=0",
      "lost webhooks: lost=0 redelivered=0 givenUp=0 errors=0",
    ]);
  });
});
