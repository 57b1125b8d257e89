import { describe, expect, test } from "@jest/globals";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { ORG, REPO, SETTINGS_YAML, deliveryId, workflowJobPayload } from "../helpers/fixtures.js";
import { jitConfigFor, mockGitHub } from "../helpers/github.js";
import { createHarness, emulatorStore, trackMocks, useNock } from "../helpers/harness.js";

useNock();

const SMALL_JOB = "projects/kumo-test/locations/us-central1/jobs/gha-runner-small";
let nextJobId = 700_000;
const newJobId = () => nextJobId++;

/** GitHub with valid settings and the `cloudrun` group visible to the repository. */
function gitHubWithSettings(repo = REPO) {
  return mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(repo, [
    { id: 1, name: "Default" },
    { id: 7, name: "cloudrun" },
  ]);
}

describe("workflow_job.queued", () => {
  const track = trackMocks();

  test("launches one runner: exact JIT request without self-hosted, runJob with only the JIT config", async () => {
    const h = createHarness();
    const gh = track(gitHubWithSettings().generatesJitConfig());
    const cr = track(mockCloudRun().runsJob());
    const jobId = newJobId();

    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }));

    expect(gh.jitRequests).toHaveLength(1);
    const jit = gh.jitRequests[0]!;
    expect(jit).toEqual({ name: expect.stringMatching(new RegExp(`^kumo-${jobId}-1-[0-9a-f]{6}$`)), runner_group_id: 7, labels: ["kumo", "small"] });
    expect(jit.labels).not.toContain("self-hosted");

    expect(cr.runJobCalls).toEqual([
      {
        job: SMALL_JOB,
        body: { overrides: { containerOverrides: [{ env: [{ name: "ACTIONS_RUNNER_INPUT_JITCONFIG", value: jitConfigFor(jit.name) }] }], taskCount: 1 } },
      },
    ]);

    const record = await h.deps.store.get(jobId);
    expect(record).toMatchObject({
      state: "launched",
      attempts: 1,
      org: ORG,
      repo: `${ORG}/${REPO}`,
      labels: ["kumo", "small"],
      runnerName: jit.name,
      runnerId: 1000,
      execution: expect.stringMatching(new RegExp(`^${SMALL_JOB}/executions/`)),
      target: { labels: ["kumo", "small"], group: "cloudrun", groupId: 7, job: SMALL_JOB },
    });
    expect(record!.launchedAt).toBeInstanceOf(Date);

    const launched = h.logs.find(/runner launched/)!;
    expect(launched).toMatchObject({ jobId, repo: `${ORG}/${REPO}`, runnerName: jit.name });
    expect(launched.deliveryId).toMatch(/^0000/);
  });

  test("matches labels case-insensitively and sends a full resource name as it is", async () => {
    const h = createHarness();
    const gh = track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, [{ id: 1, name: "Default" }]).generatesJitConfig());
    const cr = track(mockCloudRun().runsJob());

    await h.deliver("workflow_job", workflowJobPayload("queued", { id: newJobId(), labels: ["KUMO", "Gpu"] }));

    expect(gh.jitRequests[0]).toMatchObject({ runner_group_id: 1, labels: ["kumo", "large", "gpu"] });
    expect(cr.runJobCalls[0]!.job).toBe("projects/other-project/locations/europe-west1/jobs/gha-runner-large");
  });

  test.each([
    ["a GitHub-hosted job (real example payload)", undefined],
    ["a self-hosted job (real example payload)", ["self-hosted", "k8s"]],
    ["self-hosted added to served labels", ["kumo", "small", "self-hosted"]],
    ["labels no spec has", ["kumo", "huge"]],
  ])("ignores %s: no runner group, JIT or Cloud Run call, no record", async (_name, labels) => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML));
    const jobId = newJobId();
    const payload = labels?.[0] === "self-hosted" ? workflowJobPayload("queued", { id: jobId, exampleLabels: labels }) : workflowJobPayload("queued", { id: jobId, ...(labels ? { labels } : {}) });
    if (!labels) expect(payload.workflow_job.labels).toEqual(["ubuntu-latest"]);

    await h.deliver("workflow_job", payload);

    expect(await h.deps.store.get(jobId)).toBeUndefined();
    expect(h.logs.find(/no runner spec serves these labels/)).toMatchObject({ jobId });
  });

  test("serves self-hosted when a spec lists it explicitly", async () => {
    const h = createHarness();
    const settings = `runners:\n  - labels: [self-hosted, k8s]\n    job: gha-runner-k8s\n`;
    const gh = track(mockGitHub().canGetToken().hasSettings(settings).hasRunnerGroups(REPO, [{ id: 1, name: "Default" }]).generatesJitConfig());
    track(mockCloudRun().runsJob());

    await h.deliver("workflow_job", workflowJobPayload("queued", { id: newJobId(), exampleLabels: ["self-hosted", "k8s"] }));

    expect(gh.jitRequests[0]!.labels).toEqual(["self-hosted", "k8s"]);
  });

  test("the per-repository label map beats the org-wide one", async () => {
    const h = createHarness();
    const gh = track(
      mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups("Special", [
        { id: 7, name: "cloudrun" },
        { id: 9, name: "special-group" },
      ]).generatesJitConfig(),
    );
    const cr = track(mockCloudRun().runsJob());

    await h.deliver("workflow_job", workflowJobPayload("queued", { id: newJobId(), labels: ["kumo", "small"], repo: "Special" }));

    expect(gh.jitRequests[0]!.runner_group_id).toBe(9);
    expect(cr.runJobCalls[0]!.job).toBe("projects/kumo-test/locations/us-central1/jobs/gha-runner-special");
  });

  test("a runner group the repository cannot use starts nothing and says why", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, [{ id: 1, name: "Default" }]));
    const jobId = newJobId();

    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }));

    expect(await h.deps.store.get(jobId)).toBeUndefined();
    expect(h.logs.find(/runner group "cloudrun" does not exist or is not available/)).toMatchObject({ jobId, level: 40 });
  });

  test.each([
    ["a schema error", "runners:\n  - labels: [kumo]\n    job: Not_A_Job\n    colour: blue\n", [/runners\.0\.job: must be a Cloud Run job name/, /runners\.0: Unrecognized key: "colour"/]],
    ["invalid YAML", "runners: [\n  - labels: [kumo\n", [/^\(file\): invalid YAML: /]],
  ])("an invalid settings file (%s) logs every problem and starts nothing", async (_name, yaml, expected) => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(yaml));
    const jobId = newJobId();

    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo"] }));

    const error = h.logs.find(/invalid octo-org\/.github\/.github\/kumo.yml/)!;
    expect(error).toMatchObject({ level: 50, jobId });
    for (const pattern of expected) expect(error.errors.some((e: string) => pattern.test(e))).toBe(true);
    expect(await h.deps.store.get(jobId)).toBeUndefined();
  });

  test("a missing settings file serves nothing", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(null));
    const jobId = newJobId();
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }));
    expect(await h.deps.store.get(jobId)).toBeUndefined();
  });

  test("a job of a user account is ignored with a clear log line, without any call", async () => {
    const h = createHarness();
    const jobId = newJobId();
    // No interceptor: any GitHub call would fail the delivery.
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"], org: null }));
    expect(h.logs.find(/Kumo serves organizations only/)).toMatchObject({ jobId, owner: "octocat" });
    expect(await h.deps.store.get(jobId)).toBeUndefined();
  });

  test("runJob failure deletes the registration, records why, and fails the delivery", async () => {
    const h = createHarness();
    const gh = track(gitHubWithSettings().generatesJitConfig().deletesRunner(1000));
    track(mockCloudRun().failsRunJob(503, "UNAVAILABLE", "the service is unavailable"));
    const jobId = newJobId();

    const error = await failedDelivery(h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] })));
    expect(error).toMatchObject({ name: "LaunchError", message: expect.stringMatching(new RegExp(`^job ${jobId}: .*the service is unavailable`)), retryable: true });

    expect(gh.deletedRunners).toEqual([1000]);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "pending", lastError: expect.stringMatching(/runJob .*UNAVAILABLE/) });
  });

  test("a Cloud Run permission error is recorded as failed, not retried", async () => {
    const h = createHarness();
    track(gitHubWithSettings().generatesJitConfig().deletesRunner(1000));
    track(mockCloudRun().failsRunJob(403, "PERMISSION_DENIED", "caller lacks run.jobs.runWithOverrides"));
    const jobId = newJobId();

    const error = await failedDelivery(h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] })));
    // Not retryable: a person must fix it.
    expect(error).toMatchObject({ name: "LaunchError", message: expect.stringMatching(/PERMISSION_DENIED/), retryable: false });

    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "failed", lastError: expect.stringMatching(/PERMISSION_DENIED: .*runWithOverrides/) });
  });

  test("GitHub's 422 spam answer to generate-jitconfig is retryable: the job stays pending for reconcile", async () => {
    const h = createHarness();
    track(gitHubWithSettings().failsJitConfig(422, {}, "Validation Failed: request was flagged as spam"));
    const jobId = newJobId();

    expect(await failedDelivery(h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] })))).toMatchObject({
      message: expect.stringMatching(/HTTP 422/),
      retryable: true,
    });

    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "pending", lastError: expect.stringMatching(/HTTP 422: Validation Failed: request was flagged as spam/) });
  });

  test("any other 422 from generate-jitconfig needs a person: the job is recorded as failed", async () => {
    const h = createHarness();
    track(gitHubWithSettings().failsJitConfig(422, {}, "Validation Failed: runner group is not valid"));
    const jobId = newJobId();

    expect(await failedDelivery(h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] })))).toMatchObject({
      message: expect.stringMatching(/HTTP 422/),
      retryable: false,
    });

    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "failed", lastError: expect.stringMatching(/HTTP 422: Validation Failed: runner group/) });
  });

  test("a runner started but not recorded (markLaunched fails) is undone: registration deleted, execution cancelled, job pending", async () => {
    const store = emulatorStore();
    store.markLaunched = async () => {
      throw new Error("DEADLINE_EXCEEDED: commit timed out");
    };
    const h = createHarness({ store });
    const gh = track(gitHubWithSettings().generatesJitConfig().deletesRunner(1000));
    const cr = track(mockCloudRun().runsJob().cancelsExecution());
    const jobId = newJobId();

    await expect(h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }))).rejects.toThrow(
      /runner started but not recorded/,
    );

    expect(cr.runJobCalls).toHaveLength(1);
    expect(gh.deletedRunners).toEqual([1000]);
    expect(cr.cancelled).toEqual([`${SMALL_JOB}/executions/gha-runner-small-00001`]);
    const record = await store.get(jobId);
    expect(record).toMatchObject({
      state: "pending",
      attempts: 1,
      lastError: "runner started but not recorded (DEADLINE_EXCEEDED: commit timed out); launch undone",
    });
    expect(record!.runnerName).toBeUndefined();
    expect(h.logs.find(/runner retired/)).toMatchObject({ runnerName: gh.jitRequests[0]!.name, why: "launch undone" });
  });

  test("GitHub's secondary rate limit leaves the job pending until retry-after, without sleeping, and the delivery is not failed (reconcile launches it)", async () => {
    const h = createHarness();
    track(gitHubWithSettings().failsJitConfig(403, { "retry-after": "30" }, "You have exceeded a secondary rate limit"));
    const jobId = newJobId();
    const started = Date.now();

    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }));
    expect(h.logs.find(/runner not launched/)).toMatchObject({ jobId, state: "pending", reason: expect.stringMatching(/rate limited/) });

    expect(Date.now() - started).toBeLessThan(5000);
    const record = await h.deps.store.get(jobId);
    expect(record).toMatchObject({ state: "pending", lastError: expect.stringMatching(/secondary rate limit/) });
    expect(record!.leaseUntil!.getTime()).toBeGreaterThan(Date.now() + 20_000);
    // The next job of this instance does not try GitHub before then (no interceptor: a call would fail).
    const next = newJobId();
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: next, labels: ["kumo", "small"] }));
    expect(h.logs.find(/budget of this instance is used up/)).toMatchObject({ jobId: next });
    expect(await h.deps.store.get(next)).toMatchObject({ state: "pending", attempts: 1, lastError: expect.stringMatching(/^JIT registration budget of this instance is used up/) });
  });

  test("no JIT config appears in any log line", async () => {
    const h = createHarness();
    const gh = track(gitHubWithSettings().generatesJitConfig(2).deletesRunner(1001));
    track(mockCloudRun().runsJob().failsRunJob(500, "INTERNAL", "boom"));

    await h.deliver("workflow_job", workflowJobPayload("queued", { id: newJobId(), labels: ["kumo", "small"] }));
    await expect(h.deliver("workflow_job", workflowJobPayload("queued", { id: newJobId(), labels: ["kumo", "small"] }))).rejects.toThrow();

    const text = h.logs.text();
    expect(h.logs.lines.length).toBeGreaterThan(5);
    for (const { name } of gh.jitRequests) {
      expect(text).not.toContain(jitConfigFor(name));
      expect(text).not.toContain(`SECRET-JIT-CONFIG-for-${name}`);
    }
    expect(text).not.toContain("ghs_test_installation_token");
  });

  test("settings and runner groups are cached: a second job makes no settings or group call", async () => {
    const h = createHarness();
    const gh = track(gitHubWithSettings().generatesJitConfig(2));
    track(mockCloudRun().runsJob(2));

    await h.deliver("workflow_job", workflowJobPayload("queued", { id: newJobId(), labels: ["kumo", "small"] }));
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: newJobId(), labels: ["kumo", "small"] }));

    expect(gh.jitRequests).toHaveLength(2);
  });

  test("a push touching kumo.yml on the default branch of the org's .github repository drops the cached settings and groups", async () => {
    const h = createHarness();
    track(gitHubWithSettings().generatesJitConfig(2));
    track(mockCloudRun().runsJob(2));
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: newJobId(), labels: ["kumo", "small"] }));

    await h.deliver("push", pushPayload(".github", [".github/kumo.yml"]));
    // Both must be read again (trackMocks fails the test when an interceptor is left unused).
    track(mockGitHub().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, [{ id: 7, name: "cloudrun" }]));
    const jobId = newJobId();
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }));

    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "launched" });
    expect(h.logs.find(/kumo.yml changed/)).toMatchObject({ org: ORG });
  });

  test.each([
    ["a push to another repository touching .github/kumo.yml", () => pushPayload("other-repo", [".github/kumo.yml"])],
    ["a push to the .github repository touching another file", () => pushPayload(".github", ["README.md", ".github/other.yml"])],
    ["a push of kumo.yml to another branch of the .github repository", () => pushPayload(".github", [".github/kumo.yml"], "refs/heads/feature")],
  ])("%s keeps the cache: the next job makes no settings or group call", async (_name, push) => {
    const h = createHarness();
    // Settings and groups are answered once: a second read would find no interceptor and fail the delivery.
    const gh = track(gitHubWithSettings().generatesJitConfig(2));
    track(mockCloudRun().runsJob(2));
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: newJobId(), labels: ["kumo", "small"] }));

    await h.deliver("push", push());
    const jobId = newJobId();
    await h.deliver("workflow_job", workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }));

    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "launched", runnerName: gh.jitRequests[1]!.name });
    expect(h.logs.find(/kumo.yml changed/)).toBeUndefined();
  });
});

/** The one error a failed delivery's handler threw (Probot reports them together). */
async function failedDelivery(delivery: Promise<void>): Promise<unknown> {
  const error = await delivery.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AggregateError);
  expect((error as AggregateError).errors).toHaveLength(1);
  return (error as AggregateError).errors[0];
}

function pushPayload(repo: string, files: string[], ref = "refs/heads/main") {
  return {
    ref,
    before: "a".repeat(40),
    after: "b".repeat(40),
    installation: { id: 4242 },
    organization: { login: ORG },
    repository: { name: repo, full_name: `${ORG}/${repo}`, default_branch: "main", owner: { login: ORG, type: "Organization" } },
    commits: [{ id: "b".repeat(40), added: [], removed: [], modified: files }],
    deliveryId: deliveryId(),
  };
}
