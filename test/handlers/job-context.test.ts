import { describe, expect, test } from "@jest/globals";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { INSTALLATION_ID, ORG, REPO, SETTINGS_YAML, workflowJobPayload } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { createHarness, trackMocks, useNock } from "../helpers/harness.js";

useNock();

let nextJobId = 2_000_000;
const newJobId = () => nextJobId++;
const SMALL = ["kumo", "small"];
const groups = [{ id: 7, name: "cloudrun" }];

describe("what a workflow_job delivery must carry", () => {
  const track = trackMocks();

  test.each(["queued", "in_progress", "completed"] as const)("a malformed %s payload is logged with its problems and ignored: no call, no record", async (action) => {
    const h = createHarness();
    const payload = workflowJobPayload(action, { id: newJobId(), labels: SMALL });
    const jobId = payload.workflow_job.id;
    Object.assign(payload.workflow_job, { id: -1, run_id: "x", labels: "kumo" });
    delete (payload.repository as { full_name?: string }).full_name;

    await h.deliver("workflow_job", payload);

    const warning = h.logs.find(/malformed workflow_job payload ignored/)!;
    expect(warning).toMatchObject({ level: 40, action });
    expect(warning.deliveryId).toMatch(/^0000/);
    expect(warning.problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^workflow_job\.id: /),
        expect.stringMatching(/^workflow_job\.run_id: /),
        expect.stringMatching(/^workflow_job\.labels: /),
        expect.stringMatching(/^repository\.full_name: /),
      ]),
    );
    expect(await h.deps.store.get(jobId)).toBeUndefined();
  });

  test("at most five problems are logged", async () => {
    const h = createHarness();
    const payload = workflowJobPayload("queued", { id: newJobId(), labels: SMALL });
    Object.assign(payload.workflow_job, { id: "a", run_id: "b", run_attempt: "c", labels: "d", created_at: 5 });
    Object.assign(payload.repository, { name: "", full_name: "" });

    await h.deliver("workflow_job", payload);

    expect(h.logs.find(/malformed workflow_job payload ignored/)!.problems).toHaveLength(5);
  });

  test("a delivery without an installation (an app-level webhook) is ignored with a warning", async () => {
    const h = createHarness();
    const jobId = newJobId();
    const payload = workflowJobPayload("queued", { id: jobId, labels: SMALL });
    delete (payload as { installation?: unknown }).installation;

    await h.deliver("workflow_job", payload);

    expect(h.logs.find(/webhook without installation/)).toMatchObject({ level: 40, jobId });
    expect(await h.deps.store.get(jobId)).toBeUndefined();
  });

  test("without an organization field, an owner of type Organization names the org; GitHub's older payloads lack run_attempt", async () => {
    const h = createHarness();
    const gh = track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    track(mockCloudRun().runsJob());
    const jobId = newJobId();
    const payload = workflowJobPayload("queued", { id: jobId, labels: SMALL });
    delete (payload as { organization?: unknown }).organization;
    delete (payload.workflow_job as { run_attempt?: unknown }).run_attempt;
    delete (payload.workflow_job as { created_at?: unknown }).created_at;

    await h.deliver("workflow_job", payload);

    const record = await h.deps.store.get(jobId);
    expect(record).toMatchObject({ state: "launched", org: ORG, runAttempt: 1, installationId: INSTALLATION_ID, runnerName: gh.jitRequests[0]!.name });
    expect(record!.createdAt).toBeUndefined();
  });

  test("a queued job keeps GitHub's created_at, its name and commit", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    track(mockCloudRun().runsJob());
    const jobId = newJobId();
    const payload = workflowJobPayload("queued", { id: jobId, labels: SMALL });
    Object.assign(payload.workflow_job, { run_attempt: 3, created_at: "2026-11-30T10:00:00Z", name: "build (linux)", head_sha: "f".repeat(40) });

    await h.deliver("workflow_job", payload);

    expect(await h.deps.store.get(jobId)).toMatchObject({
      runAttempt: 3,
      createdAt: new Date("2026-11-30T10:00:00Z"),
      name: "build (linux)",
      headSha: "f".repeat(40),
      deliveryId: expect.stringMatching(/^0000/),
    });
  });

  test("a short Cloud Run job name without a project and region to complete it: logged, nothing started", async () => {
    const h = createHarness({ env: { GOOGLE_CLOUD_PROJECT: "", CLOUD_RUN_REGION: "" } });
    // Settings and groups are read; no JIT or Cloud Run call follows.
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups));
    const jobId = newJobId();

    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: SMALL }));

    expect(h.logs.find(/no runner started/)).toMatchObject({ level: 50, jobId, err: expect.stringMatching(/short name/) });
    expect(await h.deps.store.get(jobId)).toBeUndefined();
  });

  test("explain: false in the settings is kept on the job's target; capped specs keep their cap", async () => {
    const h = createHarness();
    const settings = "explain: false\nrunners:\n  - labels: [kumo, small]\n    group: cloudrun\n    job: gha-runner-small\n    maxRunners: 4\n";
    track(mockGitHub().canGetToken().hasSettings(settings).hasRunnerGroups(REPO, groups).generatesJitConfig());
    track(mockCloudRun().runsJob());
    const jobId = newJobId();

    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: SMALL }));

    expect((await h.deps.store.get(jobId))!.target).toEqual({
      labels: SMALL,
      group: "cloudrun",
      groupId: 7,
      job: "projects/kumo-test/locations/us-central1/jobs/gha-runner-small",
      maxRunners: 4,
      explain: false,
    });
  });
});
