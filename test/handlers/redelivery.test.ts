import { describe, expect, test } from "@jest/globals";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { REPO, SETTINGS_YAML, deliveryId, workflowJobPayload } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { createHarness, trackMocks, emulatorStore, useNock } from "../helpers/harness.js";

useNock();

let nextJobId = 800_000;
const newJobId = () => nextJobId++;
const groups = [{ id: 7, name: "cloudrun" }];

describe("duplicate, concurrent and out-of-order deliveries", () => {
  const track = trackMocks();

  test("the same delivery 5 times in sequence starts one runner", async () => {
    const h = createHarness();
    const gh = track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig(1));
    const cr = track(mockCloudRun().runsJob(1));
    const jobId = newJobId();
    const payload = workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] });
    const id = deliveryId();

    for (let i = 0; i < 5; i++) await h.deliver("workflow_job", payload, id);

    expect(gh.jitRequests).toHaveLength(1);
    expect(cr.runJobCalls).toHaveLength(1);
    expect(h.logs.entries.filter((e) => /already handled/.test(e.msg))).toHaveLength(4);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "launched", attempts: 1 });
  });

  test("10 deliveries of one job at once start one runner", async () => {
    const h = createHarness();
    const gh = track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig(1));
    const cr = track(mockCloudRun().runsJob(1));
    const jobId = newJobId();
    const payload = workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] });

    await Promise.all(Array.from({ length: 10 }, () => h.deliver("workflow_job", payload)));

    expect(gh.jitRequests).toHaveLength(1);
    expect(cr.runJobCalls).toHaveLength(1);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "launched", attempts: 1 });
  });

  test("two app instances sharing one store, 10 deliveries each at once: one runner", async () => {
    const store = emulatorStore();
    const a = createHarness({ store });
    const b = createHarness({ store });
    // Each instance has its own caches, so each reads settings and groups once.
    const gh = track(
      mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).hasRunnerGroups(REPO, groups).generatesJitConfig(1),
    );
    const cr = track(mockCloudRun().runsJob(1));
    const jobId = newJobId();
    const payload = workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] });

    await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).deliver("workflow_job", payload)));

    expect(gh.jitRequests).toHaveLength(1);
    expect(cr.runJobCalls).toHaveLength(1);
  });

  test("10 distinct jobs at once each get their own runner, in parallel", async () => {
    const h = createHarness();
    const gh = track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig(10));
    const cr = track(mockCloudRun().runsJob(10));
    const ids = Array.from({ length: 10 }, newJobId);
    const started = Date.now();

    await Promise.all(ids.map((id) => h.deliver("workflow_job", workflowJobPayload("queued", { id, labels: ["kumo", "small"] }))));

    // plugin-throttling would space writes 1 s apart: 10 jobs would take 10 s.
    expect(Date.now() - started).toBeLessThan(5000);
    expect(new Set(gh.jitRequests.map((r) => r.name.split("-")[1]))).toEqual(new Set(ids.map(String)));
    expect(cr.runJobCalls).toHaveLength(10);
  });

  test.each(["completed", "in_progress"] as const)("%s before queued: the late queued starts nothing", async (action) => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups));
    const jobId = newJobId();

    await h.deliver("workflow_job", workflowJobPayload(action, { id: jobId, labels: ["kumo", "small"] }));
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }));

    const record = await h.deps.store.get(jobId);
    expect(record).toMatchObject({ state: action === "completed" ? "completed" : "running", attempts: 0 });
    expect(h.logs.find(/already handled/)).toMatchObject({ jobId, state: record!.state });
  });

  test("a late queued for a job already running starts nothing, and completion never moves back", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig(1));
    track(mockCloudRun().runsJob(1));
    const jobId = newJobId();
    const queued = workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] });

    await h.deliver("workflow_job", queued);
    const completed = workflowJobPayload("completed", { id: jobId, labels: ["kumo", "small"] });
    await h.deliver("workflow_job", completed);
    await h.deliver("workflow_job", workflowJobPayload("in_progress", { id: jobId, labels: ["kumo", "small"] }));
    await h.deliver("workflow_job", queued);

    const record = await h.deps.store.get(jobId);
    expect(record).toMatchObject({ state: "completed", attempts: 1, conclusion: completed.workflow_job.conclusion });
    expect(record!.expireAt.getTime()).toBeGreaterThan(Date.now() + 6 * 86_400_000);
  });

  test("progress of jobs Kumo does not serve writes nothing", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML));
    const jobId = newJobId();
    await h.deliver("workflow_job", workflowJobPayload("completed", { id: jobId }));
    expect(await h.deps.store.get(jobId)).toBeUndefined();
  });

  test("a claim whose launch never finished (crash) is taken over by a redelivery after its lease", async () => {
    const store = emulatorStore(1_000);
    const h = createHarness({ store });
    const gh = track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig(1));
    track(mockCloudRun().runsJob(1));
    const jobId = newJobId();
    const payload = workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] });
    // The crashed instance claimed the job 2 s ago and died before generate-jitconfig.
    const crashed = await store.claim(
      { jobId, runId: 1, runAttempt: 1, installationId: 4242, org: "octo-org", repo: `octo-org/${REPO}`, labels: ["kumo", "small"], target: { labels: ["kumo", "small"], group: "cloudrun", groupId: 7, job: "projects/kumo-test/locations/us-central1/jobs/gha-runner-small" } },
      new Date(Date.now() - 2_000),
    );
    expect(crashed.claimed).toBe(true);

    await h.deliver("workflow_job", payload);

    expect(gh.jitRequests[0]!.name).toMatch(new RegExp(`^kumo-${jobId}-2-`));
    expect(await store.get(jobId)).toMatchObject({ state: "launched", attempts: 2 });
  });
});
