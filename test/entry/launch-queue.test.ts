import { afterAll, afterEach, beforeAll, describe, expect, jest, test } from "@jest/globals";
import { FakeCloudTasks } from "../../bench/fakes/cloud-tasks.js";
import { BENCH_ORG, BENCH_REPO, RUNNER_GROUP } from "../../bench/fakes/github.js";
import {
  benchJobPayload,
  closeFirestores,
  freePort,
  postWebhook,
  processEnv,
  readJob,
  startScript,
  startStandIns,
  stopAll,
  uniqueProject,
  waitFor,
  type Proc,
  type StandIns,
} from "../helpers/processes.js";

// The launch queue as deployed: `npm start` enqueues each launch as a Cloud Tasks task,
// the queue stand-in dispatches it with a signed OIDC token to the service's launch route,
// which registers the JIT runner and starts the execution.
jest.setTimeout(60_000);

const QUEUE = "projects/kumo-test/locations/us-central1/queues/kumo-launch";
const ACCOUNT = "kumo-app@kumo-test.iam.gserviceaccount.com";
let nextJobId = 7_500_000;

describe("launches through a Cloud Tasks queue", () => {
  let s: StandIns;
  let tasks: FakeCloudTasks;
  let project: string;
  let server: Proc;
  let env: Record<string, string>;
  let base: string;
  let route: string;

  beforeAll(async () => {
    s = await startStandIns();
    tasks = await new FakeCloudTasks({ maxDispatchesPerSecond: 50, minBackoffMs: 100 }).listen();
    project = uniqueProject();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    route = `${base}/api/kumo/launch`;
    env = processEnv(s, {
      project,
      port,
      extra: {
        KUMO_LAUNCH_QUEUE: QUEUE,
        KUMO_TASKS_URL: route,
        KUMO_TASKS_SERVICE_ACCOUNT: ACCOUNT,
        KUMO_OIDC_CERTS_URL: tasks.certsUrl,
        CLOUD_TASKS_API_ENDPOINT: tasks.url,
      },
    });
    server = startScript("start", env);
    await server.waitForHttp(port, "/ping");
  });
  afterEach(() => {
    tasks.unreachable = false;
  });
  afterAll(async () => {
    await stopAll();
    await tasks?.close();
    await s?.close();
    await closeFirestores();
  });

  const runners = (jobId: number) => ({ registrations: s.github.liveRegistrations(jobId).length, executions: s.cloudRun.executionsOf(jobId).length });
  const launched = (jobId: number) => waitFor(`job ${jobId} launched`, async () => ((await readJob(project, jobId))?.state === "launched" ? true : undefined));

  test("a queued webhook is answered once the task exists; the task launches one runner", async () => {
    const jobId = nextJobId++;
    const res = await postWebhook(`${base}/api/github/webhooks`, "workflow_job", benchJobPayload("queued", jobId));
    expect(res.status).toBe(200);
    expect(tasks.tasks.map((t) => t.name)).toContain(`${QUEUE}/tasks/kumo-${jobId}-1`);
    await launched(jobId);
    await tasks.settled(10_000);
    expect(runners(jobId)).toEqual({ registrations: 1, executions: 1 });
    const task = tasks.task(`kumo-${jobId}-1`)!;
    expect(task).toMatchObject({ url: route, status: "succeeded", attempts: 1, oidcToken: { serviceAccountEmail: ACCOUNT, audience: route } });
    expect(JSON.parse(task.body.toString("utf8"))).toEqual({ jobId, attempt: 1 });
  });

  test("redeliveries of the webhook and a task delivered twice start one runner", async () => {
    const jobId = nextJobId++;
    const payload = benchJobPayload("queued", jobId);
    const guid = "redelivered-guid";
    const answers = await Promise.all([1, 2, 3].map(() => postWebhook(`${base}/api/github/webhooks`, "workflow_job", payload, { guid })));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    await launched(jobId);
    await tasks.settled(10_000);
    // Cloud Tasks delivers at least once: the same task again, with a valid token.
    const again = await fetch(route, {
      method: "POST",
      headers: { authorization: `Bearer ${tasks.signToken(tasks.claimsFor(ACCOUNT, route))}`, "content-type": "application/json" },
      body: JSON.stringify({ jobId, attempt: 1 }),
    });
    expect(again.status).toBe(200);
    expect(await again.json()).toEqual({ skipped: "launched" });
    expect(tasks.tasks.filter((t) => t.name.endsWith(`/kumo-${jobId}-1`))).toHaveLength(1);
    expect(runners(jobId)).toEqual({ registrations: 1, executions: 1 });
  });

  test.each([
    ["no token", 401, (): string | undefined => undefined],
    ["a token signed by another key", 401, () => tasks.signToken(tasks.claimsFor(ACCOUNT, route), { foreignKey: true })],
    ["a token for another audience", 401, () => tasks.signToken(tasks.claimsFor(ACCOUNT, "https://elsewhere.example/launch"))],
    ["an expired token", 401, () => tasks.signToken({ ...tasks.claimsFor(ACCOUNT, route), iat: 1_000, exp: 2_000 })],
    ["a valid token of another account", 403, () => tasks.signToken(tasks.claimsFor("intruder@other.iam.gserviceaccount.com", route))],
    ["an unverified email", 403, () => tasks.signToken({ ...tasks.claimsFor(ACCOUNT, route), email_verified: false })],
  ] as Array<[string, number, () => string | undefined]>)("%s → %s and nothing changes", async (_name, status, token) => {
    const jobId = nextJobId++;
    // A job whose task waits in the (paused) queue: a forged request must not launch it.
    tasks.pause();
    await postWebhook(`${base}/api/github/webhooks`, "workflow_job", benchJobPayload("queued", jobId));
    const before = await readJob(project, jobId);
    const t = token();
    const res = await fetch(route, {
      method: "POST",
      headers: { "content-type": "application/json", ...(t ? { authorization: `Bearer ${t}` } : {}) },
      body: JSON.stringify({ jobId, attempt: 1 }),
    });
    expect(res.status).toBe(status);
    expect(await readJob(project, jobId)).toEqual(before);
    expect(before).toMatchObject({ state: "claimed", enqueued: true });
    expect(s.github.callsTo("jit").filter((c) => c.jobId === jobId)).toHaveLength(0);
    tasks.resume();
    // The real task then launches it, once.
    await launched(jobId);
    await tasks.settled(10_000);
    expect(runners(jobId)).toEqual({ registrations: 1, executions: 1 });
  });

  test("GitHub's secondary rate limit: the route answers 429 with Retry-After, Cloud Tasks retries later, one runner", async () => {
    const jobId = nextJobId++;
    s.github.failNext("jit", { status: 403, body: { message: "You have exceeded a secondary rate limit" }, headers: { "retry-after": "1" } });
    const started = Date.now();
    expect((await postWebhook(`${base}/api/github/webhooks`, "workflow_job", benchJobPayload("queued", jobId))).status).toBe(200);
    await launched(jobId);
    await tasks.settled(10_000);
    const [first, second] = tasks.dispatchesOf(`kumo-${jobId}-1`);
    expect(first).toMatchObject({ status: 429, retryAfterMs: 1_000 });
    expect(second).toMatchObject({ status: 200 });
    expect(second!.start - first!.end).toBeGreaterThanOrEqual(950);
    expect(Date.now() - started).toBeLessThan(8_000);
    expect(s.github.callsTo("jit").filter((c) => c.jobId === jobId).map((c) => c.status)).toEqual([403, 201]);
    expect(runners(jobId)).toEqual({ registrations: 1, executions: 1 });
  });

  test("Cloud Tasks unreachable at enqueue: the delivery fails, the job is left pending, and reconcile enqueues it", async () => {
    const jobId = nextJobId++;
    tasks.unreachable = true;
    const res = await postWebhook(`${base}/api/github/webhooks`, "workflow_job", benchJobPayload("queued", jobId));
    expect(res.status).toBeGreaterThanOrEqual(500);
    expect(await readJob(project, jobId)).toMatchObject({ state: "pending", lastError: expect.stringMatching(/^enqueue launch of job \d+: UNAVAILABLE/) });
    tasks.unreachable = false;

    s.github.setJob(jobId, { status: "queued", repo: `${BENCH_ORG}/${BENCH_REPO}` });
    const reconcile = startScript("reconcile", { ...env, PORT: String(await freePort()) });
    const { code } = await reconcile.waitForExit(30_000);
    expect(code).toBe(0);
    await launched(jobId);
    await tasks.settled(10_000);
    expect(tasks.task(`kumo-${jobId}-2`)).toMatchObject({ status: "succeeded" });
    expect(runners(jobId)).toEqual({ registrations: 1, executions: 1 });
    // Reconcile made no JIT call itself: the route did.
    expect(reconcile.lines.filter((l) => l.text.includes("runner launched"))).toEqual([]);
  });
});

describe("a warm pool with a launch queue (npm run reconcile → tasks → the service's launch route)", () => {
  let s: StandIns;
  let tasks: FakeCloudTasks;
  let server: Proc;
  let env: Record<string, string>;

  beforeAll(async () => {
    s = await startStandIns();
    s.github.settingsYaml = `runners:\n  - labels: [kumo, small]\n    group: ${RUNNER_GROUP.name}\n    job: gha-runner-small\n    warm:\n      size: 2\n`;
    tasks = await new FakeCloudTasks({ maxDispatchesPerSecond: 50, minBackoffMs: 100 }).listen();
    const port = await freePort();
    const route = `http://127.0.0.1:${port}/api/kumo/launch`;
    env = processEnv(s, {
      project: uniqueProject(),
      port,
      extra: { KUMO_LAUNCH_QUEUE: QUEUE, KUMO_TASKS_URL: route, KUMO_TASKS_SERVICE_ACCOUNT: ACCOUNT, KUMO_OIDC_CERTS_URL: tasks.certsUrl, CLOUD_TASKS_API_ENDPOINT: tasks.url },
    });
    server = startScript("start", env);
    await server.waitForHttp(port, "/ping");
  });
  afterAll(async () => {
    await stopAll();
    await tasks?.close();
    await s?.close();
    await closeFirestores();
  });

  test("one pass enqueues the pool's launches, the route makes them; a second pass adds nothing", async () => {
    const pass = async () => {
      const reconcile = startScript("reconcile", { ...env, PORT: String(await freePort()) });
      expect((await reconcile.waitForExit(30_000)).code).toBe(0);
      return reconcile;
    };
    const first = await pass();
    await tasks.settled(10_000);
    const warm = s.github.liveRegistrations().filter((r) => /^kumo-0-\d+-/.test(r.name));
    expect(warm.map((r) => r.name).sort()).toEqual([expect.stringMatching(/^kumo-0-1-/), expect.stringMatching(/^kumo-0-2-/)]);
    expect(warm.map((r) => r.labels)).toEqual([["kumo", "small"], ["kumo", "small"]]);
    expect(tasks.tasks.filter((t) => t.name.includes("/tasks/kumo-warm-")).map((t) => t.status)).toEqual(["succeeded", "succeeded"]);
    // The reconcile process enqueued; the service's route registered and launched.
    expect(first.lines.filter((l) => l.text.includes("warm runner launched"))).toEqual([]);
    expect(server.lines.filter((l) => l.text.includes("warm runner launched"))).toHaveLength(2);
    const summary = first.logEntries("stdout").find((e) => e.step === "warm pools");
    expect(summary).toMatchObject({ counts: { pools: 1, target: 2, launched: 2, errors: 0 } });
    expect(first.logEntries("stdout").some((e) => String(e.message).trim().startsWith(`${BENCH_ORG} [kumo, small] → gha-runner-small: warm 0/2`))).toBe(true);

    await pass();
    await tasks.settled(10_000);
    expect(s.github.liveRegistrations().filter((r) => /^kumo-0-\d+-/.test(r.name))).toHaveLength(2);
    expect(s.cloudRun.executionsOf(0)).toHaveLength(2);
  });
});
