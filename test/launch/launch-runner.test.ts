import { describe, expect, test } from "@jest/globals";
import { LaunchError } from "../../app/errors.js";
import type { JitPacer } from "../../app/github/jit-pacer.js";
import type { Octokit } from "../../app/github/octokit.js";
import { launchRunner } from "../../app/launch/launch-runner.js";
import { launchWarmRunner } from "../../app/launch/launch-warm.js";
import type { LaunchQueue, QueuedLaunch } from "../../app/launch-queue/queue.js";
import { capacityOf, type JobStore, type NewJob, type RunnerTarget } from "../../app/store/job-store.js";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { INSTALLATION_ID, ORG, REPO, workflowJobPayload } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { createHarness, emulatorStore, trackMocks, useNock } from "../helpers/harness.js";

useNock();

const SMALL = ["kumo", "small"];
const SMALL_JOB = "projects/kumo-test/locations/us-central1/jobs/gha-runner-small";
const CAPPED_1 = `runners:\n  - labels: [kumo, small]\n    group: cloudrun\n    job: gha-runner-small\n    maxRunners: 1\n`;
const TARGET = { labels: SMALL, group: "cloudrun", groupId: 7, job: SMALL_JOB, maxRunners: 1 };
const groups = [{ id: 7, name: "cloudrun" }];
let nextJobId = 1_800_000;
const newJobId = () => nextJobId++;
const queued = (id: number) => workflowJobPayload("queued", { id, labels: SMALL });

function newJob(jobId: number, extra: Partial<NewJob> = {}): NewJob {
  return { jobId, runId: 1, runAttempt: 1, installationId: INSTALLATION_ID, org: ORG, repo: `${ORG}/${REPO}`, labels: SMALL, target: TARGET, ...extra };
}

/** A job already waiting for the capped spec (its capacity was full when it came). */
async function seedWaiting(store: JobStore, jobId: number): Promise<void> {
  await store.claim(newJob(jobId, { createdAt: new Date(Date.now() - 60_000) }), new Date(Date.now() - 60_000));
  await store.markNotLaunched(jobId, 1, { state: "waiting", reason: "maxRunners 1 reached" });
}

/** The one error a failed delivery's handler threw. */
async function failedDelivery(delivery: Promise<void>): Promise<unknown> {
  const error = await delivery.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(AggregateError);
  return (error as AggregateError).errors[0];
}

/** A launch queue that records what it was given, or refuses with `error`. */
function fakeQueue(error?: Error): LaunchQueue & { launches: QueuedLaunch[] } {
  const launches: QueuedLaunch[] = [];
  return {
    enqueues: true,
    launches,
    enqueue: async (launch) => {
      if (error) throw error;
      launches.push(launch);
    },
    enqueueWarm: () => Promise.reject(new Error("no warm pool here")),
  };
}

const QUEUE_ENV = {
  KUMO_LAUNCH_QUEUE: "projects/kumo-test/locations/us-central1/queues/kumo-launch",
  KUMO_TASKS_URL: "https://kumo.example/api/kumo/launch",
  KUMO_TASKS_SERVICE_ACCOUNT: "kumo@kumo-test.iam.gserviceaccount.com",
  KUMO_QUEUED_LEASE_SECONDS: "120",
};

describe("launchRunner and capacity", () => {
  const track = trackMocks();

  test("a capped launch that fails for good gives its slot back, and the job waiting for the spec takes it at once", async () => {
    const h = createHarness();
    const waiting = newJobId();
    await seedWaiting(h.deps.store, waiting);
    const gh = track(mockGitHub().canGetToken().hasSettings(CAPPED_1).hasRunnerGroups(REPO, groups).generatesJitConfig(2).deletesRunner(1000));
    const cr = track(mockCloudRun().failsRunJob(403, "PERMISSION_DENIED", "caller lacks run.jobs.runWithOverrides").runsJob(1));
    const jobId = newJobId();

    const error = await failedDelivery(h.deliver("workflow_job", queued(jobId)));

    expect(error).toMatchObject({ name: "LaunchError", retryable: false });
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "failed" });
    expect(await h.deps.store.get(waiting)).toMatchObject({ state: "launched", attempts: 2, runnerName: gh.jitRequests[1]!.name });
    expect(gh.jitRequests[1]!.name).toMatch(new RegExp(`^kumo-${waiting}-2-`));
    expect(cr.runJobCalls).toHaveLength(1);
    expect((await h.deps.store.listSlots()).map((s) => s.jobId)).toEqual([waiting]);
  });

  test("a capped launch deferred for the JIT budget gives its slot back; the job is left pending for 10 s, the delivery succeeds", async () => {
    const acquired: boolean[] = [];
    const pacer = { acquire: async () => (acquired.push(false), false), pause: () => undefined } as unknown as JitPacer;
    const h = createHarness({ deps: { pacer } });
    // No JIT or Cloud Run interceptor: any launch call would fail the delivery.
    track(mockGitHub().canGetToken().hasSettings(CAPPED_1).hasRunnerGroups(REPO, groups));
    const jobId = newJobId();
    const before = Date.now();

    await h.deliver("workflow_job", queued(jobId));

    expect(acquired).toEqual([false]);
    const record = await h.deps.store.get(jobId);
    expect(record).toMatchObject({ state: "pending", attempts: 1, lastError: "JIT registration budget of this instance is used up; reconcile launches the job" });
    expect(record!.leaseUntil!.getTime()).toBeGreaterThanOrEqual(before + 10_000);
    expect(record!.leaseUntil!.getTime()).toBeLessThanOrEqual(Date.now() + 10_000);
    expect(await h.deps.store.listSlots()).toEqual([]);
    expect(h.logs.find(/budget of this instance is used up/)).toMatchObject({ level: 40, jobId, attempt: 1 });
  });

  test("a failed launch that cannot be recorded: logged, the claim left for reconcile, the delivery fails as retryable", async () => {
    const store = emulatorStore();
    store.markNotLaunched = async () => {
      throw new Error("UNAVAILABLE: Firestore unreachable");
    };
    const h = createHarness({ store });
    const gh = track(mockGitHub().canGetToken().hasSettings(CAPPED_1).hasRunnerGroups(REPO, groups).generatesJitConfig().deletesRunner(1000));
    track(mockCloudRun().failsRunJob(503, "UNAVAILABLE", "the service is unavailable"));
    const jobId = newJobId();

    const error = await failedDelivery(h.deliver("workflow_job", queued(jobId)));

    expect(error).toBeInstanceOf(LaunchError);
    expect(error).toMatchObject({ message: expect.stringMatching(/the service is unavailable/), retryable: true });
    expect(gh.deletedRunners).toEqual([1000]);
    expect(h.logs.find(/could not record the failed launch/)).toMatchObject({ level: 40, jobId, err: "UNAVAILABLE: Firestore unreachable" });
    expect(h.logs.find(/runner not launched/)).toMatchObject({ level: 50, jobId, state: "pending" });
    // The claim and its lease stay: reconcile takes the job over once the lease expires.
    const record = await store.get(jobId);
    expect(record).toMatchObject({ state: "claimed", attempts: 1 });
    expect(record!.leaseUntil!.getTime()).toBeGreaterThan(Date.now());
    expect(await store.listSlots()).toEqual([]);
  });

  test("a capped runner started but not recorded: the launch is undone and its slot given back", async () => {
    const store = emulatorStore();
    store.markLaunched = async () => {
      throw new Error("DEADLINE_EXCEEDED: commit timed out");
    };
    const h = createHarness({ store });
    const gh = track(mockGitHub().canGetToken().hasSettings(CAPPED_1).hasRunnerGroups(REPO, groups).generatesJitConfig().deletesRunner(1000));
    const cr = track(mockCloudRun().runsJob().cancelsExecution());
    const jobId = newJobId();

    const error = await failedDelivery(h.deliver("workflow_job", queued(jobId)));

    expect(error).toMatchObject({ message: expect.stringMatching(/runner started but not recorded \(DEADLINE_EXCEEDED: commit timed out\); launch undone/), retryable: true });
    expect(gh.deletedRunners).toEqual([1000]);
    expect(cr.cancelled).toHaveLength(1);
    expect(await store.get(jobId)).toMatchObject({ state: "pending", lastError: "runner started but not recorded (DEADLINE_EXCEEDED: commit timed out); launch undone" });
    expect(await store.listSlots()).toEqual([]);
  });

  test("GitHub's retry-after pauses this instance's JIT budget for that long", async () => {
    const paused: number[] = [];
    const pacer = { acquire: async () => true, pause: (ms: number) => paused.push(ms) } as unknown as JitPacer;
    const h = createHarness({ deps: { pacer } });
    track(mockGitHub().canGetToken().hasSettings(CAPPED_1).hasRunnerGroups(REPO, groups).failsJitConfig(403, { "retry-after": "42" }, "You have exceeded a secondary rate limit"));
    const jobId = newJobId();

    await h.deliver("workflow_job", queued(jobId));

    expect(paused).toEqual([42_000]);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "pending" });
    expect(await h.deps.store.listSlots()).toEqual([]);
  });
});

describe("launchRunner with a launch queue", () => {
  const track = trackMocks();

  test("the launch becomes a task: the claim is held for the queue's lease, the capacity kept, nothing launched here", async () => {
    const queue = fakeQueue();
    const h = createHarness({ env: QUEUE_ENV, deps: { queue } });
    // No JIT or Cloud Run interceptor: the launch is the launch route's.
    track(mockGitHub().canGetToken().hasSettings(CAPPED_1).hasRunnerGroups(REPO, groups));
    const jobId = newJobId();
    const before = Date.now();

    await h.deliver("workflow_job", queued(jobId));

    expect(queue.launches).toEqual([{ jobId, attempt: 1 }]);
    const record = await h.deps.store.get(jobId);
    expect(record).toMatchObject({ state: "claimed", attempts: 1, enqueued: true });
    expect(record!.leaseUntil!.getTime()).toBeGreaterThanOrEqual(before + 120_000);
    expect(record!.leaseUntil!.getTime()).toBeLessThanOrEqual(Date.now() + 120_000);
    expect((await h.deps.store.listSlots()).map((s) => s.jobId)).toEqual([jobId]);
    expect(h.logs.find(/launch enqueued/)).toMatchObject({ jobId, attempt: 1 });
  });

  test("without a configured lease the claim waits in the queue for 15 minutes", async () => {
    const queue = fakeQueue();
    const h = createHarness({ deps: { queue } });
    track(mockGitHub().canGetToken().hasSettings(CAPPED_1).hasRunnerGroups(REPO, groups));
    const jobId = newJobId();
    const before = Date.now();

    await h.deliver("workflow_job", queued(jobId));

    const leaseUntil = (await h.deps.store.get(jobId))!.leaseUntil!.getTime();
    expect(leaseUntil).toBeGreaterThanOrEqual(before + 900_000);
    expect(leaseUntil).toBeLessThanOrEqual(Date.now() + 900_000);
  });

  test.each([
    ["an unexpected error", new Error("DEADLINE_EXCEEDED"), "enqueue launch: DEADLINE_EXCEEDED"],
    ["a classified one", new LaunchError("Cloud Tasks: PERMISSION_DENIED: cloudtasks.tasks.create", false), "Cloud Tasks: PERMISSION_DENIED: cloudtasks.tasks.create"],
  ])("a queue that refuses the task (%s): the job is pending for reconcile, its slot given back, the delivery fails", async (_name, refusal, reason) => {
    const h = createHarness({ env: QUEUE_ENV, deps: { queue: fakeQueue(refusal) } });
    track(mockGitHub().canGetToken().hasSettings(CAPPED_1).hasRunnerGroups(REPO, groups));
    const jobId = newJobId();

    const error = await failedDelivery(h.deliver("workflow_job", queued(jobId)));

    expect(error).toMatchObject({ message: `job ${jobId}: ${reason}`, retryable: true });
    const record = await h.deps.store.get(jobId);
    expect(record).toMatchObject({ state: "pending", lastError: reason });
    expect(record!.enqueued).toBeUndefined();
    expect(await h.deps.store.listSlots()).toEqual([]);
    expect(h.logs.find(/launch not enqueued/)).toMatchObject({ level: 50, jobId, state: "pending", reason });
  });

  test("the launch route's own launch (fromQueue) is made here, not enqueued again", async () => {
    const queue = fakeQueue();
    const h = createHarness({ env: QUEUE_ENV, deps: { queue } });
    const gh = track(mockGitHub().canGetToken().generatesJitConfig());
    const cr = track(mockCloudRun().runsJob());
    const jobId = newJobId();
    const { record } = await h.deps.store.claim(newJob(jobId));
    const octokit = (await h.probot.auth(INSTALLATION_ID)) as Octokit;

    const outcome = await launchRunner(h.deps, octokit, h.probot.log, { ...record, target: TARGET }, { fromQueue: true });

    expect(outcome).toEqual({ launched: true, runnerName: gh.jitRequests[0]!.name, execution: expect.stringMatching(new RegExp(`^${SMALL_JOB}/executions/`)) });
    expect(queue.launches).toEqual([]);
    expect(cr.runJobCalls).toHaveLength(1);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "launched", runnerName: gh.jitRequests[0]!.name });
  });
});

describe("launchWarmRunner: one idle runner for a warm pool", () => {
  const track = trackMocks();
  const KEY = "0123456789abcdef01234567";

  async function setUp(deps: Parameters<typeof createHarness>[0] = {}) {
    const h = createHarness(deps);
    // Two launches decided before: this one is the pool's third turn.
    const added = await h.deps.store.updateWarmPool(KEY, { org: ORG, name: "pool" }, (launches) => ({ keep: launches, add: 3 }));
    const launch = added[2]!;
    const octokit = (await h.probot.auth(INSTALLATION_ID)) as Octokit;
    return { h, octokit, place: { key: KEY, id: launch.id, turn: launch.turn, org: ORG } };
  }
  const turns = async (h: ReturnType<typeof createHarness>) => (await h.deps.store.listWarmLaunches(KEY)).map((l) => l.turn).sort();

  test("launched: a runner of the spec's labels and group, named for its turn, its machine started for that turn, recorded on the pool", async () => {
    const launches: Array<{ job: string; runner: { name: string; attempt: number } }> = [];
    const launcher = { launch: async (target: { job: string }, _jit: string, runner: { name: string; attempt: number }) => (launches.push({ job: target.job, runner }), { execution: "machine-1" }) };
    const { h, octokit, place } = await setUp({ deps: { launcher: launcher as never } });
    const gh = track(mockGitHub().canGetToken().generatesJitConfig());

    const outcome = await launchWarmRunner(h.deps, octokit, h.probot.log, place, TARGET);

    const name = gh.jitRequests[0]!.name;
    expect(outcome).toEqual({ launched: true, runnerName: name });
    expect(name).toMatch(/^kumo-0-3-[0-9a-f]{6}$/);
    expect(gh.jitRequests[0]).toMatchObject({ runner_group_id: 7, labels: SMALL });
    expect(launches).toEqual([{ job: SMALL_JOB, runner: { name, attempt: 3 } }]);
    expect(await h.deps.store.findWarmLaunch(name)).toMatchObject({ id: place.id, runnerId: 1000, execution: "machine-1" });
    expect(h.logs.find(/warm runner launched/)).toMatchObject({ runnerName: name, execution: "machine-1", turn: 3 });
  });

  test("no JIT budget: the launch is forgotten, nothing made", async () => {
    const pacer = { acquire: async () => false, pause: () => undefined } as unknown as JitPacer;
    const { h, octokit, place } = await setUp({ deps: { pacer } });
    expect(await launchWarmRunner(h.deps, octokit, h.probot.log, place, TARGET)).toEqual({ launched: false, reason: "JIT registration budget used up; the next pass tops the pool up" });
    expect(await turns(h)).toEqual([1, 2]);
  });

  test("GitHub's retry-after pauses the budget; the launch is forgotten", async () => {
    const paused: number[] = [];
    const pacer = { acquire: async () => true, pause: (ms: number) => paused.push(ms) } as unknown as JitPacer;
    const { h, octokit, place } = await setUp({ deps: { pacer } });
    track(mockGitHub().canGetToken().failsJitConfig(403, { "retry-after": "12" }, "You have exceeded a secondary rate limit"));

    const outcome = await launchWarmRunner(h.deps, octokit, h.probot.log, place, TARGET);

    expect(outcome).toEqual({ launched: false, reason: expect.stringMatching(/rate limited/) });
    expect(paused).toEqual([12_000]);
    expect(await turns(h)).toEqual([1, 2]);
    expect(h.logs.find(/warm runner not launched/)).toMatchObject({ level: 50, turn: 3 });
  });

  test("a machine that does not start: its registration is removed (or left to reconcile when that fails too), the launch forgotten", async () => {
    const { h, octokit, place } = await setUp();
    track(mockGitHub().canGetToken().generatesJitConfig().deletesRunner(1000, 500));
    track(mockCloudRun().failsRunJob(503, "UNAVAILABLE", "down"));

    const outcome = await launchWarmRunner(h.deps, octokit, h.probot.log, place, TARGET);

    expect(outcome).toEqual({ launched: false, reason: expect.stringMatching(/UNAVAILABLE/) });
    expect(h.logs.find(/could not remove the runner of an undone warm launch/)).toMatchObject({ level: 40, err: expect.stringMatching(/HTTP 500/) });
    expect(await turns(h)).toEqual([1, 2]);
  });

  test("a launch the pool dropped while its runner was made: the runner and its machine are removed", async () => {
    const { h, octokit, place } = await setUp();
    const gh = track(mockGitHub().canGetToken().generatesJitConfig().deletesRunner(1000));
    const cr = track(mockCloudRun().runsJob().cancelsExecution());
    await h.deps.store.dropWarmLaunch(KEY, place.id);

    const outcome = await launchWarmRunner(h.deps, octokit, h.probot.log, place, TARGET);

    expect(outcome).toEqual({ launched: false, reason: "the pool no longer counts this launch (a pass retired it meanwhile)" });
    expect(gh.deletedRunners).toEqual([1000]);
    expect(cr.cancelled).toHaveLength(1);
  });
});

describe("launchRunner's outcome, called directly", () => {
  const track = trackMocks();

  const { maxRunners: _cap, ...UNCAPPED } = TARGET;

  async function claimed(h: ReturnType<typeof createHarness>, target: RunnerTarget = TARGET) {
    const jobId = newJobId();
    const { record } = await h.deps.store.claim(newJob(jobId, { target }));
    const octokit = (await h.probot.auth(INSTALLATION_ID)) as Octokit;
    return { jobId, record: { ...record, target }, octokit };
  }

  test("enqueued: not launched here, deferred, and said so", async () => {
    const h = createHarness({ deps: { queue: fakeQueue() } });
    const { record, octokit } = await claimed(h);
    expect(await launchRunner(h.deps, octokit, h.probot.log, record)).toEqual({ launched: false, state: "queued", reason: "launch enqueued", deferred: true });
  });

  test("capacity full: waiting, deferred, and the caller looks again; the line says which attempt", async () => {
    const h = createHarness();
    const { key, name } = capacityOf(ORG, TARGET)!;
    await h.deps.store.takeSlot(key, 1, { jobId: 1, org: ORG, name });
    const { jobId, record, octokit } = await claimed(h);
    const reason = "maxRunners 1 of [kumo, small] reached; launched when a runner frees";
    expect(await launchRunner(h.deps, octokit, h.probot.log, record)).toEqual({ launched: false, state: "waiting", reason, deferred: true, capacityMayBeFree: true });
    expect(h.logs.find(/maxRunners 1 of \[kumo, small\] reached/)).toMatchObject({ level: 30, attempt: 1 });
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "waiting", lastError: reason });
  });

  test("a machine that fails with something that is not an Error: its text is the reason, and it may pass (pending)", async () => {
    const launcher = {
      launch: async () => {
        throw "quota check timed out"; // eslint-disable-line no-throw-literal
      },
      cancel: async () => undefined,
    };
    const h = createHarness({ deps: { launcher: launcher as never } });
    track(mockGitHub().canGetToken().generatesJitConfig().deletesRunner(1000));
    const { jobId, record, octokit } = await claimed(h, UNCAPPED);

    const outcome = await launchRunner(h.deps, octokit, h.probot.log, record);

    expect(outcome).toEqual({ launched: false, state: "pending", reason: "quota check timed out" });
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "pending", lastError: "quota check timed out" });
  });

  test("the runner of a failed launch that cannot be removed is left to reconcile, and said so", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().generatesJitConfig().deletesRunner(1000, 500));
    track(mockCloudRun().failsRunJob(503, "UNAVAILABLE", "down"));
    const { record, octokit } = await claimed(h, UNCAPPED);

    const outcome = await launchRunner(h.deps, octokit, h.probot.log, record);

    expect(outcome).toMatchObject({ launched: false, state: "pending" });
    expect(h.logs.find(/could not remove the runner of an undone launch; reconcile will/)).toMatchObject({ level: 40, runnerName: expect.stringMatching(/^kumo-/), err: expect.stringMatching(/HTTP 500/) });
  });

  test("a slot that cannot be given back: the outcome does not claim capacity may be free", async () => {
    const store = emulatorStore();
    store.releaseSlot = async () => {
      throw new Error("UNAVAILABLE");
    };
    const h = createHarness({ store });
    track(mockGitHub().canGetToken().generatesJitConfig().deletesRunner(1000));
    track(mockCloudRun().failsRunJob(503, "UNAVAILABLE", "down"));
    const { record, octokit } = await claimed(h);

    const outcome = await launchRunner(h.deps, octokit, h.probot.log, record);

    expect(outcome).toEqual({ launched: false, state: "pending", reason: expect.stringMatching(/UNAVAILABLE/) });
    expect(h.logs.find(/could not record the failed launch/)).toMatchObject({ err: "UNAVAILABLE" });
  });

  test("launched: the line gives how long JIT and the machine took", async () => {
    const h = createHarness();
    const gh = track(mockGitHub().canGetToken().generatesJitConfig());
    track(mockCloudRun().runsJob());
    const { record, octokit } = await claimed(h, UNCAPPED);
    const started = performance.now();

    await launchRunner(h.deps, octokit, h.probot.log, record);

    const elapsed = performance.now() - started;
    const line = h.logs.find(/runner launched/)!;
    expect(line).toMatchObject({ attempt: 1, runnerName: gh.jitRequests[0]!.name, runnerId: 1000 });
    expect(line.jitMs).toBeGreaterThanOrEqual(0);
    expect(line.jitMs).toBeLessThanOrEqual(Math.ceil(elapsed));
    expect(line.runJobMs).toBeGreaterThanOrEqual(0);
  });
});
