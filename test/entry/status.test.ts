import { afterAll, beforeAll, describe, expect, jest, test } from "@jest/globals";
import { Firestore } from "@google-cloud/firestore";
import { FirestoreJobStore } from "../../app/store/firestore-job-store.js";
import { capacityOf, type NewJob, type RunnerTarget } from "../../app/store/job-store.js";
import { freePort, notCloudLogging, npmScript, processEnv, Proc, startStandIns, stopAll, uniqueProject, type StandIns } from "../helpers/processes.js";

// `npm run status` as the process operators run: spawned with a deployment's
// environment (without GitHub credentials: it needs none) against the Firestore
// emulator, over records written by the app's own store.
jest.setTimeout(60_000);

const MIN = 60_000;
const ORG = "acme";

let s: StandIns;
let project: string;
let db: Firestore;
/** When the world was written; its records are dated back from here, at half minutes, so "12m ago" reads the same for 30 s. */
let t0: number;
const ago = (ms: number) => new Date(t0 - ms);

let smallJob: string;
const SMALL = (): RunnerTarget => ({ labels: ["kumo", "small"], group: "cloudrun", groupId: 7, job: smallJob, maxRunners: 1 });
const LARGE = (): RunnerTarget => ({ labels: ["kumo", "large"], group: "cloudrun", groupId: 7, job: smallJob.replace("small", "large") });

function job(jobId: number, target: RunnerTarget, createdAt: Date, repo = "acme/api"): NewJob {
  return { jobId, runId: jobId + 1000, runAttempt: 1, installationId: 42, org: ORG, repo, labels: target.labels, target, createdAt };
}

/** The status process's environment: the deployment's, without GitHub's credentials; `extra` adds or removes. */
async function statusEnv(extra: Record<string, string | undefined> = {}) {
  return processEnv(s, {
    project,
    port: await freePort(),
    extra: { APP_ID: undefined, PRIVATE_KEY: undefined, WEBHOOK_SECRET: undefined, GHE_HOST: undefined, GHE_PROTOCOL: undefined, ...extra },
  });
}

async function status(args: string[], env?: Record<string, string>) {
  const { file, args: scriptArgs } = npmScript("status");
  const p = new Proc("status", file, [...scriptArgs, ...args], env ?? (await statusEnv()));
  const exit = await p.waitForExit(30_000);
  const out = (stream: "stdout" | "stderr") => p.lines.filter((l) => l.stream === stream).map((l) => l.text);
  return { p, exit, stdout: out("stdout"), stderr: out("stderr") };
}

/** Every document of the collections status reads, with its update time: a read-only command leaves them as they were. */
async function snapshotOfCollections(): Promise<string[]> {
  const docs = await Promise.all(["kumo-jobs", "kumo-slots"].map(async (c) => (await db.collection(c).get()).docs.map((d) => `${c}/${d.id}@${d.updateTime.toMillis()}`)));
  return docs.flat().sort();
}

beforeAll(async () => {
  s = await startStandIns();
  project = uniqueProject();
  smallJob = `projects/${project}/locations/us-central1/jobs/gha-runner-small`;
  db = new Firestore({ projectId: project, ignoreUndefinedProperties: true });
  const store = new FirestoreJobStore(db, 60_000);
  t0 = Date.now();

  // 8100001: done. Queued 40m30s ago, launched 3 s later, started 17 s after that, ran 5 minutes.
  await store.claim(job(8100001, SMALL(), ago(40.5 * MIN)), ago(40.5 * MIN - 1_000));
  await store.markLaunched(8100001, 1, { runnerId: 1, runnerName: "kumo-8100001-1-a", execution: `${smallJob}/executions/e1` }, ago(40.5 * MIN - 3_000));
  const progress = { jobId: 8100001, installationId: 42, org: ORG, repo: "acme/api", runId: 8101001, runAttempt: 1, labels: ["kumo", "small"], runnerName: "kumo-8100001-1-a", runnerId: 1 };
  await store.recordProgress({ ...progress, status: "in_progress", startedAt: ago(40.5 * MIN - 20_000) });
  await store.recordProgress({ ...progress, status: "completed", startedAt: ago(40.5 * MIN - 20_000), completedAt: ago(35.5 * MIN - 20_000), conclusion: "success" });

  // 8100003: running; it holds the small spec's only slot (maxRunners 1).
  await store.claim(job(8100003, SMALL(), ago(10.5 * MIN)), ago(10.5 * MIN));
  expect(await store.takeSlot(capacityOf(ORG, SMALL())!.key, 1, { jobId: 8100003, org: ORG, name: capacityOf(ORG, SMALL())!.name })).toBe(true);
  await store.markLaunched(8100003, 1, { runnerId: 3, runnerName: "kumo-8100003-1-c", execution: `${smallJob}/executions/e3` }, ago(10.5 * MIN - 2_000));
  await store.recordProgress({ ...progress, jobId: 8100003, runId: 8101003, runnerName: "kumo-8100003-1-c", runnerId: 3, status: "in_progress", startedAt: ago(10.5 * MIN - 12_000) });

  // 8100002: waits for that slot.
  await store.claim(job(8100002, SMALL(), ago(5.5 * MIN)), ago(5.5 * MIN));
  await store.markNotLaunched(8100002, 1, { state: "waiting", reason: "maxRunners 1 of [kumo, small] reached; launched when a runner frees" }, ago(5.5 * MIN));

  // 8100004: failed for a reason a person must fix.
  await store.claim(job(8100004, LARGE(), ago(20.5 * MIN), "acme/web"), ago(20.5 * MIN));
  await store.markNotLaunched(8100004, 1, { state: "failed", reason: 'runner group "gpu" not found: create it or fix runners.0.group' }, ago(20.5 * MIN));

  // 8100005: pending after a 503 of Cloud Run.
  await store.claim(job(8100005, LARGE(), ago(2.5 * MIN), "acme/web"), ago(2.5 * MIN));
  await store.markNotLaunched(8100005, 1, { state: "pending", reason: "Cloud Run job: UNAVAILABLE: The service is currently unavailable." }, ago(2.5 * MIN));

  // 8100006: launched 15 minutes ago; its runner never took the job.
  await store.claim(job(8100006, LARGE(), ago(15.5 * MIN)), ago(15.5 * MIN));
  await store.markLaunched(8100006, 1, { runnerId: 6, runnerName: "kumo-8100006-1-f", execution: `${smallJob.replace("small", "large")}/executions/gha-runner-large-x7k2p` }, ago(15.5 * MIN - 4_000));

  // 8100007: pending since 2h30m: before the default window, still open.
  await store.claim(job(8100007, LARGE(), ago(150.5 * MIN)), ago(150.5 * MIN));
  await store.markNotLaunched(8100007, 1, { state: "pending", reason: "GitHub JIT config: rate limited: API rate limit exceeded" }, ago(150.5 * MIN));

  // 8100008: done 3 hours ago: only in a longer window.
  await store.claim(job(8100008, LARGE(), ago(180.5 * MIN), "acme/docs"), ago(180.5 * MIN));
  await store.markLaunched(8100008, 1, { runnerId: 8, runnerName: "kumo-8100008-1-h", execution: `${smallJob}/executions/e8` }, ago(180.5 * MIN - 6_000));
  await store.recordProgress({ ...progress, jobId: 8100008, runId: 8101008, repo: "acme/docs", labels: ["kumo", "large"], status: "completed", startedAt: ago(180.5 * MIN - 16_000), completedAt: ago(170.5 * MIN), conclusion: "failure" });
});

afterAll(async () => {
  await stopAll();
  await s?.close();
  await db?.terminate();
});

const SMALL_NAME = "acme [kumo, small] → gha-runner-small";
const LARGE_NAME = "acme [kumo, large] → gha-runner-large";
const run = (repo: string, jobId: number, host = "https://github.com") => `${host}/${repo}/actions/runs/${jobId + 1000}`;
const NONE = { failed: 0, pending: 0, waiting: 0, claimed: 0, launched: 0, running: 0, completed: 0 };
const USAGE = "usage: npm run status -- [--since=30m|2h|1d|<ISO time>] [--json]";

/** The one JSON document it printed. */
function parseReport(stdout: string[]): Record<string, any> {
  return JSON.parse(stdout.join("\n")) as Record<string, any>;
}

/** The report's clock: between the world's writing and now. */
function expectNow(report: Record<string, any>): number {
  const now = Date.parse(report.now);
  expect(now).toBeGreaterThanOrEqual(t0);
  expect(now).toBeLessThanOrEqual(Date.now());
  return now;
}

function errorLines(p: Proc) {
  return p.logEntries().filter((e) => e.severity === "ERROR");
}

describe("npm run status: the report", () => {
  test("the table: jobs of the last hour and older open ones by state, specs with counts and p50/p95, capacity, waiting and why, failed, never came up; read-only; exit 0", async () => {
    const before = await snapshotOfCollections();
    const { p, exit, stdout, stderr } = await status([]);
    expect({ exit, stderr }).toEqual({ exit: { code: 0, signal: null }, stderr: [] });
    const [header, ...rest] = stdout;
    const times = /^Kumo status at (\S+): jobs received since (\S+) \(last 1h\), and older ones still claimed, launched, waiting, pending$/.exec(header ?? "");
    expect(times).not.toBeNull();
    expect(Date.parse(times![1]!) - Date.parse(times![2]!)).toBe(60 * MIN);
    expect(Date.parse(times![1]!)).toBeGreaterThanOrEqual(t0);
    // Blank lines between sections are not collected.
    expect(rest).toEqual([
      "7 jobs: 1 failed, 2 pending, 1 waiting, 1 launched, 1 running, 1 completed",
      "JOBS",
      "STATE                    JOB  REPOSITORY  QUEUED     RUN",
      "failed               8100004  acme/web    20m ago    https://github.com/acme/web/actions/runs/8101004",
      "pending              8100005  acme/web    2m ago     https://github.com/acme/web/actions/runs/8101005",
      "pending              8100007  acme/api    2h30m ago  https://github.com/acme/api/actions/runs/8101007",
      "waiting              8100002  acme/api    5m ago     https://github.com/acme/api/actions/runs/8101002",
      "launched             8100006  acme/api    15m ago    https://github.com/acme/api/actions/runs/8101006",
      "running              8100003  acme/api    10m ago    https://github.com/acme/api/actions/runs/8101003",
      "completed (success)  8100001  acme/api    40m ago    https://github.com/acme/api/actions/runs/8101001",
      "RUNNER SPECS",
      "SPEC                                   JOBS  FAILED  PENDING  WAITING  LAUNCHED  RUNNING  COMPLETED",
      "acme [kumo, large] → gha-runner-large     4       1        2        0         1        0          0",
      "acme [kumo, small] → gha-runner-small     3       0        0        1         0        1          1",
      "DURATIONS p50 / p95 (jobs measured)",
      "SPEC                                   QUEUED→LAUNCHED  LAUNCHED→STARTED  STARTED→COMPLETED",
      "acme [kumo, large] → gha-runner-large  4.0s / 4.0s (1)  -                 -",
      "acme [kumo, small] → gha-runner-small  2.0s / 3.0s (2)  10s / 17s (2)     5m00s / 5m00s (1)",
      "CAPACITY (maxRunners)",
      "SPEC                                   LIVE  CAP  WAITING",
      "acme [kumo, small] → gha-runner-small     1    1        1",
      "WAITING",
      "    JOB  STATE    REPOSITORY  QUEUED     RUN                                               WHY",
      "8100007  pending  acme/api    2h30m ago  https://github.com/acme/api/actions/runs/8101007  GitHub JIT config: rate limited: API rate limit exceeded",
      "8100002  waiting  acme/api    5m ago     https://github.com/acme/api/actions/runs/8101002  maxRunners: 1/1 live, 1 waiting",
      "8100005  pending  acme/web    2m ago     https://github.com/acme/web/actions/runs/8101005  Cloud Run job: UNAVAILABLE: The service is currently unavailable.",
      "FAILED",
      "    JOB  REPOSITORY  ATTEMPTS  QUEUED   RUN                                               LAST ERROR",
      '8100004  acme/web           1  20m ago  https://github.com/acme/web/actions/runs/8101004  runner group "gpu" not found: create it or fix runners.0.group',
      "NEVER CAME UP (launched over 5m ago, not started)",
      "    JOB  REPOSITORY  ATTEMPTS  LAUNCHED  RUN                                               EXECUTION",
      "8100006  acme/api           1  15m ago   https://github.com/acme/api/actions/runs/8101006  gha-runner-large-x7k2p",
    ]);
    expect(errorLines(p)).toEqual([]);
    // Read-only: no document written; and it called nothing but Firestore.
    expect(await snapshotOfCollections()).toEqual(before);
    expect({ ...s.github.counts(), ...s.cloudRun.counts() }).toEqual({});
  });

  test("--json: one JSON document with the same facts, times in ISO and durations in ms", async () => {
    const { exit, stdout, stderr } = await status(["--json"]);
    expect({ exit, stderr }).toEqual({ exit: { code: 0, signal: null }, stderr: [] });
    const report = parseReport(stdout);
    const now = expectNow(report);
    const iso = (ms: number) => ago(ms).toISOString();
    expect(Date.parse(report.since)).toBe(now - 60 * MIN);
    expect(report).toMatchObject({ window: "1h", truncated: false, total: 7 });
    expect(report.byState).toEqual({ ...NONE, failed: 1, pending: 2, waiting: 1, launched: 1, running: 1, completed: 1 });
    expect(report.jobs.map((j: any) => [j.state, j.jobId])).toEqual([
      ["failed", 8100004], ["pending", 8100005], ["pending", 8100007], ["waiting", 8100002], ["launched", 8100006], ["running", 8100003], ["completed", 8100001],
    ]);
    expect(report.jobs.at(-1)).toEqual({
      jobId: 8100001,
      repo: "acme/api",
      runId: 8101001,
      runUrl: run("acme/api", 8100001),
      state: "completed",
      conclusion: "success",
      spec: SMALL_NAME,
      attempts: 1,
      queuedAt: iso(40.5 * MIN),
      receivedAt: iso(40.5 * MIN - 1_000),
      launchedAt: iso(40.5 * MIN - 3_000),
      startedAt: iso(40.5 * MIN - 20_000),
      completedAt: iso(35.5 * MIN - 20_000),
    });
    expect(report.specs).toEqual([
      {
        name: LARGE_NAME,
        org: "acme",
        labels: ["kumo", "large"],
        job: smallJob.replace("small", "large"),
        jobs: 4,
        byState: { ...NONE, failed: 1, pending: 2, launched: 1 },
        durations: { queuedToLaunched: { count: 1, p50Ms: 4_000, p95Ms: 4_000 }, launchedToStarted: null, startedToCompleted: null },
      },
      {
        name: SMALL_NAME,
        org: "acme",
        labels: ["kumo", "small"],
        job: smallJob,
        maxRunners: 1,
        jobs: 3,
        byState: { ...NONE, waiting: 1, running: 1, completed: 1 },
        durations: {
          queuedToLaunched: { count: 2, p50Ms: 2_000, p95Ms: 3_000 },
          launchedToStarted: { count: 2, p50Ms: 10_000, p95Ms: 17_000 },
          startedToCompleted: { count: 1, p50Ms: 300_000, p95Ms: 300_000 },
        },
      },
    ]);
    expect(report.capacity).toEqual([{ spec: SMALL_NAME, live: 1, cap: 1, waiting: 1 }]);
    const waited = (ms: number) => now - ago(ms).getTime();
    expect(report.waiting).toEqual([
      { jobId: 8100007, repo: "acme/api", state: "pending", spec: LARGE_NAME, queuedAt: iso(150.5 * MIN), waitedMs: waited(150.5 * MIN), why: "GitHub JIT config: rate limited: API rate limit exceeded", runUrl: run("acme/api", 8100007) },
      { jobId: 8100002, repo: "acme/api", state: "waiting", spec: SMALL_NAME, queuedAt: iso(5.5 * MIN), waitedMs: waited(5.5 * MIN), why: "maxRunners: 1/1 live, 1 waiting", runUrl: run("acme/api", 8100002) },
      { jobId: 8100005, repo: "acme/web", state: "pending", spec: LARGE_NAME, queuedAt: iso(2.5 * MIN), waitedMs: waited(2.5 * MIN), why: "Cloud Run job: UNAVAILABLE: The service is currently unavailable.", runUrl: run("acme/web", 8100005) },
    ]);
    expect(report.failed).toEqual([
      { jobId: 8100004, repo: "acme/web", spec: LARGE_NAME, attempts: 1, queuedAt: iso(20.5 * MIN), lastError: 'runner group "gpu" not found: create it or fix runners.0.group', runUrl: run("acme/web", 8100004) },
    ]);
    expect(report.neverStarted).toEqual([
      {
        jobId: 8100006,
        repo: "acme/api",
        spec: LARGE_NAME,
        attempts: 1,
        launchedAt: iso(15.5 * MIN - 4_000),
        sinceLaunchMs: waited(15.5 * MIN - 4_000),
        execution: `${smallJob.replace("small", "large")}/executions/gha-runner-large-x7k2p`,
        runUrl: run("acme/api", 8100006),
      },
    ]);
  });

  test("--since=4h takes in the job done 3 hours ago, with its durations", async () => {
    const { exit, stdout } = await status(["--since=4h", "--json"]);
    expect(exit).toEqual({ code: 0, signal: null });
    const report = parseReport(stdout);
    expect(Date.parse(report.since)).toBe(expectNow(report) - 240 * MIN);
    expect(report).toMatchObject({ window: "4h", total: 8 });
    expect(report.byState).toEqual({ ...NONE, failed: 1, pending: 2, waiting: 1, launched: 1, running: 1, completed: 2 });
    expect(report.jobs.at(-1)).toMatchObject({ jobId: 8100008, repo: "acme/docs", state: "completed", conclusion: "failure", runUrl: run("acme/docs", 8100008) });
    // 8100006: 4 s, 8100008: 6 s to launch; 8100008 started 10 s after its launch and ran 9m44s.
    expect(report.specs[0]).toMatchObject({
      name: LARGE_NAME,
      jobs: 5,
      durations: {
        queuedToLaunched: { count: 2, p50Ms: 4_000, p95Ms: 6_000 },
        launchedToStarted: { count: 1, p50Ms: 10_000, p95Ms: 10_000 },
        startedToCompleted: { count: 1, p50Ms: 584_000, p95Ms: 584_000 },
      },
    });
  });

  test("--since=<ISO time>: jobs received since then (not 8100001, 40 minutes ago), and older open ones (8100007)", async () => {
    const since = ago(30 * MIN).toISOString();
    const { exit, stdout } = await status([`--since=${since}`]);
    expect(exit).toEqual({ code: 0, signal: null });
    expect(stdout[0]).toMatch(new RegExp(`^Kumo status at \\S+: jobs received since ${since.replace(/\./g, "\\.")}, and older ones still claimed, launched, waiting, pending$`));
    expect(stdout[1]).toBe("6 jobs: 1 failed, 2 pending, 1 waiting, 1 launched, 1 running");
    expect(stdout.filter((l) => l.includes("/actions/runs/")).map((l) => /runs\/(\d+)/.exec(l)![1])).not.toContain("8101001");

    const json = parseReport((await status(["--since", since, "--json"])).stdout);
    expect(json.since).toBe(since);
    expect(json.window).toBeUndefined();
    expect(json.jobs.map((j: any) => j.jobId).sort()).toEqual([8100002, 8100003, 8100004, 8100005, 8100006, 8100007]);
  });

  test("GHE_HOST: run links go to GitHub Enterprise Server", async () => {
    const { exit, stdout } = await status(["--json"], await statusEnv({ GHE_HOST: "ghe.example.com" }));
    expect(exit).toEqual({ code: 0, signal: null });
    const report = parseReport(stdout);
    expect(report.jobs.map((j: any) => j.runUrl)).toEqual(report.jobs.map((j: any) => run(j.repo, j.jobId, "https://ghe.example.com")));
    expect(report.failed[0].runUrl).toBe("https://ghe.example.com/acme/web/actions/runs/8101004");
  });
});

describe("npm run status: what it refuses", () => {
  test.each([
    [["--since=yesterday"], 'status: --since must be 30m, 2h, 1d or an ISO time (2026-01-31T09:00:00Z), not "yesterday"'],
    [["--verbose"], 'status: unknown argument "--verbose"'],
  ])("a bad argument %p → exit 2, what is wrong and the usage on stderr, nothing on stdout", async (args, problem) => {
    const { exit, stdout, stderr } = await status(args);
    expect({ exit, stdout, stderr }).toEqual({ exit: { code: 2, signal: null }, stdout: [], stderr: [problem, USAGE] });
  });

  test("Firestore unreachable (FIRESTORE_EMULATOR_HOST on a closed port) → exit 1 within the store's timeout, one ERROR line", async () => {
    const closed = await freePort();
    const started = Date.now();
    const { p, exit } = await status([], await statusEnv({ FIRESTORE_EMULATOR_HOST: `127.0.0.1:${closed}`, KUMO_STORE_TIMEOUT_MS: "1000" }));
    expect(exit).toEqual({ code: 1, signal: null });
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(notCloudLogging(p.lines)).toEqual([]);
    const errors = errorLines(p);
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(
      new RegExp(`^status: Firestore did not answer \\(emulator at FIRESTORE_EMULATOR_HOST=127\\.0\\.0\\.1:${closed}\\): job store did not answer (listReceivedSince|list|listSlots) within 1000 ms$`),
    );
    expect(p.lines).toHaveLength(1);
  });

  test("an invalid KUMO_STORE_TIMEOUT_MS → exit 1, one ERROR line naming it", async () => {
    const { p, exit } = await status([], await statusEnv({ KUMO_STORE_TIMEOUT_MS: "abc" }));
    expect(exit).toEqual({ code: 1, signal: null });
    expect(notCloudLogging(p.lines)).toEqual([]);
    expect(errorLines(p).map((e) => e.message)).toEqual(["status: Invalid Kumo environment: KUMO_STORE_TIMEOUT_MS: Invalid input: expected number, received NaN"]);
  });
});
