import { afterAll, afterEach, beforeEach, describe, expect, jest, test } from "@jest/globals";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { RUNNER_JOB_PERMISSIONS } from "../../bench/fakes/cloud-run.js";
import { FakeFirestoreAdmin } from "../../bench/fakes/firestore-admin.js";
import { requirementsFromManifest } from "../../app/ops/doctor.js";
import { npmScript, processEnv, Proc, ROOT, startStandIns, stopAll, uniqueProject, type StandIns } from "../helpers/processes.js";

// `npm run doctor` as the process it is: spawned with a deployment's environment against the
// HTTP stand-ins of GitHub, Cloud Run and the Firestore Admin API. Its report is exact lines.
jest.setTimeout(30_000);

const REQUIRED = requirementsFromManifest(readFileSync(join(ROOT, "app.yml"), "utf8"));
const FIX_APP = "set them in the app's settings → Permissions & events, as app.yml lists them; each organization then accepts them";
const FIX_RUN =
  "grant the account Kumo runs as roles/run.jobsExecutorWithOverrides and roles/run.viewer on the job (deploy/deploy.sh does; runner/README.md shows the commands)";
const HOUR = 3_600_000;

let s: StandIns;
let admin: FakeFirestoreAdmin;
let project: string;

const jobName = (job: string) => `projects/${project}/locations/us-central1/jobs/${job}`;
const builtImage = () => `us-central1-docker.pkg.dev/${project}/kumo/gha-runner:3f2a1b0`;

/** Runs `npm run doctor`'s file; resolves to its exit code and the lines of each stream. */
async function doctor(extra: Record<string, string | undefined> = {}) {
  const { file, args } = npmScript("doctor");
  const env = processEnv(s, { project, port: 0, extra: { FIRESTORE_ADMIN_API_ENDPOINT: `http://127.0.0.1:${admin.port}`, ...extra } });
  const p = new Proc("doctor", file, args, env);
  const { code } = await p.waitForExit(20_000);
  const of = (stream: "stdout" | "stderr") => p.lines.filter((l) => l.stream === stream).map((l) => l.text);
  return { code, stdout: of("stdout"), stderr: of("stderr"), output: p.output() };
}

/** Calls a stand-in answered that it does not serve, or refused for the wrong credentials. */
function unexpectedCalls(): string[] {
  return [s.github, s.cloudRun, admin].flatMap((f) => Object.keys(f.counts())).filter((e) => /^(other|unauthorized) /.test(e));
}

/** A deployment as deploy/deploy.sh leaves it: the app as app.yml says, one runner job, both TTL policies, webhooks delivered. */
function healthyWorld() {
  s.github.appEvents = [...REQUIRED.events];
  s.github.appPermissions = { ...REQUIRED.permissions };
  s.cloudRun.defineJob(jobName("gha-runner-small"), { image: builtImage(), maxRetries: 0, taskCount: 1 });
  admin.ttl.set("kumo-jobs.expireAt", "ACTIVE");
  admin.ttl.set("kumo-redeliveries.expireAt", "ACTIVE");
  s.github.recordDelivery({ event: "workflow_job", payload: { action: "queued" }, deliveredAt: new Date(Date.now() - 2 * HOUR) });
  s.github.recordDelivery({ event: "workflow_job", payload: { action: "completed" }, deliveredAt: new Date(Date.now() - HOUR) });
}

const appLines = (permissions = REQUIRED.permissions) => [
  `✔ GitHub App kumo-bench: subscribed to ${REQUIRED.events.join(", ")}`,
  `✔ GitHub App kumo-bench: permissions ${Object.entries(permissions)
    .map(([k, v]) => `${k}: ${v}`)
    .join(", ")}`,
];

beforeEach(async () => {
  project = uniqueProject();
  [s, admin] = await Promise.all([startStandIns(), new FakeFirestoreAdmin().listen()]);
});
afterEach(async () => {
  await Promise.allSettled([s?.close(), admin?.close()]);
});
afterAll(async () => {
  await stopAll();
});

describe("npm run doctor", () => {
  test("a healthy deployment: every line ✔, exit 0, nothing on stderr", async () => {
    healthyWorld();
    const run = await doctor();
    expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({
      code: 0,
      stdout: [
        ...appLines(),
        "✔ bench-org: installed (installation 4242), permissions and events accepted",
        "✔ bench-org: .github/kumo.yml is valid, 1 runner spec",
        '✔ bench-org: runner group "cloudrun": 1 selected repository may use it',
        `✔ Cloud Run job gha-runner-small: image ${builtImage()}, 1 task, maxRetries 0`,
        "✔ Cloud Run job gha-runner-small: may run it with overrides, cancel and read its executions",
        "✔ webhook deliveries: none failed in the last 24 h (2 attempts)",
        "✔ Firestore TTL on kumo-jobs.expireAt: ACTIVE",
        "✔ Firestore TTL on kumo-redeliveries.expireAt: ACTIVE",
        "healthy: 10 checks passed",
      ],
      stderr: [],
    });
    expect(unexpectedCalls()).toEqual([]);
    // What it asked of each: read only, nothing started, registered or redelivered.
    expect(s.cloudRun.counts()).toEqual({ getJob: 1, testIamPermissions: 1 });
    expect(admin.counts()).toEqual({ getField: 2 });
    expect(s.github.liveRegistrations()).toEqual([]);
    expect(s.github.redeliveryRequests).toEqual([]);
  });

  test("against the Firestore emulator without an admin stand-in, the TTL check is skipped, not failed", async () => {
    healthyWorld();
    const run = await doctor({ FIRESTORE_ADMIN_API_ENDPOINT: undefined });
    expect(run.code).toBe(0);
    expect(run.stdout.slice(-3)).toEqual([
      "- Firestore TTL on kumo-jobs.expireAt: skipped, the Firestore emulator (FIRESTORE_EMULATOR_HOST) has no admin API",
      "- Firestore TTL on kumo-redeliveries.expireAt: skipped, the Firestore emulator (FIRESTORE_EMULATOR_HOST) has no admin API",
      "healthy: 8 checks passed",
    ]);
    expect(admin.counts()).toEqual({});
  });

  test("a broken deployment: one ✗ line with its fix per problem, exit 1", async () => {
    healthyWorld();
    // The app lost a permission.
    const { actions: _actions, ...permissions } = REQUIRED.permissions;
    s.github.appPermissions = { ...permissions };
    // Specs naming a job that does not exist, one the app may not run with overrides, one of a foreign image, a group that does not exist.
    s.github.settingsYaml = [
      "runners:",
      "  - {labels: [kumo, small], group: cloudrun, job: gha-runner-small}",
      "  - {labels: [kumo, large], group: cloudrun, job: gha-runner-large}",
      "  - {labels: [kumo, gpu], group: cloudrun, job: gha-runner-gpu}",
      "  - {labels: [kumo, foreign], group: nope, job: gha-runner-foreign}",
      "",
    ].join("\n");
    s.cloudRun.defineJob(jobName("gha-runner-gpu"), { image: builtImage(), maxRetries: 0, granted: RUNNER_JOB_PERMISSIONS.filter((p) => p !== "run.jobs.runWithOverrides") });
    s.cloudRun.defineJob(jobName("gha-runner-foreign"), { image: "docker.io/library/ubuntu:24.04" });
    // A second organization whose settings do not parse.
    s.github.addOrg("other-org", { settingsYaml: "runners:\n  - labels: [kumo]\n    job: Not_A_Job\n" });
    // Webhooks that never arrived; one that did on its redelivery; one too old to matter.
    const now = Date.now();
    s.github.recordDelivery({ event: "push", payload: {}, status: "failed to connect to host", deliveredAt: new Date(now - 20 * 60_000) });
    s.github.recordDelivery({ event: "workflow_job", payload: { action: "queued" }, status: "Invalid HTTP Response: 503", deliveredAt: new Date(now - 10 * 60_000) });
    const recovered = s.github.recordDelivery({ event: "workflow_job", payload: { action: "completed" }, status: "Invalid HTTP Response: 500", deliveredAt: new Date(now - 30 * 60_000) });
    s.github.recordDelivery({ event: "workflow_job", payload: { action: "completed" }, guid: recovered.guid, redelivery: true, deliveredAt: new Date(now - 25 * 60_000) });
    s.github.recordDelivery({ event: "workflow_job", payload: { action: "queued" }, status: "Invalid HTTP Response: 502", deliveredAt: new Date(now - 30 * HOUR) });
    // TTL policies: one broken, one never made.
    admin.ttl.set("kumo-jobs.expireAt", "NEEDS_REPAIR");
    admin.ttl.delete("kumo-redeliveries.expireAt");

    const run = await doctor();
    expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({
      code: 1,
      stdout: [
        appLines()[0],
        `✗ GitHub App kumo-bench: missing permission actions: read (has none) — fix: ${FIX_APP}`,
        "✔ bench-org: installed (installation 4242), permissions and events accepted",
        "✔ bench-org: .github/kumo.yml is valid, 4 runner specs",
        '✔ bench-org: runner group "cloudrun": 1 selected repository may use it',
        "✗ bench-org: runner group \"nope\" does not exist (runners.3) — fix: create it in bench-org's settings → Actions → Runner groups, or change group: in .github/kumo.yml",
        "✔ other-org: installed (installation 4243), permissions and events accepted",
        "✗ other-org: .github/kumo.yml is invalid: runners.0.job: must be a Cloud Run job name or projects/P/locations/R/jobs/J — fix: correct .github/kumo.yml in other-org/.github; no runner starts in other-org until it is valid",
        `✔ Cloud Run job gha-runner-small: image ${builtImage()}, 1 task, maxRetries 0`,
        "✔ Cloud Run job gha-runner-small: may run it with overrides, cancel and read its executions",
        "✗ Cloud Run job gha-runner-large does not exist (used by bench-org) — fix: deploy it (deploy/deploy.sh; RUNNER_JOBS for jobs of your own), or change job: in .github/kumo.yml",
        `✔ Cloud Run job gha-runner-gpu: image ${builtImage()}, 1 task, maxRetries 0`,
        `✗ Cloud Run job gha-runner-gpu: missing permission run.jobs.runWithOverrides — fix: ${FIX_RUN}`,
        "✗ Cloud Run job gha-runner-foreign: image docker.io/library/ubuntu:24.04 is not the GitHub Actions runner image — fix: deploy the runner image with deploy/deploy.sh (…/gha-runner:TAG from runner/), or build yours FROM it (runner/README.md, Adding your own tools)",
        "✗ Cloud Run job gha-runner-foreign: maxRetries is not set (3); a retried task would reuse a spent JIT config — fix: set maxRetries: 0 as runner/job.yaml does, and deploy it (deploy/deploy.sh)",
        "✔ Cloud Run job gha-runner-foreign: may run it with overrides, cancel and read its executions",
        "✗ webhook deliveries: 2 failed in the last 24 h, newest: workflow_job.queued (Invalid HTTP Response: 503), push (failed to connect to host) — fix: npm run reconcile redelivers them; if they keep failing, see docs/troubleshooting.md",
        "✗ Firestore TTL on kumo-jobs.expireAt: NEEDS_REPAIR; old documents are never deleted — fix: gcloud firestore fields ttls update expireAt --collection-group=kumo-jobs --enable-ttl (deploy/deploy.sh does)",
        "✗ Firestore TTL on kumo-redeliveries.expireAt: no policy; old documents are never deleted — fix: gcloud firestore fields ttls update expireAt --collection-group=kumo-redeliveries --enable-ttl (deploy/deploy.sh does)",
        "10 problems to fix, 9 checks passed",
      ],
      stderr: [],
    });
    expect(unexpectedCalls()).toEqual([]);
    // The doctor only reads: nothing redelivered.
    expect(s.github.redeliveryRequests).toEqual([]);
  });

  test("GitHub refusing the app's credentials is a ✗ per check that needs them, not a crash", async () => {
    healthyWorld();
    s.github.refuseAppJwt = true;
    const run = await doctor();
    expect(run.code).toBe(1);
    expect(run.stdout).toEqual([
      "✗ GitHub App: could not read it (GET /app): HTTP 401: A JSON web token could not be decoded — fix: GitHub refused the app's credentials: check APP_ID and PRIVATE_KEY",
      "✗ installations: could not list them (GET /app/installations): HTTP 401: A JSON web token could not be decoded — fix: check APP_ID, PRIVATE_KEY and GHE_HOST",
      "✗ webhook deliveries: could not list them (GET /app/hook/deliveries): HTTP 401: A JSON web token could not be decoded — fix: check APP_ID, PRIVATE_KEY and GHE_HOST",
      "✔ Firestore TTL on kumo-jobs.expireAt: ACTIVE",
      "✔ Firestore TTL on kumo-redeliveries.expireAt: ACTIVE",
      "3 problems to fix, 2 checks passed",
    ]);
    expect(run.stderr).toEqual([]);
  });

  test.each([
    ["APP_ID missing", { APP_ID: undefined }, /^doctor: APP_ID is not set/],
    ["CLOUD_RUN_API_ENDPOINT not a URL", { CLOUD_RUN_API_ENDPOINT: "cloud-run:8080" }, /^doctor: Invalid Kumo environment: CLOUD_RUN_API_ENDPOINT: /],
    ["FIRESTORE_ADMIN_API_ENDPOINT not http(s)", { FIRESTORE_ADMIN_API_ENDPOINT: "ftp://127.0.0.1:1" }, /^doctor: Invalid Kumo environment: FIRESTORE_ADMIN_API_ENDPOINT: must be an http\(s\):\/\/host:port URL$/],
  ])("an incomplete environment (%s): one ERROR line, exit 1, no report", async (_, extra, message) => {
    const run = await doctor(extra);
    expect(run.code).toBe(1);
    expect(run.stdout).toEqual([]);
    expect(run.stderr).toHaveLength(1);
    const entry = JSON.parse(run.stderr[0]!) as { severity: string; message: string };
    expect(entry.severity).toBe("ERROR");
    expect(entry.message).toMatch(message);
    expect(s.github.calls).toEqual([]);
  });
});
