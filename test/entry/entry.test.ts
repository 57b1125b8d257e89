import { createHmac, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import nock from "nock";
import { CLOUD_RUN_ENDPOINT, mockCloudRun } from "../helpers/cloud-run.js";
import { INSTALLATION_ID, ORG, REPO, SETTINGS_YAML, workflowJobPayload } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { APP_ID, PRIVATE_KEY, WEBHOOK_SECRET } from "../helpers/harness.js";

// The entry points read their configuration from the environment, as in production.
const PROJECT = `kumo-entry-${randomUUID().slice(0, 8)}`;
Object.assign(process.env, {
  APP_ID: String(APP_ID),
  PRIVATE_KEY,
  WEBHOOK_SECRET,
  GOOGLE_CLOUD_PROJECT: PROJECT,
  CLOUD_RUN_REGION: "us-central1",
  CLOUD_RUN_API_ENDPOINT: CLOUD_RUN_ENDPOINT,
  LOG_LEVEL: "fatal",
  HOST: "127.0.0.1",
});

let nextJobId = 1_300_000;

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

function signedDelivery(body: string, secret = WEBHOOK_SECRET): Record<string, string> {
  return {
    "content-type": "application/json",
    "x-github-event": "workflow_job",
    "x-github-delivery": randomUUID(),
    "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`,
  };
}

/** The dependencies both entry points of this process share (store, settings and group caches). */
async function processDeps() {
  const { productionDeps } = await import("../../app/index.js");
  return productionDeps();
}

/** Empties the process's settings and runner group caches, so a test does not depend on which test ran before. */
async function coldCaches() {
  const deps = await processDeps();
  deps.settings.invalidate(INSTALLATION_ID);
  deps.groups.invalidate(ORG);
}

/** The job's record in the process's store. */
async function recordOf(jobId: number) {
  return (await processDeps()).store.get(jobId);
}

/**
 * Everything a served job would use: token, settings, runner groups, JIT and runJob, each answering once.
 * The test compares nock's pending interceptors before and after to show that none was used.
 */
async function everythingAJobWouldUse() {
  await coldCaches();
  mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, [{ id: 7, name: "cloudrun" }]).generatesJitConfig();
  mockCloudRun().runsJob();
  const pending = nock.pendingMocks();
  expect(pending).toHaveLength(5);
  return pending;
}

/** Sends a signed queued webhook to `url` and returns the status; GitHub and Cloud Run are nock. */
async function deliverQueued(url: string, secret?: string) {
  const jobId = nextJobId++;
  const body = JSON.stringify(workflowJobPayload("queued", { id: jobId, labels: ["kumo", "small"] }));
  const res = await fetch(url, { method: "POST", headers: signedDelivery(body, secret), body });
  return { status: res.status, jobId };
}

describe("entry points", () => {
  beforeAll(() => {
    nock.disableNetConnect();
    nock.enableNetConnect("127.0.0.1");
  });
  afterEach(() => nock.cleanAll());
  afterAll(() => nock.enableNetConnect());

  describe("Cloud Run functions (functions framework)", () => {
    let server: Server;
    let url: string;
    beforeAll(async () => {
      await import("../../app/entry/function.js");
      const { getTestServer } = await import("@google-cloud/functions-framework/testing");
      server = getTestServer("kumo");
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/github/webhooks`;
    });
    afterAll(() => new Promise((resolve) => server.close(resolve)));

    test("a signed real webhook → 200, and the fast path launches a runner", async () => {
      await coldCaches();
      const gh = mockGitHub().mayGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, [{ id: 7, name: "cloudrun" }]).generatesJitConfig();
      const cr = mockCloudRun().runsJob();
      const { status, jobId } = await deliverQueued(url);
      expect(status).toBe(200);
      expect(gh.jitRequests[0]!.name).toMatch(new RegExp(`^kumo-${jobId}-1-`));
      expect(cr.runJobCalls[0]!.job).toBe(`projects/${PROJECT}/locations/us-central1/jobs/gha-runner-small`);
      expect(await recordOf(jobId)).toMatchObject({ state: "launched", attempts: 1, runnerName: gh.jitRequests[0]!.name });
      gh.done();
      cr.done();
    });

    test("a bad signature → 401; no GitHub or Cloud Run call, no record", async () => {
      const pending = await everythingAJobWouldUse();
      const { status, jobId } = await deliverQueued(url, "not-the-secret");
      expect(status).toBe(401);
      expect(nock.pendingMocks()).toEqual(pending);
      expect(await recordOf(jobId)).toBeUndefined();
    });

    test("another path → 404", async () => {
      expect((await fetch(url.replace("/api/github/webhooks", "/nope"))).status).toBe(404);
    });
  });

  describe("server (npm start)", () => {
    let stop: () => Promise<unknown>;
    let base: string;
    beforeAll(async () => {
      process.env.PORT = String(await freePort());
      const { startServer } = await import("../../app/entry/server.js");
      const server = await startServer();
      stop = () => server.stop();
      base = `http://127.0.0.1:${server.port}`;
    });
    afterAll(() => stop());

    test("/ping answers PONG", async () => {
      const res = await fetch(`${base}/ping`);
      expect(res.status).toBe(200);
      expect(await res.text()).toBe("PONG");
    });

    test("a signed real webhook → 200, and the fast path launches a runner", async () => {
      await coldCaches();
      const gh = mockGitHub().mayGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, [{ id: 7, name: "cloudrun" }]).generatesJitConfig();
      const cr = mockCloudRun().runsJob();
      const { status, jobId } = await deliverQueued(`${base}/api/github/webhooks`);
      expect(status).toBe(200);
      expect(gh.jitRequests[0]!.name).toMatch(new RegExp(`^kumo-${jobId}-1-`));
      expect(cr.runJobCalls[0]!.job).toBe(`projects/${PROJECT}/locations/us-central1/jobs/gha-runner-small`);
      expect(await recordOf(jobId)).toMatchObject({ state: "launched", attempts: 1, runnerName: gh.jitRequests[0]!.name });
      gh.done();
      cr.done();
    });

    test("a bad signature → 401; no GitHub or Cloud Run call, no record", async () => {
      const pending = await everythingAJobWouldUse();
      const { status, jobId } = await deliverQueued(`${base}/api/github/webhooks`, "wrong");
      expect(status).toBe(401);
      expect(nock.pendingMocks()).toEqual(pending);
      expect(await recordOf(jobId)).toBeUndefined();
    });

    const valid = (id: number) => workflowJobPayload("queued", { id, labels: ["kumo", "small"] });
    const withoutJob = (id: number) => {
      const { workflow_job: _job, ...rest } = valid(id);
      return rest;
    };
    const withoutInstallation = (id: number) => {
      const { installation: _i, ...rest } = valid(id);
      return rest;
    };
    const withLabels = (id: number, labels: string[], extra: Record<string, unknown> = {}) => {
      const payload = valid(id);
      return { ...payload, workflow_job: { ...payload.workflow_job, labels }, ...extra };
    };
    test.each([
      ["a truncated body", 400, "workflow_job", (id: number) => JSON.stringify(valid(id)).slice(0, 200)],
      ["a payload without workflow_job", 200, "workflow_job", (id: number) => JSON.stringify(withoutJob(id))],
      ["a payload without installation", 200, "workflow_job", (id: number) => JSON.stringify(withoutInstallation(id))],
      ["10,000 labels", 200, "workflow_job", (id: number) => JSON.stringify(withLabels(id, Array.from({ length: 10_000 }, (_, i) => `l${i}`)))],
      // Over the body limit (KUMO_MAX_BODY_KB, 512 KiB): refused before its signature is checked.
      ["a 5 MB body", 413, "workflow_job", (id: number) => JSON.stringify(withLabels(id, ["kumo", "small"], { padding: "x".repeat(5 * 1024 * 1024) }))],
      ["an unknown action", 200, "workflow_job", (id: number) => JSON.stringify({ ...valid(id), action: "teleported" })],
      ["an unknown event", 200, "weather_report", (id: number) => JSON.stringify(valid(id))],
      ["not JSON at all", 400, "workflow_job", () => "<xml/>"],
    ])("%s → %i, nothing is created, and the server keeps serving", async (_name, expected, event, body) => {
      await coldCaches();
      // Settings may be read (the job is not known to be unserved before); nothing else may be called.
      const gh = mockGitHub().mayGetToken();
      gh.scope.get(/contents/).optionally().reply(200, SETTINGS_YAML, { "content-type": "application/vnd.github.v3.raw; charset=utf-8" });
      gh.hasRunnerGroups(REPO, [{ id: 7, name: "cloudrun" }]).generatesJitConfig();
      const cr = mockCloudRun().runsJob();
      const untouched = nock.pendingMocks();
      expect(untouched).toHaveLength(3);
      const jobId = nextJobId++;
      const text = body(jobId);

      const res = await fetch(`${base}/api/github/webhooks`, { method: "POST", headers: { ...signedDelivery(text), "x-github-event": event }, body: text });

      expect(res.status).toBe(expected);
      expect((await fetch(`${base}/ping`)).status).toBe(200);
      // No runner group, JIT or Cloud Run call, and no record of the job.
      expect(nock.pendingMocks()).toEqual(untouched);
      expect(gh.jitRequests).toEqual([]);
      expect(cr.runJobCalls).toEqual([]);
      expect(await recordOf(jobId)).toBeUndefined();
    });
  });
});
