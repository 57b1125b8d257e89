import { describe, expect, test } from "@jest/globals";
import {
  buildStatus,
  formatAge,
  formatDuration,
  formatStatusText,
  parseStatusArgs,
  percentile,
  webUrlFrom,
  type StatusInput,
  type StatusRecord,
} from "../../app/ops/status.js";
import { capacityOf, type CapacitySlot, type RunnerTarget } from "../../app/store/job-store.js";

const NOW = new Date("2026-11-25T12:00:00.000Z");
const at = (hms: string) => new Date(`2026-11-25T${hms}.000Z`);
const SMALL: RunnerTarget = { labels: ["kumo", "small"], group: "cloudrun", groupId: 7, job: "projects/p/locations/us-central1/jobs/gha-runner-small", maxRunners: 2 };
const LARGE: RunnerTarget = { labels: ["kumo", "large"], group: "cloudrun", groupId: 7, job: "projects/p/locations/us-central1/jobs/gha-runner-large" };
const SMALL_KEY = capacityOf("acme", SMALL)!.key;

function record(jobId: number, fields: Partial<StatusRecord> & Pick<StatusRecord, "state">): StatusRecord {
  return { jobId, runId: jobId * 10, repo: "acme/api", org: "acme", target: SMALL, attempts: 1, receivedAt: at("11:00:00"), ...fields };
}

function slot(key: string, jobId: number, index: number, name = "acme [kumo, small] → gha-runner-small", max = 2): CapacitySlot {
  return { id: `${key}-${index}`, key, index, jobId, org: "acme", max, name, takenAt: at("11:00:00") };
}

/** A small world: two specs of one org, every state, an old waiting job, a slot of a spec no record names. */
function world(): StatusInput {
  const records: StatusRecord[] = [
    record(101, { state: "completed", conclusion: "success", createdAt: at("11:00:00"), receivedAt: at("11:00:01"), launchedAt: at("11:00:03"), startedAt: at("11:00:20"), completedAt: at("11:05:20") }),
    // No GitHub created_at: queued counts from receivedAt.
    record(102, { state: "completed", conclusion: "failure", receivedAt: at("11:10:00"), launchedAt: at("11:10:05"), startedAt: at("11:10:35"), completedAt: at("11:12:35") }),
    record(103, { state: "running", createdAt: at("11:50:00"), receivedAt: at("11:50:00"), launchedAt: at("11:50:02"), startedAt: at("11:50:12") }),
    record(104, { state: "waiting", attempts: 0, createdAt: at("11:55:00"), receivedAt: at("11:55:00"), lastError: "maxRunners 2 of [kumo, small] reached; launched when a runner frees" }),
    record(105, { state: "pending", repo: "acme/web", target: LARGE, createdAt: at("11:58:00"), receivedAt: at("11:58:00"), lastError: "Cloud Run job: UNAVAILABLE: The service is currently unavailable." }),
    record(106, { state: "launched", createdAt: at("11:40:00"), receivedAt: at("11:40:00"), launchedAt: at("11:40:04"), execution: "projects/p/locations/us-central1/jobs/gha-runner-small/executions/gha-runner-small-x7k2p" }),
    record(107, { state: "failed", repo: "acme/web", target: LARGE, attempts: 3, createdAt: at("11:30:00"), receivedAt: at("11:30:00"), lastError: 'runner group "gpu" not found:\n create it or fix runners.0.group' }),
    // Launched 90 s ago: not yet late.
    record(108, { state: "launched", repo: "acme/web", target: LARGE, createdAt: at("11:58:30"), receivedAt: at("11:58:30"), launchedAt: at("11:58:31") }),
    record(109, { state: "claimed", repo: "acme/web", target: LARGE, createdAt: at("11:59:50"), receivedAt: at("11:59:50"), leaseUntil: at("12:00:50") }),
    // Its in_progress and completed came before queued: no spec known.
    record(110, { state: "completed", conclusion: "success", repo: "acme/docs", target: undefined, attempts: 0, receivedAt: at("11:20:00"), startedAt: at("11:19:00"), completedAt: at("11:20:00") }),
    // Received before the window, still waiting (read by the open-states query).
    record(111, { state: "waiting", attempts: 0, createdAt: at("09:00:00"), receivedAt: at("09:00:00"), lastError: "maxRunners 2 of [kumo, small] reached; launched when a runner frees" }),
  ];
  return {
    now: NOW,
    since: at("11:00:00"),
    window: "1h",
    // 103 and 106 read by both queries.
    records: [...records, records[2]!, records[5]!],
    slots: [slot(SMALL_KEY, 103, 0), slot(SMALL_KEY, 106, 1), slot("0123456789abcdef01234567", 900, 0, "acme [kumo, gpu] → gha-runner-gpu", 1)],
    webUrl: "https://github.com",
  };
}

const SMALL_NAME = "acme [kumo, small] → gha-runner-small";
const LARGE_NAME = "acme [kumo, large] → gha-runner-large";
const run = (repo: string, jobId: number) => `https://github.com/${repo}/actions/runs/${jobId * 10}`;

describe("buildStatus: the JSON document", () => {
  const report = buildStatus(world());

  test("window, counts by state (each job once), jobs attention first and newest first within a state", () => {
    expect(report).toMatchObject({ now: "2026-11-25T12:00:00.000Z", since: "2026-11-25T11:00:00.000Z", window: "1h", truncated: false, total: 11 });
    expect(report.byState).toEqual({ failed: 1, pending: 1, waiting: 2, claimed: 1, launched: 2, running: 1, completed: 3 });
    expect(report.jobs.map((j) => [j.state, j.jobId])).toEqual([
      ["failed", 107], ["pending", 105], ["waiting", 104], ["waiting", 111], ["claimed", 109],
      ["launched", 108], ["launched", 106], ["running", 103], ["completed", 110], ["completed", 102], ["completed", 101],
    ]);
    expect(report.jobs.find((j) => j.jobId === 101)).toEqual({
      jobId: 101,
      repo: "acme/api",
      runId: 1010,
      runUrl: "https://github.com/acme/api/actions/runs/1010",
      state: "completed",
      conclusion: "success",
      spec: SMALL_NAME,
      attempts: 1,
      queuedAt: "2026-11-25T11:00:00.000Z",
      receivedAt: "2026-11-25T11:00:01.000Z",
      launchedAt: "2026-11-25T11:00:03.000Z",
      startedAt: "2026-11-25T11:00:20.000Z",
      completedAt: "2026-11-25T11:05:20.000Z",
    });
    // Without GitHub's created_at, queued is when Kumo received the job.
    expect(report.jobs.find((j) => j.jobId === 102)!.queuedAt).toBe("2026-11-25T11:10:00.000Z");
  });

  test("per spec: counts by state, and queued → launched → started → completed p50/p95 (nearest rank)", () => {
    const none = { failed: 0, pending: 0, waiting: 0, claimed: 0, launched: 0, running: 0, completed: 0 };
    expect(report.specs).toEqual([
      {
        name: LARGE_NAME,
        org: "acme",
        labels: ["kumo", "large"],
        job: "projects/p/locations/us-central1/jobs/gha-runner-large",
        jobs: 4,
        byState: { ...none, failed: 1, pending: 1, claimed: 1, launched: 1 },
        // 108: 11:58:30 → 11:58:31.
        durations: { queuedToLaunched: { count: 1, p50Ms: 1_000, p95Ms: 1_000 }, launchedToStarted: null, startedToCompleted: null },
      },
      {
        name: SMALL_NAME,
        org: "acme",
        labels: ["kumo", "small"],
        job: "projects/p/locations/us-central1/jobs/gha-runner-small",
        maxRunners: 2,
        jobs: 6,
        byState: { ...none, waiting: 2, launched: 1, running: 1, completed: 2 },
        durations: {
          // 103: 2 s, 101: 3 s (from created_at), 106: 4 s, 102: 5 s (from receivedAt).
          queuedToLaunched: { count: 4, p50Ms: 3_000, p95Ms: 5_000 },
          // 103: 10 s, 101: 17 s, 102: 30 s.
          launchedToStarted: { count: 3, p50Ms: 17_000, p95Ms: 30_000 },
          // 102: 2 min, 101: 5 min.
          startedToCompleted: { count: 2, p50Ms: 120_000, p95Ms: 300_000 },
        },
      },
      {
        name: "acme (no spec recorded)",
        org: "acme",
        labels: [],
        job: null,
        jobs: 1,
        byState: { ...none, completed: 1 },
        durations: { queuedToLaunched: null, launchedToStarted: null, startedToCompleted: { count: 1, p50Ms: 60_000, p95Ms: 60_000 } },
      },
    ]);
  });

  test("capacity: live slots, cap and waiting jobs per capped spec (a spec known only from its slots too)", () => {
    expect(report.capacity).toEqual([
      { spec: "acme [kumo, gpu] → gha-runner-gpu", live: 1, cap: 1, waiting: 0 },
      { spec: SMALL_NAME, live: 2, cap: 2, waiting: 2 },
    ]);
  });

  test("waiting, oldest first, with why: maxRunners (live/cap/waiting), lastError, a launch under way", () => {
    expect(report.waiting).toEqual([
      { jobId: 111, repo: "acme/api", state: "waiting", spec: SMALL_NAME, queuedAt: "2026-11-25T09:00:00.000Z", waitedMs: 3 * 3_600_000, why: "maxRunners: 2/2 live, 2 waiting", runUrl: run("acme/api", 111) },
      { jobId: 104, repo: "acme/api", state: "waiting", spec: SMALL_NAME, queuedAt: "2026-11-25T11:55:00.000Z", waitedMs: 300_000, why: "maxRunners: 2/2 live, 2 waiting", runUrl: run("acme/api", 104) },
      { jobId: 105, repo: "acme/web", state: "pending", spec: LARGE_NAME, queuedAt: "2026-11-25T11:58:00.000Z", waitedMs: 120_000, why: "Cloud Run job: UNAVAILABLE: The service is currently unavailable.", runUrl: run("acme/web", 105) },
      { jobId: 109, repo: "acme/web", state: "claimed", spec: LARGE_NAME, queuedAt: "2026-11-25T11:59:50.000Z", waitedMs: 10_000, why: "launch under way", runUrl: run("acme/web", 109) },
    ]);
  });

  test("failed with lastError; launched over 5 minutes ago and not started (not 108, launched 89 s ago)", () => {
    expect(report.failed).toEqual([
      { jobId: 107, repo: "acme/web", spec: LARGE_NAME, attempts: 3, queuedAt: "2026-11-25T11:30:00.000Z", lastError: 'runner group "gpu" not found:\n create it or fix runners.0.group', runUrl: run("acme/web", 107) },
    ]);
    expect(report.neverStarted).toEqual([
      {
        jobId: 106,
        repo: "acme/api",
        spec: SMALL_NAME,
        attempts: 1,
        launchedAt: "2026-11-25T11:40:04.000Z",
        sinceLaunchMs: 1_196_000,
        execution: "projects/p/locations/us-central1/jobs/gha-runner-small/executions/gha-runner-small-x7k2p",
        runUrl: run("acme/api", 106),
      },
    ]);
  });

  test.each([
    ["a claim whose lease expired", { state: "claimed", leaseUntil: at("11:59:00") }, "launch interrupted (its claim expired): reconcile relaunches it"],
    ["a claim without lease", { state: "claimed" }, "launch interrupted (its claim expired): reconcile relaunches it"],
    ["pending without a recorded reason", { state: "pending" }, "no reason recorded: reconcile retries"],
    ["waiting of a spec no longer capped", { state: "waiting", target: LARGE, lastError: "maxRunners 1 of [kumo, large] reached" }, "maxRunners 1 of [kumo, large] reached"],
  ] as const)("why: %s", (_, fields, why) => {
    const status = buildStatus({ ...world(), records: [record(200, { ...fields })], slots: [] });
    expect(status.waiting.map((w) => w.why)).toEqual([why]);
  });

  test("a spec's cap is its newest record's; a spec whose cap was removed keeps its slots' cap", () => {
    const raised = { ...SMALL, maxRunners: 5 };
    const status = buildStatus({
      ...world(),
      records: [
        record(301, { state: "waiting", receivedAt: at("11:10:00") }),
        record(302, { state: "waiting", target: raised, receivedAt: at("11:20:00") }),
        record(303, { state: "running", target: LARGE }),
      ],
      slots: [slot(SMALL_KEY, 1, 0), slot(capacityOf("acme", { ...LARGE, maxRunners: 3 })!.key, 303, 0, LARGE_NAME, 3)],
    });
    expect(status.capacity).toEqual([
      { spec: LARGE_NAME, live: 1, cap: 3, waiting: 0 },
      { spec: SMALL_NAME, live: 1, cap: 5, waiting: 2 },
    ]);
  });

  test("GitHub Enterprise Server: links to its host", () => {
    const status = buildStatus({ ...world(), webUrl: webUrlFrom({ GHE_HOST: "ghe.example.com" }) });
    expect(status.jobs[0]!.runUrl).toBe("https://ghe.example.com/acme/web/actions/runs/1070");
  });
});

describe("formatStatusText: the terminal table", () => {
  test("a small world, exactly", () => {
    expect(formatStatusText(buildStatus(world()))).toBe(
      [
        "Kumo status at 2026-11-25T12:00:00.000Z: jobs received since 2026-11-25T11:00:00.000Z (last 1h), and older ones still claimed, launched, waiting, pending",
        "11 jobs: 1 failed, 1 pending, 2 waiting, 1 claimed, 2 launched, 1 running, 3 completed",
        "",
        "JOBS",
        "STATE                JOB  REPOSITORY  QUEUED     RUN",
        "failed               107  acme/web    30m ago    https://github.com/acme/web/actions/runs/1070",
        "pending              105  acme/web    2m ago     https://github.com/acme/web/actions/runs/1050",
        "waiting              104  acme/api    5m ago     https://github.com/acme/api/actions/runs/1040",
        "waiting              111  acme/api    3h00m ago  https://github.com/acme/api/actions/runs/1110",
        "claimed              109  acme/web    10s ago    https://github.com/acme/web/actions/runs/1090",
        "launched             108  acme/web    1m ago     https://github.com/acme/web/actions/runs/1080",
        "launched             106  acme/api    20m ago    https://github.com/acme/api/actions/runs/1060",
        "running              103  acme/api    10m ago    https://github.com/acme/api/actions/runs/1030",
        "completed (success)  110  acme/docs   40m ago    https://github.com/acme/docs/actions/runs/1100",
        "completed (failure)  102  acme/api    50m ago    https://github.com/acme/api/actions/runs/1020",
        "completed (success)  101  acme/api    1h00m ago  https://github.com/acme/api/actions/runs/1010",
        "",
        "RUNNER SPECS",
        "SPEC                                   JOBS  FAILED  PENDING  WAITING  CLAIMED  LAUNCHED  RUNNING  COMPLETED",
        "acme [kumo, large] → gha-runner-large     4       1        1        0        1         1        0          0",
        "acme [kumo, small] → gha-runner-small     6       0        0        2        0         1        1          2",
        "acme (no spec recorded)                   1       0        0        0        0         0        0          1",
        "",
        "DURATIONS p50 / p95 (jobs measured)",
        "SPEC                                   QUEUED→LAUNCHED  LAUNCHED→STARTED  STARTED→COMPLETED",
        "acme [kumo, large] → gha-runner-large  1.0s / 1.0s (1)  -                 -",
        "acme [kumo, small] → gha-runner-small  3.0s / 5.0s (4)  17s / 30s (3)     2m00s / 5m00s (2)",
        "acme (no spec recorded)                -                -                 1m00s / 1m00s (1)",
        "",
        "CAPACITY (maxRunners)",
        "SPEC                                   LIVE  CAP  WAITING",
        "acme [kumo, gpu] → gha-runner-gpu         1    1        0",
        "acme [kumo, small] → gha-runner-small     2    2        2",
        "",
        "WAITING",
        "JOB  STATE    REPOSITORY  QUEUED     RUN                                            WHY",
        "111  waiting  acme/api    3h00m ago  https://github.com/acme/api/actions/runs/1110  maxRunners: 2/2 live, 2 waiting",
        "104  waiting  acme/api    5m ago     https://github.com/acme/api/actions/runs/1040  maxRunners: 2/2 live, 2 waiting",
        "105  pending  acme/web    2m ago     https://github.com/acme/web/actions/runs/1050  Cloud Run job: UNAVAILABLE: The service is currently unavailable.",
        "109  claimed  acme/web    10s ago    https://github.com/acme/web/actions/runs/1090  launch under way",
        "",
        "FAILED",
        "JOB  REPOSITORY  ATTEMPTS  QUEUED   RUN                                            LAST ERROR",
        '107  acme/web           3  30m ago  https://github.com/acme/web/actions/runs/1070  runner group "gpu" not found: create it or fix runners.0.group',
        "",
        "NEVER CAME UP (launched over 5m ago, not started)",
        "JOB  REPOSITORY  ATTEMPTS  LAUNCHED  RUN                                            EXECUTION",
        "106  acme/api           1  19m ago   https://github.com/acme/api/actions/runs/1060  gha-runner-small-x7k2p",
        "",
      ].join("\n"),
    );
  });

  test("nothing recorded: every section says none", () => {
    const text = formatStatusText(buildStatus({ now: NOW, since: at("11:30:00"), window: "30m", records: [], slots: [], webUrl: "https://github.com" }));
    expect(text).toBe(
      [
        "Kumo status at 2026-11-25T12:00:00.000Z: jobs received since 2026-11-25T11:30:00.000Z (last 30m), and older ones still claimed, launched, waiting, pending",
        "0 jobs",
        "",
        "JOBS: none",
        "",
        "RUNNER SPECS: none",
        "",
        "DURATIONS p50 / p95 (jobs measured): none",
        "",
        "CAPACITY (maxRunners): none",
        "",
        "WAITING: none",
        "",
        "FAILED: none",
        "",
        "NEVER CAME UP (launched over 5m ago, not started): none",
        "",
      ].join("\n"),
    );
  });

  test("more jobs of a state or section than rows: a note says how many more; a long error is shortened; truncated reads warn", () => {
    const records = Array.from({ length: 4 }, (_, i) => record(400 + i, { state: "failed", createdAt: at(`11:0${i}:00`), lastError: `x${"y".repeat(200)}` }));
    const text = formatStatusText(buildStatus({ ...world(), since: at("11:00:00"), window: undefined, records, slots: [], truncated: true }), { rows: 2, errorWidth: 12 });
    expect(text.split("\n").slice(0, 9)).toEqual([
      "Kumo status at 2026-11-25T12:00:00.000Z: jobs received since 2026-11-25T11:00:00.000Z, and older ones still claimed, launched, waiting, pending",
      "4 jobs: 4 failed",
      "WARNING: more records than one query reads; counts are partial (ask for a shorter --since)",
      "",
      "JOBS",
      "STATE   JOB  REPOSITORY  QUEUED   RUN",
      "failed  403  acme/api    57m ago  https://github.com/acme/api/actions/runs/4030",
      "failed  402  acme/api    58m ago  https://github.com/acme/api/actions/runs/4020",
      "… and 2 more failed (--json lists all)",
    ]);
    expect(text.split("\n").slice(-8)).toEqual([
      "FAILED",
      "JOB  REPOSITORY  ATTEMPTS  QUEUED   RUN                                            LAST ERROR",
      "403  acme/api           1  57m ago  https://github.com/acme/api/actions/runs/4030  xyyyyyyyyyy…",
      "402  acme/api           1  58m ago  https://github.com/acme/api/actions/runs/4020  xyyyyyyyyyy…",
      "… and 2 more failed (--json lists all)",
      "",
      "NEVER CAME UP (launched over 5m ago, not started): none",
      "",
    ]);
  });
});

describe("formats", () => {
  test.each([
    [0, "0.0s"], [840, "0.8s"], [9_949, "9.9s"], [9_950, "10s"], [42_400, "42s"], [59_499, "59s"], [59_500, "1m00s"],
    [245_000, "4m05s"], [3_599_499, "59m59s"], [3_599_500, "1h00m"], [3_720_000, "1h02m"], [86_400_000, "1d00h"], [183_600_000, "2d03h"],
  ])("duration %p ms → %p", (ms, text) => expect(formatDuration(ms)).toBe(text));

  test.each([
    [-5, "0s"], [59_999, "59s"], [60_000, "1m"], [3_599_999, "59m"], [3_600_000, "1h00m"], [3_900_000, "1h05m"], [183_600_000, "2d03h"],
  ])("age %p ms → %p", (ms, text) => expect(formatAge(ms)).toBe(text));

  test.each([
    [[1], 50, 1], [[1], 95, 1], [[1, 2], 50, 1], [[1, 2], 95, 2], [[1, 2, 3, 4], 50, 2], [Array.from({ length: 20 }, (_, i) => i + 1), 95, 19], [Array.from({ length: 100 }, (_, i) => i + 1), 95, 95],
  ])("percentile of %p, p%p → %p", (values, p, value) => expect(percentile(values, p)).toBe(value));

  test.each([
    [{}, "https://github.com"],
    [{ GHE_HOST: "ghe.example.com" }, "https://ghe.example.com"],
    [{ GHE_HOST: "127.0.0.1:8080", GHE_PROTOCOL: "http" }, "http://127.0.0.1:8080"],
  ])("web address of %p → %p", (env, url) => expect(webUrlFrom(env)).toBe(url));
});

describe("parseStatusArgs", () => {
  const ago = (ms: number) => new Date(NOW.getTime() - ms);
  test.each([
    [[], { since: ago(3_600_000), window: "1h", json: false }],
    [["--json"], { since: ago(3_600_000), window: "1h", json: true }],
    [["--since=30m"], { since: ago(1_800_000), window: "30m", json: false }],
    [["--since", "2h", "--json"], { since: ago(7_200_000), window: "2h", json: true }],
    [["--since=1d"], { since: ago(86_400_000), window: "1d", json: false }],
    [["--since=2026-11-25T09:30:00Z"], { since: new Date("2026-11-25T09:30:00Z"), json: false }],
    [["--since=2026-11-25T10:00:00.000+01:00"], { since: new Date("2026-11-25T09:00:00Z"), json: false }],
    [["--help"], { help: true }],
  ])("%p → %p", (argv, parsed) => expect(parseStatusArgs(argv, NOW)).toEqual(parsed));

  test.each([
    [["--since=abc"], '--since must be 30m, 2h, 1d or an ISO time (2026-01-31T09:00:00Z), not "abc"'],
    [["--since=5x"], '--since must be 30m, 2h, 1d or an ISO time (2026-01-31T09:00:00Z), not "5x"'],
    [["--since=2026-13-45"], '--since must be 30m, 2h, 1d or an ISO time (2026-01-31T09:00:00Z), not "2026-13-45"'],
    [["--since=0m"], '--since must be longer than 0, not "0m"'],
    [["--since=2026-11-26T00:00:00Z"], "--since 2026-11-26T00:00:00Z is in the future"],
    [["--since"], "--since needs a value"],
    [["--verbose"], 'unknown argument "--verbose"'],
    [["1h"], 'unknown argument "1h"'],
  ])("%p → error %p", (argv, error) => expect(parseStatusArgs(argv, NOW)).toEqual({ error }));
});
