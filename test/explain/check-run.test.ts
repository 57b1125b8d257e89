import { describe, expect, test } from "@jest/globals";
import { capacity } from "../../app/reconcile/capacity.js";
import { stalledLaunches } from "../../app/reconcile/stalled-launches.js";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { INSTALLATION_ID, ORG, REPO, SETTINGS_YAML, deliveryId, workflowJobPayload } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { createHarness, reconcileWith, trackMocks, useNock } from "../helpers/harness.js";

useNock();

const FULL_REPO = `${ORG}/${REPO}`;
const SHA = "3484a3fb816e0859fd6e1cea078d76385ff50625";
const groups = [{ id: 7, name: "cloudrun" }];
let nextJobId = 1_600_000;
const newJobId = () => nextJobId++;
const queued = (id: number, labels: string[]) => workflowJobPayload("queued", { id, labels });

describe("a check run says why a job addressed to Kumo waits", () => {
  const track = trackMocks();

  test("no spec serves all its labels: one neutral check run naming the missing labels and the specs; a redelivery adds none", async () => {
    const h = createHarness();
    const gh = track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).createsCheckRun(FULL_REPO, 901));
    const jobId = newJobId();
    const payload = queued(jobId, ["kumo", "arm64"]);

    await h.deliver("workflow_job", payload, "d-1");
    await h.deliver("workflow_job", payload, "d-1");

    expect(gh.checkRuns).toHaveLength(1);
    const [run] = gh.checkRuns;
    expect(run!.body).toMatchObject({
      name: "Kumo: update",
      head_sha: SHA,
      external_id: String(jobId),
      status: "completed",
      conclusion: "neutral",
      details_url: `https://github.com/${ORG}/.github/blob/HEAD/.github/kumo.yml`,
      output: { title: "No Kumo runner spec serves all of this job's labels" },
    });
    expect(run!.body.output.summary).toContain("The job asks for `kumo`, `arm64`.");
    expect(run!.body.output.summary).toContain("The closest spec, `kumo`, `small`, lacks `arm64`.");
    expect(run!.body.output.summary).toContain("- `kumo`, `large`, `gpu`");
    expect(await h.deps.store.explanation(jobId)).toEqual({ created: false, explanation: { jobId, repo: FULL_REPO, headSha: SHA, reason: "no-spec", checkRunId: 901 } });
    expect(await h.deps.store.get(jobId)).toBeUndefined();
  });

  test("a job not addressed to Kumo (none of its labels in a spec) gets no call", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML));
    const jobId = newJobId();
    await h.deliver("workflow_job", queued(jobId, ["ubuntu-latest"]));
    expect(await h.deps.store.explanation(jobId)).toEqual({ created: false });
  });

  test("explain: false in the settings turns it off", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(`explain: false\n${SETTINGS_YAML}`));
    const jobId = newJobId();
    await h.deliver("workflow_job", queued(jobId, ["kumo", "arm64"]));
    expect(await h.deps.store.explanation(jobId)).toEqual({ created: false });
  });

  test("the runner group is not visible to the repository", async () => {
    const h = createHarness();
    const gh = track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, [{ id: 1, name: "Default" }]).createsCheckRun(FULL_REPO));
    await h.deliver("workflow_job", queued(newJobId(), ["kumo", "small"]));
    expect(gh.checkRuns[0]!.body.output).toMatchObject({ title: 'Runner group "cloudrun" is not available to this repository' });
  });

  test("the settings file is invalid: its first problems with their paths, for a job with one of the labels it lists", async () => {
    const h = createHarness();
    const gh = track(mockGitHub().canGetToken().hasSettings("runners:\n  - labels: [kumo, small]\n    job: Not_A_Job\n").createsCheckRun(FULL_REPO));
    await h.deliver("workflow_job", queued(newJobId(), ["kumo", "small"]));
    expect(gh.checkRuns[0]!.body.output.title).toBe("The org's kumo.yml is invalid: no Kumo runner starts until it is fixed");
    expect(gh.checkRuns[0]!.body.output.summary).toContain("- runners.0.job: must be a Cloud Run job name or projects/P/locations/R/jobs/J");
  });

  test("a launch that failed for good says why, without the JIT config; when a runner takes the job the check run says so (success)", async () => {
    const h = createHarness();
    const gh = track(
      mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig().deletesRunner(1000).createsCheckRun(FULL_REPO, 902).updatesCheckRun(FULL_REPO, 902),
    );
    track(mockCloudRun().failsRunJob(403, "PERMISSION_DENIED", "caller lacks run.jobs.runWithOverrides"));
    const jobId = newJobId();

    await expect(h.deliver("workflow_job", queued(jobId, ["kumo", "small"]))).rejects.toThrow(/PERMISSION_DENIED/);
    expect(gh.checkRuns[0]!.body.output.title).toBe("Kumo gave up starting a runner for this job");
    expect(gh.checkRuns[0]!.body.output.summary).toMatch(/^runJob .*PERMISSION_DENIED: caller lacks run\.jobs\.runWithOverrides/);
    expect(JSON.stringify(gh.checkRuns)).not.toContain("SECRET-JIT-CONFIG");
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "failed", explained: true });

    // Someone re-ran it on another runner system with the same labels, or fixed it: GitHub says in_progress.
    await h.deliver("workflow_job", workflowJobPayload("in_progress", { id: jobId, labels: ["kumo", "small"] }));
    expect(gh.checkRuns[1]).toMatchObject({ method: "PATCH", body: { conclusion: "success", output: { title: "A runner took the job" } } });
    // Completed: nothing more to say, no call.
    await h.deliver("workflow_job", workflowJobPayload("completed", { id: jobId, labels: ["kumo", "small"] }));
    expect(gh.checkRuns).toHaveLength(2);
  });

  test("the steady state costs no check-run call: a job that launches normally, starts and completes", async () => {
    const h = createHarness();
    // Any check-run call would find no interceptor and fail the delivery.
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    track(mockCloudRun().runsJob());
    const jobId = newJobId();
    await h.deliver("workflow_job", queued(jobId, ["kumo", "small"]));
    await h.deliver("workflow_job", workflowJobPayload("in_progress", { id: jobId, labels: ["kumo", "small"] }));
    await h.deliver("workflow_job", workflowJobPayload("completed", { id: jobId, labels: ["kumo", "small"] }));
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "completed" });
    expect(h.logs.find(/^job timings$/)).toMatchObject({ jobId, spec: `${ORG} [kumo, small] → gha-runner-small`, attempts: 1, queueMs: expect.any(Number), runMs: expect.any(Number) });
  });

  test("maxRunners reached for longer than the threshold: reconcile explains it once, however many passes", async () => {
    const h = createHarness({ env: { KUMO_EXPLAIN_AFTER_SECONDS: "0" } });
    const settings = `runners:\n  - labels: [kumo, small]\n    group: cloudrun\n    job: gha-runner-small\n    maxRunners: 1\n`;
    const gh = track(mockGitHub().canGetToken().hasSettings(settings).hasRunnerGroups(REPO, groups).generatesJitConfig().createsCheckRun(FULL_REPO, 903));
    track(mockCloudRun().runsJob());
    const [first, second] = [newJobId(), newJobId()];
    await h.deliver("workflow_job", queued(first, ["kumo", "small"]), deliveryId());
    await h.deliver("workflow_job", queued(second, ["kumo", "small"]), deliveryId());

    const [one] = await reconcileWith(h, {}, [capacity]);
    const [two] = await reconcileWith(h, {}, [capacity]);

    expect(one!.counts).toMatchObject({ waiting: 1, explained: 1 });
    expect(two!.counts).toMatchObject({ waiting: 1, explained: 0 });
    expect(gh.checkRuns).toHaveLength(1);
    expect(gh.checkRuns[0]!.body.output.title).toBe("Waiting for a runner: maxRunners 1 of `kumo`, `small` reached");
    expect(gh.checkRuns[0]!.body.external_id).toBe(String(second));
  });

  test("reconcile gave up after the last attempt: the check run says so", async () => {
    const h = createHarness();
    const jobId = newJobId();
    const execution = "projects/kumo-test/locations/us-central1/jobs/gha-runner-small/executions/e-gave-up";
    const target = { labels: ["kumo", "small"], group: "cloudrun", groupId: 7, job: "projects/kumo-test/locations/us-central1/jobs/gha-runner-small" };
    const tenMinutesAgo = new Date(Date.now() - 10 * 60_000);
    await h.deps.store.claim({ jobId, runId: 1, runAttempt: 1, installationId: INSTALLATION_ID, org: ORG, repo: FULL_REPO, labels: ["kumo", "small"], target, name: "build", headSha: SHA }, tenMinutesAgo);
    await h.deps.store.markLaunched(jobId, 1, { runnerId: 61, runnerName: `kumo-${jobId}-1-abcdef`, execution }, tenMinutesAgo);
    const gh = track(mockGitHub().canGetToken().hasJob(FULL_REPO, jobId, "queued").deletesRunner(61, 404).createsCheckRun(FULL_REPO, 904));
    track(mockCloudRun().hasExecution(execution, { failedCount: 1, completionTime: new Date().toISOString() }));

    const [summary] = await reconcileWith(h, { maxAttempts: 1 }, [stalledLaunches]);

    expect(summary!.counts).toMatchObject({ failed: 1 });
    expect(gh.checkRuns).toHaveLength(1);
    expect(gh.checkRuns[0]!.body).toMatchObject({ name: "Kumo: build", head_sha: SHA, conclusion: "neutral", output: { title: "Kumo gave up starting a runner for this job" } });
    expect(gh.checkRuns[0]!.body.output.summary).toMatch(/^gave up after 1 launch attempts: execution failed without taking the job/);
  });
});
