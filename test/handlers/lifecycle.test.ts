import { describe, expect, test } from "@jest/globals";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { ORG, REPO, SETTINGS_YAML, workflowJobPayload } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { createHarness, trackMocks, useNock } from "../helpers/harness.js";

useNock();

let nextJobId = 1_200_000;
const newJobId = () => nextJobId++;
const groups = [{ id: 7, name: "cloudrun" }];

/** GitHub's completed for a job no runner ever took (cancelled while queued). */
function cancelledWhileQueued(jobId: number) {
  const payload = workflowJobPayload("completed", { id: jobId, labels: ["kumo", "small"] });
  Object.assign(payload.workflow_job, { conclusion: "cancelled", runner_id: null, runner_name: null, runner_group_id: null, runner_group_name: null });
  return payload;
}

describe("job lifecycle", () => {
  const track = trackMocks();

  test("in_progress and completed keep the runner that took the job and the timestamps", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    track(mockCloudRun().runsJob());
    const jobId = newJobId();
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }));
    const started = workflowJobPayload("in_progress", { id: jobId, labels: ["kumo", "small"] });
    await h.deliver("workflow_job", started);
    expect(await h.deps.store.get(jobId)).toMatchObject({
      state: "running",
      assignedRunnerName: started.workflow_job.runner_name,
      startedAt: new Date(started.workflow_job.started_at),
    });
    const completed = workflowJobPayload("completed", { id: jobId, labels: ["kumo", "small"] });
    await h.deliver("workflow_job", completed);
    const record = await h.deps.store.get(jobId);
    expect(record).toMatchObject({ state: "completed", conclusion: completed.workflow_job.conclusion, completedAt: new Date(completed.workflow_job.completed_at) });
    expect(record!.launchedAt).toBeInstanceOf(Date);
    expect(record!.receivedAt).toBeInstanceOf(Date);
  });

  test("cancelled before any runner took it: the surplus runner is deleted and its execution cancelled", async () => {
    const h = createHarness();
    const gh = track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig().deletesRunner(1000));
    const cr = track(mockCloudRun().runsJob().cancelsExecution());
    const jobId = newJobId();
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }));

    await h.deliver("workflow_job", cancelledWhileQueued(jobId));

    const record = await h.deps.store.get(jobId);
    expect(gh.deletedRunners).toEqual([1000]);
    expect(cr.cancelled).toEqual([record!.execution]);
    expect(record).toMatchObject({ state: "completed", conclusion: "cancelled" });
  });

  test("cancelled before pickup, but our runner already took another job: left alone", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig().failsToDeleteBusyRunner(1000));
    const cr = track(mockCloudRun().runsJob());
    const jobId = newJobId();
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }));

    await h.deliver("workflow_job", cancelledWhileQueued(jobId));

    expect(cr.cancelled).toEqual([]);
    expect(h.logs.find(/busy with another job/)).toMatchObject({ jobId, runnerName: expect.stringMatching(new RegExp(`^kumo-${jobId}-1-`)), why: "job cancelled before any runner took it" });
  });

  test("maxRunners reached: the job waits; the first job's completed webhook launches it", async () => {
    const h = createHarness();
    const settings = `runners:\n  - labels: [kumo, small]\n    group: cloudrun\n    job: gha-runner-small\n    maxRunners: 1\n`;
    const gh = track(mockGitHub().canGetToken().hasSettings(settings).hasRunnerGroups(REPO, groups).generatesJitConfig(2));
    const cr = track(mockCloudRun().runsJob(2));
    const first = newJobId();
    const second = newJobId();

    await h.deliver("workflow_job", workflowJobPayload("queued", { id: first, labels: ["kumo", "small"] }));
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: second, labels: ["kumo", "small"] }));
    expect(gh.jitRequests).toHaveLength(1);
    expect(await h.deps.store.get(second)).toMatchObject({ state: "waiting", waits: 1, lastError: expect.stringMatching(/maxRunners 1/) });
    // Not leased: nothing stops the first freed runner from taking it.
    expect((await h.deps.store.get(second))!.leaseUntil).toBeUndefined();

    await h.deliver("workflow_job", workflowJobPayload("completed", { id: first, labels: ["kumo", "small"] }));
    expect(gh.jitRequests).toHaveLength(2);
    expect(gh.jitRequests[1]!.name).toMatch(new RegExp(`^kumo-${second}-2-`));
    expect(cr.runJobCalls).toHaveLength(2);
    expect(await h.deps.store.get(second)).toMatchObject({ state: "launched", attempts: 2, waits: 1 });
    expect((await h.deps.store.listSlots()).map((s) => s.jobId)).toEqual([second]);
  });
});
