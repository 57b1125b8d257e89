import { createHmac, randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import nock from "nock";
import { CLOUD_RUN_ENDPOINT, mockCloudRun } from "../helpers/cloud-run.js";
import { REPO, SETTINGS_YAML, workflowJobPayload } from "../helpers/fixtures.js";
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
      const gh = mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, [{ id: 7, name: "cloudrun" }]).generatesJitConfig();
      const cr = mockCloudRun().runsJob();
      const { status, jobId } = await deliverQueued(url);
      expect(status).toBe(200);
      expect(gh.jitRequests[0]!.name).toMatch(new RegExp(`^kumo-${jobId}-1-`));
      expect(cr.runJobCalls[0]!.job).toBe(`projects/${PROJECT}/locations/us-central1/jobs/gha-runner-small`);
      gh.done();
      cr.done();
    });

    test("a bad signature → 4xx and nothing runs", async () => {
      const { status } = await deliverQueued(url, "not-the-secret");
      expect(status).toBeGreaterThanOrEqual(400);
      expect(status).toBeLessThan(500);
      expect(nock.pendingMocks()).toEqual([]);
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
      // Settings and runner groups were cached by the process's dependencies, shared with the function entry above.
      const gh = mockGitHub().canGetToken().generatesJitConfig();
      const cr = mockCloudRun().runsJob();
      const { status } = await deliverQueued(`${base}/api/github/webhooks`);
      expect(status).toBe(200);
      expect(cr.runJobCalls).toHaveLength(1);
      gh.done();
      cr.done();
    });

    test("a bad signature → 4xx and nothing runs", async () => {
      const { status } = await deliverQueued(`${base}/api/github/webhooks`, "wrong");
      expect(status).toBeGreaterThanOrEqual(400);
      expect(status).toBeLessThan(500);
    });

    const valid = () => workflowJobPayload("queued", { id: nextJobId++, labels: ["kumo", "small"] });
    const withoutJob = () => {
      const { workflow_job: _job, ...rest } = valid();
      return rest;
    };
    const withoutInstallation = () => {
      const { installation: _i, ...rest } = valid();
      return rest;
    };
    test.each([
      ["a truncated body", () => JSON.stringify(valid()).slice(0, 200), "workflow_job", [400]],
      ["a payload without workflow_job", () => JSON.stringify(withoutJob()), "workflow_job", [200]],
      ["a payload without installation", () => JSON.stringify(withoutInstallation()), "workflow_job", [200]],
      ["10,000 labels", () => JSON.stringify({ ...valid(), workflow_job: { ...valid().workflow_job, labels: Array.from({ length: 10_000 }, (_, i) => `l${i}`) } }), "workflow_job", [200]],
      // Signed by GitHub, so processed like any delivery: here a GitHub-hosted job, ignored.
      ["a 5 MB body", () => JSON.stringify({ ...valid(), workflow_job: { ...valid().workflow_job, labels: ["ubuntu-latest"] }, padding: "x".repeat(5 * 1024 * 1024) }), "workflow_job", [200]],
      ["an unknown action", () => JSON.stringify({ ...valid(), action: "teleported" }), "workflow_job", [200]],
      ["an unknown event", () => JSON.stringify(valid()), "weather_report", [200, 400]],
      ["not JSON at all", () => "<xml/>", "workflow_job", [400]],
    ])("%s → a clear 4xx or an ignored event; nothing is created and the server keeps serving", async (_name, body, event, statuses) => {
      // Settings may be read (the job is not known to be unserved before); nothing else may be called.
      const gh = mockGitHub();
      gh.scope.post(/access_tokens/).optionally().reply(201, { token: "ghs_x", expires_at: new Date(Date.now() + 3_600_000).toISOString() });
      gh.scope.get(/contents/).optionally().reply(200, SETTINGS_YAML, { "content-type": "application/vnd.github.v3.raw; charset=utf-8" });
      const text = body();
      const res = await fetch(`${base}/api/github/webhooks`, { method: "POST", headers: { ...signedDelivery(text), "x-github-event": event }, body: text });
      expect(statuses).toContain(res.status);
      expect((await fetch(`${base}/ping`)).status).toBe(200);
      // No runner group, JIT or Cloud Run call was made (they would fail with "no match" and answer 500).
      expect(res.status).not.toBe(500);
    });
  });
});
