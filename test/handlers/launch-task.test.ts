import { createSign, generateKeyPairSync } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { describe, expect, test } from "@jest/globals";
import nock from "nock";
import { launchTaskRoute } from "../../app/handlers/launch-task.js";
import type { LaunchQueue } from "../../app/launch-queue/queue.js";
import { capacityOf, type NewJob } from "../../app/store/job-store.js";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { INSTALLATION_ID, ORG, REPO } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { createHarness, trackMocks, useNock, type Harness } from "../helpers/harness.js";

useNock();

const CERTS = "https://certs.kumo.test";
const ROUTE = "https://kumo.example/api/kumo/launch";
const ACCOUNT = "kumo-tasks@kumo-test.iam.gserviceaccount.com";
const ENV = {
  KUMO_LAUNCH_QUEUE: "projects/kumo-test/locations/us-central1/queues/kumo-launch",
  KUMO_TASKS_URL: ROUTE,
  KUMO_TASKS_SERVICE_ACCOUNT: ACCOUNT,
  KUMO_OIDC_CERTS_URL: `${CERTS}/oauth2/v1/certs`,
};
const SMALL = ["kumo", "small"];
const SMALL_JOB = "projects/kumo-test/locations/us-central1/jobs/gha-runner-small";
const TARGET = { labels: SMALL, group: "cloudrun", groupId: 7, job: SMALL_JOB };
let nextJobId = 1_900_000;
const newJobId = () => nextJobId++;

// Google's signing key, as the certs endpoint publishes it, and another one nobody publishes.
const google = generateKeyPairSync("rsa", { modulusLength: 2048 });
const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 });
const KID = "kumo-test-key";
const b64 = (value: string | Buffer) => Buffer.from(value).toString("base64url");

/** A Google-style OIDC token, as Cloud Tasks sends for `email`. */
function idToken(claims: Record<string, unknown> = {}, key = google.privateKey): string {
  const now = Math.floor(Date.now() / 1000);
  const payload = { iss: "https://accounts.google.com", aud: ROUTE, sub: "1234567890", azp: "1234567890", email: ACCOUNT, email_verified: true, iat: now, exp: now + 3600, ...claims };
  const signed = `${b64(JSON.stringify({ alg: "RS256", kid: KID, typ: "JWT" }))}.${b64(JSON.stringify(payload))}`;
  return `${signed}.${b64(createSign("RSA-SHA256").update(signed).sign(key))}`;
}

function publishesCerts() {
  return nock(CERTS)
    .get("/oauth2/v1/certs")
    .times(5)
    .optionally()
    .reply(200, { [KID]: google.publicKey.export({ type: "spki", format: "pem" }).toString() }, { "cache-control": "public, max-age=300" });
}

interface Answer {
  handled: boolean;
  status?: number;
  headers?: Record<string, string>;
  body?: Record<string, unknown>;
}

type Route = NonNullable<ReturnType<typeof launchTaskRoute>>;
type Request = { method?: string; url?: string; token?: string | null; body?: unknown };

/** One request to the launch route of the harness's app, answered in-process. */
function call(h: Harness, options: Request): Promise<Answer> {
  return callRoute(launchTaskRoute(h.deps, h.probot, h.probot.log)!, options);
}

async function callRoute(route: Route, options: Request): Promise<Answer> {
  const raw = options.body === undefined ? "" : typeof options.body === "string" ? options.body : JSON.stringify(options.body);
  const req = Object.assign(Readable.from(raw ? [Buffer.from(raw)] : []), {
    method: options.method ?? "POST",
    url: options.url ?? "/api/kumo/launch",
    headers: {
      "x-cloudtasks-taskname": "kumo-task",
      ...(options.token === null ? {} : { authorization: `Bearer ${options.token ?? idToken()}` }),
    },
  }) as unknown as IncomingMessage;
  const answer: Answer = { handled: false };
  const res = {
    writeHead(status: number, headers: Record<string, string>) {
      Object.assign(answer, { status, headers });
      return res;
    },
    end(body: string) {
      answer.body = JSON.parse(body) as Record<string, unknown>;
      return res;
    },
  } as unknown as ServerResponse;
  answer.handled = await route(req, res);
  return answer;
}

const noQueue: LaunchQueue = {
  enqueues: true,
  enqueue: () => Promise.reject(new Error("the launch route does not enqueue")),
  enqueueWarm: () => Promise.reject(new Error("the launch route does not enqueue")),
};

function newJob(jobId: number, extra: Partial<NewJob> = {}): NewJob {
  return { jobId, runId: 1, runAttempt: 1, installationId: INSTALLATION_ID, org: ORG, repo: `${ORG}/${REPO}`, labels: SMALL, target: TARGET, ...extra };
}

/** A harness with the launch queue configured and a job whose launch was enqueued (claim attempt 1). */
async function withTask(extra: Partial<NewJob> = {}) {
  const h = createHarness({ env: ENV, deps: { queue: noQueue } });
  const jobId = newJobId();
  await h.deps.store.claim(newJob(jobId, extra));
  await h.deps.store.markEnqueued(jobId, 1, 900_000);
  return { h, jobId };
}

describe("the launch route: Cloud Tasks' launches", () => {
  const track = trackMocks();

  test("only POSTs to its own path are its (a query string is fine)", async () => {
    const h = createHarness({ env: ENV, deps: { queue: noQueue } });
    expect(await call(h, { method: "GET" })).toEqual({ handled: false });
    expect(await call(h, { url: "/api/github/webhooks" })).toEqual({ handled: false });
    expect(await call(h, { url: "/api/kumo/launch/more" })).toEqual({ handled: false });
    expect(await call(h, { url: "/api/kumo/launch?x=1", token: null })).toMatchObject({ handled: true, status: 401 });
  });

  test("no route without a launch queue", () => {
    const h = createHarness();
    expect(launchTaskRoute(h.deps, h.probot, h.probot.log)).toBeUndefined();
  });

  test.each([
    ["no token", null, 401, "no bearer token"],
    ["a token signed by another key", idToken({}, stranger.privateKey), 401, /^token refused: /],
    ["an expired token", idToken({ iat: 1_000, exp: 4_600 }), 401, /^token refused: /],
    ["a token for another audience", idToken({ aud: "https://elsewhere.example/" }), 401, /^token refused: /],
    ["another account's token", idToken({ email: "someone@evil.example" }), 403, `token of someone@evil.example, not of ${ACCOUNT}`],
    ["an unverified email", idToken({ email_verified: false }), 403, `token of ${ACCOUNT}, not of ${ACCOUNT}`],
  ])("refused: %s", async (_name, token, status, error) => {
    publishesCerts();
    const { h, jobId } = await withTask();
    const answer = await call(h, { token, body: { jobId, attempt: 1 } });
    expect(answer).toMatchObject({ handled: true, status, headers: { "content-type": "application/json" } });
    expect(answer.body!.error).toEqual(typeof error === "string" ? error : expect.stringMatching(error));
    expect(h.logs.find(/launch task refused/)).toMatchObject({ level: 40, task: "kumo-task", status });
    // Nothing was taken.
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "claimed", enqueued: true });
  });

  test.each([
    ["not JSON", "jobId=1"],
    ["a missing attempt", { jobId: 5 }],
    ["attempt 0", { jobId: 5, attempt: 0 }],
    ["a fractional job id", { jobId: 1.5, attempt: 1 }],
    ["an extra field", { jobId: 5, attempt: 1, force: true }],
  ])("a valid token but %s: 400", async (_name, body) => {
    publishesCerts();
    const h = createHarness({ env: ENV, deps: { queue: noQueue } });
    expect(await call(h, { body })).toEqual({ handled: true, status: 400, headers: { "content-type": "application/json" }, body: { error: expect.stringMatching(/^expected \{jobId, attempt\}/) } });
  });

  test("the body is read up to 8 KiB: a valid task padded to 8 KiB is read, one byte more is refused", async () => {
    publishesCerts();
    const h = createHarness({ env: ENV, deps: { queue: noQueue } });
    const body = `{"jobId":${newJobId()},"attempt":1}`;
    expect(await call(h, { body: body.padEnd(8192, " ") })).toMatchObject({ status: 200, body: { skipped: "no such job" } });
    expect(await call(h, { body: body.padEnd(8193, " ") })).toMatchObject({ status: 400 });
    // In two chunks: their sizes add up.
    const route = launchTaskRoute(h.deps, h.probot, h.probot.log)!;
    const half = body.padEnd(5000, " ");
    const req = Object.assign(Readable.from([Buffer.from(half), Buffer.from(" ".repeat(5000))]), {
      method: "POST",
      url: "/api/kumo/launch",
      headers: { authorization: `Bearer ${idToken()}` },
    }) as unknown as IncomingMessage;
    let status = 0;
    const res = { writeHead: (s: number) => ((status = s), res), end: () => res } as unknown as ServerResponse;
    await route(req, res);
    expect(status).toBe(400);
  });

  test("a store failure other than a missing record fails the request (Cloud Tasks retries it)", async () => {
    publishesCerts();
    const { h, jobId } = await withTask();
    h.deps.store.takeTask = async () => {
      throw new Error("14 UNAVAILABLE: Firestore unreachable");
    };
    await expect(call(h, { body: { jobId, attempt: 1 } })).rejects.toThrow("UNAVAILABLE");
  });

  test("a task without its name header is still served; its log lines name no task", async () => {
    publishesCerts();
    const h = createHarness({ env: ENV, deps: { queue: noQueue } });
    const route = launchTaskRoute(h.deps, h.probot, h.probot.log)!;
    const req = Object.assign(Readable.from([]), { method: "POST", url: "/api/kumo/launch", headers: {} }) as unknown as IncomingMessage;
    let status = 0;
    const res = { writeHead: (s: number) => ((status = s), res), end: () => res } as unknown as ServerResponse;
    expect(await route(req, res)).toBe(true);
    expect(status).toBe(401);
    expect(h.logs.find(/launch task refused/)).toMatchObject({ task: "" });
  });

  test("a task whose job has no record: done, nothing to do", async () => {
    publishesCerts();
    const h = createHarness({ env: ENV, deps: { queue: noQueue } });
    expect(await call(h, { body: { jobId: newJobId(), attempt: 1 } })).toMatchObject({ handled: true, status: 200, body: { skipped: "no such job" } });
  });

  test("the task launches the runner once; the same task again has nothing left to do", async () => {
    publishesCerts();
    const { h, jobId } = await withTask();
    const gh = track(mockGitHub().canGetToken().generatesJitConfig());
    const cr = track(mockCloudRun().runsJob());

    expect(await call(h, { body: { jobId, attempt: 1 } })).toMatchObject({ status: 200, body: { launched: gh.jitRequests[0]!.name } });
    expect(await call(h, { body: { jobId, attempt: 1 } })).toMatchObject({ status: 200, body: { skipped: "launched" } });
    // A task of another attempt.
    expect(await call(h, { body: { jobId, attempt: 2 } })).toMatchObject({ status: 200, body: { skipped: "launched" } });

    expect(cr.runJobCalls).toHaveLength(1);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "launched", attempts: 1, taskTaken: true, runnerName: gh.jitRequests[0]!.name });
    expect(h.logs.find(/launch task has nothing left to do/)).toMatchObject({ jobId, attempt: 1, task: "kumo-task", state: "launched", attempts: 1 });
  });

  test("a launch that failed for good: done (no retry), and the job's commit says why", async () => {
    publishesCerts();
    const { h, jobId } = await withTask({ headSha: "a".repeat(40), name: "build" });
    const gh = track(mockGitHub().canGetToken().generatesJitConfig().deletesRunner(1000).createsCheckRun(`${ORG}/${REPO}`));
    track(mockCloudRun().failsRunJob(403, "PERMISSION_DENIED", "caller lacks run.jobs.runWithOverrides"));

    const answer = await call(h, { body: { jobId, attempt: 1 } });

    expect(answer).toMatchObject({ status: 200, body: { failed: expect.stringMatching(/PERMISSION_DENIED/) } });
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "failed" });
    expect(gh.checkRuns).toHaveLength(1);
    expect(gh.checkRuns[0]!.body).toMatchObject({ head_sha: "a".repeat(40), output: { title: "Kumo gave up starting a runner for this job" } });
  });

  test("a launch that failed for good updates the check run of a job explained before", async () => {
    publishesCerts();
    const { h, jobId } = await withTask({ headSha: "b".repeat(40), name: "build" });
    await h.deps.store.explanation(jobId, { jobId, repo: `${ORG}/${REPO}`, headSha: "b".repeat(40), reason: "capacity" });
    await h.deps.store.setExplanation(jobId, { checkRunId: 555 });
    const gh = track(mockGitHub().canGetToken().generatesJitConfig().deletesRunner(1000).updatesCheckRun(`${ORG}/${REPO}`, 555));
    track(mockCloudRun().failsRunJob(403, "PERMISSION_DENIED", "caller lacks run.jobs.runWithOverrides"));

    expect(await call(h, { body: { jobId, attempt: 1 } })).toMatchObject({ status: 200, body: { failed: expect.stringMatching(/PERMISSION_DENIED/) } });
    expect(gh.checkRuns).toEqual([expect.objectContaining({ method: "PATCH" })]);
    expect(gh.checkRuns[0]!.body.output.title).toBe("Kumo gave up starting a runner for this job");
  });

  test("GitHub asked to slow down: 429 with its retry-after, and the job pending until then", async () => {
    publishesCerts();
    const { h, jobId } = await withTask();
    track(mockGitHub().canGetToken().failsJitConfig(403, { "retry-after": "30" }, "You have exceeded a secondary rate limit"));

    const answer = await call(h, { body: { jobId, attempt: 1 } });

    expect(answer).toMatchObject({ status: 429, body: { pending: expect.stringMatching(/rate limited/) } });
    expect(Number(answer.headers!["retry-after"])).toBeGreaterThanOrEqual(29);
    expect(Number(answer.headers!["retry-after"])).toBeLessThanOrEqual(30);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "pending", attempts: 1 });
  });

  test("another failure that may pass: 503, Cloud Tasks retries", async () => {
    publishesCerts();
    const { h, jobId } = await withTask();
    track(mockGitHub().canGetToken().generatesJitConfig().deletesRunner(1000));
    track(mockCloudRun().failsRunJob(503, "UNAVAILABLE", "the service is unavailable"));

    const answer = await call(h, { body: { jobId, attempt: 1 } });

    expect(answer).toMatchObject({ status: 503, body: { pending: expect.stringMatching(/the service is unavailable/) } });
    expect(answer.headers!["retry-after"]).toBeUndefined();
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "pending", attempts: 1 });
  });

  test("capacity full: the job waits, the task is done", async () => {
    publishesCerts();
    const { h, jobId } = await withTask({ target: { ...TARGET, maxRunners: 1 } });
    // Another job holds the only slot. No GitHub interceptor: nothing is called.
    await h.deps.store.takeSlot(capacityOf(ORG, { ...TARGET, maxRunners: 1 })!.key, 1, { jobId: 1, org: ORG, name: "n" });

    const answer = await call(h, { body: { jobId, attempt: 1 } });

    expect(answer).toMatchObject({ status: 200, body: { waiting: expect.stringMatching(/^maxRunners 1 of \[kumo, small\] reached/) } });
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "waiting" });
  });

  test("no installation token: the job is left pending, 503", async () => {
    publishesCerts();
    const { h, jobId } = await withTask();
    const probot = {
      auth: async () => {
        throw new Error("Integration not found\nsecond line");
      },
    };
    const route = launchTaskRoute(h.deps, probot as never, h.probot.log)!;
    const answer = await callRoute(route, { body: { jobId, attempt: 1 } });

    expect(answer).toMatchObject({ status: 503, body: { pending: "installation token: Integration not found" } });
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "pending", lastError: "installation token: Integration not found" });
    expect(h.logs.find(/runner not launched/)).toMatchObject({ level: 50, jobId, attempt: 1, reason: "installation token: Integration not found" });
  });
});

describe("the launch route: a warm pool's launches", () => {
  const track = trackMocks();
  const KEY = "0123456789abcdef01234567";
  const holder = { org: ORG, name: `${ORG} [kumo, small] → gha-runner-small` };

  /** A harness whose pool decided one launch (turn 1). */
  async function withLaunch() {
    const h = createHarness({ env: ENV, deps: { queue: noQueue } });
    const [launch] = await h.deps.store.updateWarmPool(KEY, holder, (launches) => ({ keep: launches, add: 1 }));
    const task = (extra: Record<string, unknown> = {}) => ({ warm: { key: KEY, id: launch!.id, turn: launch!.turn, org: ORG, installationId: INSTALLATION_ID, target: TARGET, ...extra } });
    return { h, launch: launch!, task };
  }

  test("the pool still counts the launch: one warm runner is launched and recorded; the same task again does nothing", async () => {
    publishesCerts();
    const { h, launch, task } = await withLaunch();
    const gh = track(mockGitHub().canGetToken().generatesJitConfig());
    const cr = track(mockCloudRun().runsJob());

    expect(await call(h, { body: task() })).toMatchObject({ status: 200, body: { launched: gh.jitRequests[0]!.name } });
    expect(await call(h, { body: task() })).toMatchObject({ status: 200, body: { skipped: "warm launch taken or dropped" } });

    expect(gh.jitRequests[0]).toMatchObject({ runner_group_id: 7, labels: TARGET.labels });
    expect(cr.runJobCalls).toHaveLength(1);
    expect(await h.deps.store.listWarmLaunches(KEY)).toEqual([expect.objectContaining({ id: launch.id, taken: true, runnerName: gh.jitRequests[0]!.name })]);
    expect(h.logs.find(/warm runner launched/)).toMatchObject({ task: "kumo-task", org: ORG, turn: 1 });
  });

  test("a launch the pool dropped meanwhile: nothing to do", async () => {
    publishesCerts();
    const { h, launch, task } = await withLaunch();
    await h.deps.store.dropWarmLaunch(KEY, launch.id);
    // No GitHub interceptor: nothing is called.
    expect(await call(h, { body: task() })).toMatchObject({ status: 200, body: { skipped: "warm launch taken or dropped" } });
  });

  test("a warm launch that fails is forgotten and not retried by the queue", async () => {
    publishesCerts();
    const { h, task } = await withLaunch();
    const gh = track(mockGitHub().canGetToken().generatesJitConfig().deletesRunner(1000));
    track(mockCloudRun().failsRunJob(403, "PERMISSION_DENIED", "caller lacks run.jobs.runWithOverrides"));

    expect(await call(h, { body: task() })).toMatchObject({ status: 200, body: { failed: expect.stringMatching(/PERMISSION_DENIED/) } });
    expect(gh.deletedRunners).toEqual([1000]);
    expect(await h.deps.store.listWarmLaunches(KEY)).toEqual([]);
  });

  test("no installation token: the launch is forgotten, the next pass decides again", async () => {
    publishesCerts();
    const { h, task } = await withLaunch();
    const probot = {
      auth: async () => {
        throw new Error("Integration not found");
      },
    };
    const answer = await callRoute(launchTaskRoute(h.deps, probot as never, h.probot.log)!, { body: task() });
    expect(answer).toMatchObject({ status: 200, body: { failed: "installation token: Integration not found" } });
    expect(await h.deps.store.listWarmLaunches(KEY)).toEqual([]);
  });

  test.each([
    ["a key that is not a pool's", { key: "not-a-key" }],
    ["an id that is not a launch's", { id: "xyz" }],
    ["turn 0", { turn: 0 }],
    ["an unknown field", { force: true }],
  ])("a warm task with %s: 400", async (_name, extra) => {
    publishesCerts();
    const { h, task } = await withLaunch();
    expect(await call(h, { body: task(extra) })).toMatchObject({ status: 400 });
  });
});
