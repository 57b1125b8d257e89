import { describe, expect, test } from "@jest/globals";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { ORG, REPO, SETTINGS_YAML, workflowJobPayload } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { createHarness, trackMocks, useNock } from "../helpers/harness.js";
import type { Launcher } from "../../app/launcher/launcher.js";

useNock();

let nextJobId = 1_700_000;
const newJobId = () => nextJobId++;
const groups = [{ id: 7, name: "cloudrun" }];
const SMALL = ["kumo", "small"];
const CAPPED_1 = `runners:\n  - labels: [kumo, small]\n    group: cloudrun\n    job: gha-runner-small\n    maxRunners: 1\n`;

describe("workflow_job in_progress and completed", () => {
  const track = trackMocks();

  test("in_progress keeps a capped job's slot: the waiting job still waits, nothing is launched or retired", async () => {
    const h = createHarness();
    // One JIT config and one execution: a second launch would find no interceptor and fail the delivery.
    const gh = track(mockGitHub().canGetToken().hasSettings(CAPPED_1).hasRunnerGroups(REPO, groups).generatesJitConfig(1));
    track(mockCloudRun().runsJob(1));
    const [first, second] = [newJobId(), newJobId()];
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: first, labels: SMALL }));
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: second, labels: SMALL }));
    expect(await h.deps.store.get(second)).toMatchObject({ state: "waiting" });

    const started = workflowJobPayload("in_progress", { id: first, labels: SMALL });
    // Even an in_progress that names no runner: only completed may retire the runner or free the capacity.
    Object.assign(started.workflow_job, { runner_id: null, runner_name: null });
    await h.deliver("workflow_job", started);

    expect(await h.deps.store.get(first)).toMatchObject({ state: "running" });
    expect(await h.deps.store.get(second)).toMatchObject({ state: "waiting", attempts: 1 });
    expect((await h.deps.store.listSlots()).map((s) => s.jobId)).toEqual([first]);
    expect(gh.jitRequests).toHaveLength(1);
    expect(gh.deletedRunners).toEqual([]);
    expect(h.logs.find(/job timings/)).toBeUndefined();
  });

  test("completed: one line with the job's timings and spec, for log-based metrics", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    track(mockCloudRun().runsJob());
    const jobId = newJobId();
    const queued = workflowJobPayload("queued", { id: jobId, labels: SMALL });
    await h.deliver("workflow_job", queued);
    const completed = workflowJobPayload("completed", { id: jobId, labels: SMALL });
    const launchedAt = (await h.deps.store.get(jobId))!.launchedAt!.getTime();
    const createdAt = new Date(queued.workflow_job.created_at).getTime();
    const startedAt = launchedAt + 4_000;
    const completedAt = startedAt + 60_000;
    Object.assign(completed.workflow_job, { started_at: new Date(startedAt).toISOString(), completed_at: new Date(completedAt).toISOString(), conclusion: "success" });

    await h.deliver("workflow_job", completed);

    expect(h.logs.find(/job timings/)).toMatchObject({
      jobId,
      queueMs: launchedAt - createdAt,
      startMs: 4_000,
      runMs: 60_000,
      totalMs: completedAt - createdAt,
      spec: `${ORG} [kumo, small] → gha-runner-small`,
      conclusion: "success",
      attempts: 1,
    });
    expect(h.logs.find(/job completed/)).toMatchObject({ jobId, state: "completed", conclusion: "success" });
  });

  test("timings of a job whose queued never arrived: only what is known, never negative", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML));
    const jobId = newJobId();
    const completed = workflowJobPayload("completed", { id: jobId, labels: SMALL });
    // Clocks disagree: GitHub says it completed before it started.
    Object.assign(completed.workflow_job, { started_at: "2026-11-25T12:00:10Z", completed_at: "2026-11-25T12:00:00Z" });

    await h.deliver("workflow_job", completed);

    const timings = h.logs.find(/job timings/)!;
    expect(timings).toMatchObject({ jobId, runMs: 0, attempts: 0 });
    expect(timings.queueMs).toBeUndefined();
    expect(timings.startMs).toBeUndefined();
    expect(timings.spec).toBeUndefined();
    expect(timings.totalMs).toBe(0); // received now, completed (says GitHub) days ago
  });

  test("completed after a runner took the job: the runner is left to GitHub (it ends by itself), nothing deleted", async () => {
    const h = createHarness();
    const gh = track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    const cr = track(mockCloudRun().runsJob());
    const jobId = newJobId();
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: SMALL }));
    await h.deliver("workflow_job", workflowJobPayload("completed", { id: jobId, labels: SMALL }));
    expect(gh.deletedRunners).toEqual([]);
    expect(cr.cancelled).toEqual([]);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "completed" });
  });
});

/** A launcher that starts a machine named after the runner, and records which machines were finished. */
function fakeLauncher(finishFails = false, outlives = true) {
  const finished: string[] = [];
  const launcher: Launcher = {
    outlivesRunner: () => outlives,
    launch: async (_target, _jit, runner) => ({ execution: `machines/${runner.name}` }),
    cancel: async () => undefined,
    describe: async () => undefined,
    finished: async (execution) => {
      if (finishFails) throw new Error("compute API: 503");
      finished.push(execution);
    },
    failureVisibleAfterMs: () => undefined,
    machines: async () => [],
  };
  return { launcher, finished };
}

describe("completed: the machine of the runner that ran the job is released", () => {
  const track = trackMocks();

  async function launched(h: ReturnType<typeof createHarness>, jobIds: number[]) {
    for (const id of jobIds) await h.deliver("workflow_job", workflowJobPayload("queued", { id, labels: SMALL }));
    return Promise.all(jobIds.map(async (id) => (await h.deps.store.get(id))!));
  }
  const completedBy = (jobId: number, runnerName: string) => {
    const payload = workflowJobPayload("completed", { id: jobId, labels: SMALL });
    Object.assign(payload.workflow_job, { runner_name: runnerName, runner_id: 1 });
    return payload;
  };

  test("its own runner: its machine", async () => {
    const { launcher, finished } = fakeLauncher();
    const h = createHarness({ deps: { launcher } });
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    const [record] = await launched(h, [newJobId()]);

    await h.deliver("workflow_job", completedBy(record!.jobId, record!.runnerName!));

    expect(finished).toEqual([`machines/${record!.runnerName}`]);
  });

  test("a twin's runner (launched for another job with the same labels): that job's machine", async () => {
    const { launcher, finished } = fakeLauncher();
    const h = createHarness({ deps: { launcher } });
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig(2));
    const [mine, twin] = await launched(h, [newJobId(), newJobId()]);

    await h.deliver("workflow_job", completedBy(mine!.jobId, twin!.runnerName!));

    expect(finished).toEqual([twin!.execution]);
  });

  test.each([
    ["a runner that is not Kumo's", () => "build-box-1"],
    ["a Kumo-named runner of a job Kumo has no record of", () => `kumo-${nextJobId + 1000}-1-abcdef`],
    ["an earlier attempt's runner of the job", (jobId: number) => `kumo-${jobId}-9-abcdef`],
  ])("%s: nothing released", async (_name, runner) => {
    const { launcher, finished } = fakeLauncher();
    const h = createHarness({ deps: { launcher } });
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    const [record] = await launched(h, [newJobId()]);

    await h.deliver("workflow_job", completedBy(record!.jobId, runner(record!.jobId)));

    expect(finished).toEqual([]);
    expect(await h.deps.store.get(record!.jobId)).toMatchObject({ state: "completed" });
  });

  test("a spec whose machines end with their runner (Cloud Run): nothing to release", async () => {
    const { launcher, finished } = fakeLauncher(false, false);
    const h = createHarness({ deps: { launcher } });
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    const [record] = await launched(h, [newJobId()]);

    await h.deliver("workflow_job", completedBy(record!.jobId, record!.runnerName!));

    expect(finished).toEqual([]);
  });

  test("in_progress releases nothing", async () => {
    const { launcher, finished } = fakeLauncher();
    const h = createHarness({ deps: { launcher } });
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    const [record] = await launched(h, [newJobId()]);
    const started = workflowJobPayload("in_progress", { id: record!.jobId, labels: SMALL });
    Object.assign(started.workflow_job, { runner_name: record!.runnerName });

    await h.deliver("workflow_job", started);

    expect(finished).toEqual([]);
  });

  test("a machine that cannot be released is left to reconcile: logged, the delivery succeeds", async () => {
    const { launcher } = fakeLauncher(true);
    const h = createHarness({ deps: { launcher } });
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    const [record] = await launched(h, [newJobId()]);

    await h.deliver("workflow_job", completedBy(record!.jobId, record!.runnerName!));

    expect(h.logs.find(/runner machine not removed; reconcile removes it/)).toMatchObject({ level: 40, runnerName: record!.runnerName, err: "compute API: 503" });
    expect(await h.deps.store.get(record!.jobId)).toMatchObject({ state: "completed" });
  });
});
