import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, jest, test } from "@jest/globals";
import { BENCH_ORG, BENCH_REPO, RUNNER_GROUP } from "../../bench/fakes/github.js";
import {
  benchJobPayload,
  closeFirestores,
  freePort,
  notCloudLogging,
  npmScript,
  postWebhook,
  processEnv,
  readJob,
  startFunction,
  startScript,
  startStandIns,
  stopAll,
  updateJob,
  uniqueProject,
  waitFor,
  WEBHOOK_SECRET,
  type Proc,
  type StandIns,
} from "../helpers/processes.js";

// Every entry point as the process it is deployed as: `npm start`, the functions
// framework loading package.json's main, and `npm run reconcile`, each spawned with
// a deployment's environment against the Firestore emulator and HTTP stand-ins of
// GitHub and Cloud Run. Spawning node and Probot takes about a second.
jest.setTimeout(30_000);

let nextJobId = 7_100_000;
const RUNNER_JOB = (project: string) => `projects/${project}/locations/us-central1/jobs/gha-runner-small`;

/** Calls a stand-in answered that it does not serve, or refused for the wrong credentials. */
function unexpectedCalls(s: StandIns): string[] {
  return [...Object.keys(s.github.counts()), ...Object.keys(s.cloudRun.counts())].filter((e) => /^(other|unauthorized) /.test(e));
}

/** Exactly one live registration and one execution for `jobId`, the execution carrying that registration's JIT config; the record says so. */
async function expectOneRunner(s: StandIns, project: string, jobId: number) {
  const registrations = s.github.liveRegistrations(jobId);
  expect(registrations).toHaveLength(1);
  const [registration] = registrations;
  expect(registration!.name).toMatch(new RegExp(`^kumo-${jobId}-\\d+-[0-9a-f]+$`));
  expect(registration!.labels).toEqual(["kumo", "small"]);
  expect(registration!.runnerGroupId).toBe(RUNNER_GROUP.id);
  const executions = s.cloudRun.executionsOf(jobId);
  expect(executions).toHaveLength(1);
  const [execution] = executions;
  expect(execution!.job).toBe(RUNNER_JOB(project));
  expect(execution!.jitConfig).toBe(registration!.jitConfig);
  const record = await waitFor(`kumo-jobs/${jobId} launched`, async () => {
    const r = await readJob(project, jobId);
    return r?.state === "launched" ? r : undefined;
  });
  expect(record).toMatchObject({ jobId, state: "launched", runnerName: registration!.name, runnerId: registration!.runnerId, execution: execution!.name });
  return { registration: registration!, execution: execution!, record };
}

/** Runs assertions about a process; a failure shows the process's last lines. */
function withOutput(p: Proc, assertions: () => void): void {
  try {
    assertions();
  } catch (error) {
    if (error instanceof Error) error.message += `\n\nlast lines of ${p.name}:\n${p.output()}`;
    throw error;
  }
}

function errorLines(p: Proc) {
  return p.logEntries().filter((e) => e.severity === "ERROR");
}

/** A process that failed on a broken environment: exit 1, one ERROR line naming `what`, nothing but Cloud Logging JSON. */
async function expectConfigFailure(p: Proc, what: RegExp, timeoutMs = 15_000) {
  const { code } = await p.waitForExit(timeoutMs);
  const output = p.lines.map((l) => l.text).join("\n");
  withOutput(p, () => {
    expect(code).toBe(1);
    expect(notCloudLogging(p.lines)).toEqual([]);
    const errors = errorLines(p);
    expect(errors.map((e) => e.message)).toHaveLength(1);
    expect(errors[0]!.message).toMatch(what);
    expect(output).not.toMatch(/TypeError/);
    // No stack trace spilled, whether as raw lines or inside a log entry.
    expect(output).not.toMatch(/\s+at .+\(?(file:|node:|\/).+:\d+:\d+\)?/);
  });
}

afterAll(async () => {
  await stopAll();
  await closeFirestores();
});

test("package.json's commands run the built entry points these tests start", () => {
  expect(Object.fromEntries(["start", "reconcile", "status", "doctor"].map((name) => [name, npmScript(name).file.replace(/^.*\/dist\//, "dist/")]))).toEqual({
    start: "dist/app/entry/server.js",
    reconcile: "dist/app/entry/reconcile-cli.js",
    status: "dist/app/entry/status-cli.js",
    doctor: "dist/app/entry/doctor-cli.js",
  });
});

describe("npm start (Probot's server)", () => {
  let s: StandIns;
  let server: Proc;
  let project: string;
  let base: string;

  beforeAll(async () => {
    s = await startStandIns();
    project = uniqueProject();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = startScript("start", processEnv(s, { project, port }));
    await server.waitForHttp(port, "/ping");
  });
  afterAll(async () => {
    await server?.stop();
    await s?.close();
  });

  test("GET /ping → PONG", async () => {
    const res = await fetch(`${base}/ping`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("PONG");
  });

  test("a signed real workflow_job.queued → 200, one JIT registration, one execution carrying its config, the record launched", async () => {
    const jobId = nextJobId++;
    const res = await postWebhook(`${base}/api/github/webhooks`, "workflow_job", benchJobPayload("queued", jobId));
    withOutput(server, () => expect(res.status).toBe(200));
    await expectOneRunner(s, project, jobId);
    // Other tests of this file share the stand-ins: this job's calls only.
    expect(s.github.callsTo("jit").filter((c) => c.jobId === jobId)).toHaveLength(1);
    expect(s.cloudRun.callsTo("runJob").filter((c) => c.jobId === jobId)).toHaveLength(1);
    expect(unexpectedCalls(s)).toEqual([]);
  });

  test("SIGTERM while a webhook is in flight → the request completes (200), its record is written, exit 0 right after", async () => {
    // A server of its own: the others in this file keep theirs, whatever the order.
    const port = await freePort();
    const stopping = startScript("start", processEnv(s, { project, port }));
    await stopping.waitForHttp(port, "/ping");
    const jobId = nextJobId++;
    s.cloudRun.setLatency({ runJob: 1500 });
    const inFlight = postWebhook(`http://127.0.0.1:${port}/api/github/webhooks`, "workflow_job", benchJobPayload("queued", jobId));
    await waitFor("runJob in flight", () => s.cloudRun.inFlight("runJob") === 1);
    const signalled = Date.now();
    stopping.kill("SIGTERM");
    const res = await inFlight;
    const answered = Date.now();
    s.cloudRun.setLatency({});
    withOutput(stopping, () => expect(res.status).toBe(200));
    const exit = await stopping.waitForExit(12_000);
    withOutput(stopping, () => expect(exit).toEqual({ code: 0, signal: null }));
    expect(Date.now() - signalled).toBeLessThan(10_000);
    // Its connection is closed once answered: the process does not wait for an idle keep-alive.
    expect(Date.now() - answered).toBeLessThan(2_000);
    await expectOneRunner(s, project, jobId);
  });

  test("every line it wrote is Cloud Logging JSON (severity, message)", () => {
    expect(server.lines.length).toBeGreaterThan(0);
    expect(notCloudLogging(server.lines)).toEqual([]);
  });
});

describe("Cloud Run functions entry (functions framework loading package.json's main, as a source deployment)", () => {
  let s: StandIns;
  let fn: Proc;
  let project: string;
  let base: string;

  beforeAll(async () => {
    s = await startStandIns();
    project = uniqueProject();
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    fn = startFunction(processEnv(s, { project, port }), port);
    // No /ping here: any HTTP answer means the function is loaded and serving.
    await fn.waitForHttp(port, "/", { ok: () => true });
  });
  afterAll(async () => {
    await fn?.stop();
    await s?.close();
  });

  test("a signed real workflow_job.queued at /api/github/webhooks → 200 and one runner", async () => {
    const jobId = nextJobId++;
    const res = await postWebhook(`${base}/api/github/webhooks`, "workflow_job", benchJobPayload("queued", jobId));
    withOutput(fn, () => expect(res.status).toBe(200));
    await expectOneRunner(s, project, jobId);
    expect(unexpectedCalls(s)).toEqual([]);
  });

  test("GET on another path → 404", async () => {
    const res = await fetch(`${base}/nope`);
    expect(res.status).toBe(404);
  });

  test("every line it wrote is Cloud Logging JSON (severity, message)", () => {
    expect(notCloudLogging(fn.lines)).toEqual([]);
  });
});

describe("npm run reconcile (one pass, then exit)", () => {
  let s: StandIns;
  beforeEach(async () => {
    s = await startStandIns();
  });
  afterEach(() => s?.close());

  test("launches a job left pending and redelivers a lost webhook; one summary line per step; exit 0", async () => {
    const project = uniqueProject();
    const port = await freePort();
    const hook = `http://127.0.0.1:${port}/api/github/webhooks`;
    const env = processEnv(s, { project, port });
    // The app that received the webhooks: its fast path leaves a job pending, and it receives the redelivery.
    const server = startScript("start", env);
    await server.waitForHttp(port, "/ping");

    // Job A: Cloud Run answers 503 once, so the webhook leaves A pending (and its registration undone).
    const pending = nextJobId++;
    s.cloudRun.failNext("runJob", { status: 503, body: { error: { code: 503, message: "The service is currently unavailable.", status: "UNAVAILABLE" } } });
    const failed = await postWebhook(hook, "workflow_job", benchJobPayload("queued", pending));
    expect(failed.status).toBeGreaterThanOrEqual(500);
    const before = await readJob(project, pending);
    expect(before).toMatchObject({ state: "pending", attempts: 1 });
    expect(s.github.liveRegistrations(pending)).toHaveLength(0);
    expect(s.cloudRun.executionsOf(pending)).toHaveLength(0);
    s.github.setJob(pending, { status: "queued", repo: `${BENCH_ORG}/${BENCH_REPO}` });

    // Job B: GitHub tried twice to deliver its queued webhook and failed both times: a lost webhook.
    const lostJob = nextJobId++;
    s.github.webhook = { url: hook, secret: WEBHOOK_SECRET };
    const lostPayload = benchJobPayload("queued", lostJob);
    const lost1 = s.github.recordDelivery({ event: "workflow_job", payload: lostPayload, status: "Invalid HTTP Response: 503", deliveredAt: new Date(Date.now() - 60_000) });
    const lost2 = s.github.recordDelivery({ event: "workflow_job", payload: lostPayload, guid: lost1.guid, status: "failed to connect to host", statusCode: 0, redelivery: true });
    // Job C: failed once, then delivered OK: not lost.
    const recoveredJob = nextJobId++;
    const recovered = s.github.recordDelivery({ event: "workflow_job", payload: benchJobPayload("queued", recoveredJob), status: "Invalid HTTP Response: 502", deliveredAt: new Date(Date.now() - 30_000) });
    s.github.recordDelivery({ event: "workflow_job", payload: benchJobPayload("queued", recoveredJob), guid: recovered.guid, status: "OK", redelivery: true });

    const cli = startScript("reconcile", { ...env, PORT: String(await freePort()) });
    const { code } = await cli.waitForExit(25_000);
    withOutput(cli, () => expect(code).toBe(0));

    // A: one new registration and one execution carrying its config; the record launched (second attempt).
    expect(s.github.callsTo("jit").filter((c) => c.jobId === pending)).toHaveLength(2); // the webhook's, undone, and reconcile's
    const { record } = await expectOneRunner(s, project, pending);
    expect(record.attempts).toBe(2);

    // B: exactly one redelivery asked for, of one of its attempts; none for C.
    expect(s.github.redeliveryRequests).toHaveLength(1);
    expect([lost1.id, lost2.id]).toContain(s.github.redeliveryRequests[0]);
    // The stand-in sent B's stored payload again, signed, and the app took it: B's runner.
    await s.github.settled();
    const redelivered = s.github.deliveries.filter((d) => d.guid === lost1.guid).at(-1)!;
    withOutput(server, () => expect(redelivered).toMatchObject({ status: "OK", redelivery: true }));
    await expectOneRunner(s, project, lostJob);
    expect(s.github.registrations.size).toBe(3); // A's undone one, A's, B's
    expect([...s.github.registrations.values()].filter((r) => r.jobId === recoveredJob)).toHaveLength(0);
    expect(await readJob(project, recoveredJob)).toBeUndefined();

    // The pass's summary: INFO lines on stdout, one per step, `<step>: k=v …` with step and counts.
    const summaries = cli.logEntries("stdout").filter((e) => typeof e.counts === "object" && e.counts !== null);
    const steps = ["capacity", "unfinished launches", "launches that never came up", "warm pools", "stale runners", "runner machines", "lost webhooks"];
    expect(summaries.map((e) => e.step)).toEqual(steps);
    for (const step of steps) {
      const lines = summaries.filter((e) => String(e.message).startsWith(`${step}: `));
      withOutput(cli, () => expect({ step, lines: lines.length }).toEqual({ step, lines: 1 }));
      const [line] = lines;
      expect(line!.severity).toBe("INFO");
      expect(line!.step).toBe(step);
      const counts = line!.counts as Record<string, number>;
      expect(line!.message).toBe(`${step}: ${Object.entries(counts).map(([k, v]) => `${k}=${v}`).join(" ")}`);
    }
    const countsOf = (step: string) => summaries.find((e) => e.step === step)!.counts as Record<string, number>;
    expect(countsOf("unfinished launches")).toMatchObject({ checked: 1, launched: 1, errors: 0 });
    expect(countsOf("stale runners")).toMatchObject({ deleted: 0, errors: 0 });
    expect(countsOf("lost webhooks")).toMatchObject({ lost: 1, redelivered: 1, errors: 0 });
    expect(notCloudLogging(cli.lines)).toEqual([]);
    expect(unexpectedCalls(s)).toEqual([]);
    await server.stop();
  });

  test("relaunches a launch that never came up (its execution failed) and retires a runner no job needs (registration deleted, execution cancelled)", async () => {
    const project = uniqueProject();
    const port = await freePort();
    const hook = `http://127.0.0.1:${port}/api/github/webhooks`;
    const env = processEnv(s, { project, port });
    const server = startScript("start", env);
    await server.waitForHttp(port, "/ping");

    // D and E launched by the app's fast path.
    const stalled = nextJobId++;
    const served = nextJobId++;
    for (const jobId of [stalled, served]) expect((await postWebhook(hook, "workflow_job", benchJobPayload("queued", jobId))).status).toBe(200);
    const [oldRunner] = s.github.liveRegistrations(stalled);
    const [oldExecution] = s.cloudRun.executionsOf(stalled);
    const [idleRunner] = s.github.liveRegistrations(served);
    const [idleExecution] = s.cloudRun.executionsOf(served);
    expect([oldRunner, oldExecution, idleRunner, idleExecution].every(Boolean)).toBe(true);
    // E was taken by another runner: its own runner is surplus.
    const inProgress = benchJobPayload("in_progress", served);
    Object.assign(inProgress.workflow_job, { runner_id: 999, runner_name: "other-runner" });
    expect((await postWebhook(hook, "workflow_job", inProgress)).status).toBe(200);
    await waitFor(`kumo-jobs/${served} running`, async () => (await readJob(project, served))?.state === "running");
    await server.stop();

    // D's runner container failed without taking the job, which GitHub still has queued; ten minutes pass.
    s.cloudRun.finish(oldExecution!.name, "failed");
    s.github.setJob(stalled, { status: "queued" });
    s.github.setJob(served, { status: "in_progress", runner_id: 999, runner_name: "other-runner" });
    const tenMinutesAgo = new Date(Date.now() - 10 * 60_000);
    await updateJob(project, stalled, { launchedAt: tenMinutesAgo, updatedAt: tenMinutesAgo });
    await updateJob(project, served, { updatedAt: tenMinutesAgo });
    // Count the pass's calls only (reset() would also drop the stand-ins' state).
    s.github.calls.length = 0;
    s.cloudRun.calls.length = 0;

    const cli = startScript("reconcile", { ...env, PORT: String(await freePort()) });
    const { code } = await cli.waitForExit(25_000);
    withOutput(cli, () => expect(code).toBe(0));

    // D: the execution was looked at once; the old registration deleted; exactly one new runner (attempt 2).
    expect(s.cloudRun.callsTo("getExecution")).toHaveLength(1);
    expect(s.github.liveRegistrations(stalled)).toHaveLength(1);
    const [newRunner] = s.github.liveRegistrations(stalled);
    expect(newRunner!.name).toMatch(new RegExp(`^kumo-${stalled}-2-`));
    const executions = s.cloudRun.executionsOf(stalled);
    expect(executions).toHaveLength(2);
    expect(executions[1]!.jitConfig).toBe(newRunner!.jitConfig);
    expect(await readJob(project, stalled)).toMatchObject({ state: "launched", attempts: 2, runnerName: newRunner!.name, execution: executions[1]!.name });
    // E: its idle runner deleted and its execution cancelled, once.
    expect(s.github.callsTo("deleteRunner", 204).map((c) => c.jobId).sort()).toEqual([served, stalled].sort());
    expect(s.cloudRun.callsTo("cancelExecution")).toHaveLength(1);
    expect(s.cloudRun.execution(idleExecution!.name)).toMatchObject({ cancelledCount: 1, runningCount: 0 });
    expect(await readJob(project, served)).toMatchObject({ state: "running" });

    const countsOf = (step: string) => cli.logEntries("stdout").find((e) => e.step === step)?.counts as Record<string, number> | undefined;
    expect(countsOf("launches that never came up")).toMatchObject({ checked: 1, relaunched: 1, errors: 0 });
    expect(countsOf("stale runners")).toMatchObject({ runners: 2, needed: 1, deleted: 1, errors: 0 });
    expect(notCloudLogging(cli.lines)).toEqual([]);
    expect(unexpectedCalls(s)).toEqual([]);
  });
});

describe("broken environments: exit 1 with one ERROR line saying what is wrong", () => {
  let s: StandIns;
  beforeAll(async () => {
    s = await startStandIns();
  });
  afterAll(() => s?.close());

  test("reconcile without APP_ID", async () => {
    const env = processEnv(s, { project: uniqueProject(), port: await freePort(), extra: { APP_ID: undefined } });
    const cli = startScript("reconcile", env);
    await expectConfigFailure(cli, /APP_ID/);
  });

  test("reconcile with Firestore unreachable (FIRESTORE_EMULATOR_HOST on a closed port)", async () => {
    const closed = await freePort();
    const env = processEnv(s, {
      project: uniqueProject(),
      port: await freePort(),
      extra: { FIRESTORE_EMULATOR_HOST: `127.0.0.1:${closed}`, KUMO_STORE_TIMEOUT_MS: "1000" },
    });
    const cli = startScript("reconcile", env);
    await expectConfigFailure(cli, /firestore/i, 25_000);
  });

  test("server with an invalid KUMO_* variable (KUMO_LAUNCH_LEASE_SECONDS=abc)", async () => {
    const env = processEnv(s, { project: uniqueProject(), port: await freePort(), extra: { KUMO_LAUNCH_LEASE_SECONDS: "abc" } });
    const server = startScript("start", env);
    await expectConfigFailure(server, /KUMO_LAUNCH_LEASE_SECONDS/);
  });
});
