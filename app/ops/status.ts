import { DEFAULT_RECONCILE_OPTIONS } from "../reconcile/context.js";
import { capacityOf, leaseActive, type CapacitySlot, type JobRecord, type JobState, type RunnerTarget } from "../store/job-store.js";

// `npm run status`: what Kumo's records say, for operators. Pure: records and
// capacity slots in, a report out (a JSON document, or a plain-text table).

/** The record fields the report reads: the status query selects only these. */
export const STATUS_FIELDS = [
  "jobId",
  "runId",
  "repo",
  "org",
  "state",
  "target",
  "createdAt",
  "receivedAt",
  "launchedAt",
  "startedAt",
  "completedAt",
  "attempts",
  "lastError",
  "conclusion",
  "leaseUntil",
  "execution",
] as const satisfies readonly (keyof JobRecord)[];

export type StatusRecord = Pick<JobRecord, (typeof STATUS_FIELDS)[number]>;

/** States of a job that is not done yet: listed whatever their age, so nothing waits out of sight. */
export const OPEN_STATES: readonly JobState[] = ["claimed", "launched", "waiting", "pending"];

/** Attention first. */
const STATE_ORDER: readonly JobState[] = ["failed", "pending", "waiting", "claimed", "launched", "running", "completed"];

/** A launched runner that has not started its job after this never came up (reconcile's grace period). */
export const NEVER_CAME_UP_MS = DEFAULT_RECONCILE_OPTIONS.launchGraceMs;

/** Jobs whose queued event never came have no spec recorded: grouped per org. */
const noSpecName = (org: string) => `${org} (no spec recorded)`;

export interface StatusInput {
  now: Date;
  /** Jobs received since this are reported (older ones only while open). */
  since: Date;
  /** How the window was asked for ("1h", "30m"), for the header. */
  window?: string;
  /** Jobs received since `since`, and open jobs (OPEN_STATES) of any age; duplicates are ignored. */
  records: readonly StatusRecord[];
  /** Capacity slots held (kumo-slots). */
  slots: readonly CapacitySlot[];
  /** GitHub's web address: https://github.com, or GitHub Enterprise Server's. */
  webUrl: string;
  /** A query returned as many records as it was allowed: some are missing. */
  truncated?: boolean;
}

export interface DurationStats {
  /** Jobs measured. */
  count: number;
  p50Ms: number;
  p95Ms: number;
}

export interface StatusJob {
  jobId: number;
  repo: string;
  runId: number;
  runUrl: string;
  state: JobState;
  conclusion?: string;
  spec: string | null;
  attempts: number;
  /** GitHub's created_at, or when Kumo received the job when GitHub's is unknown. */
  queuedAt: string;
  receivedAt: string;
  launchedAt?: string;
  startedAt?: string;
  completedAt?: string;
  lastError?: string;
}

export interface StatusSpec {
  name: string;
  org: string;
  labels: string[];
  /** Cloud Run job resource name; null for jobs whose queued event never came (no spec recorded). */
  job: string | null;
  maxRunners?: number;
  jobs: number;
  byState: Record<JobState, number>;
  durations: {
    queuedToLaunched: DurationStats | null;
    launchedToStarted: DurationStats | null;
    startedToCompleted: DurationStats | null;
  };
}

export interface StatusCapacity {
  spec: string;
  live: number;
  cap: number;
  waiting: number;
}

export interface StatusWaiting {
  jobId: number;
  repo: string;
  state: JobState;
  spec: string | null;
  queuedAt: string;
  waitedMs: number;
  why: string;
  runUrl: string;
}

export interface StatusFailed {
  jobId: number;
  repo: string;
  spec: string | null;
  attempts: number;
  queuedAt: string;
  lastError: string;
  runUrl: string;
}

export interface StatusNeverStarted {
  jobId: number;
  repo: string;
  spec: string | null;
  attempts: number;
  launchedAt: string;
  sinceLaunchMs: number;
  execution?: string;
  runUrl: string;
}

export interface StatusReport {
  now: string;
  since: string;
  window?: string;
  /** Some records were not read (a query limit): counts are partial. */
  truncated: boolean;
  total: number;
  byState: Record<JobState, number>;
  /** Attention first (by state), newest first within a state. */
  jobs: StatusJob[];
  specs: StatusSpec[];
  /** Specs with a maxRunners cap. */
  capacity: StatusCapacity[];
  /** Claimed, waiting and pending jobs, oldest first, with why. */
  waiting: StatusWaiting[];
  /** Failed jobs, newest first. */
  failed: StatusFailed[];
  /** Launched more than NEVER_CAME_UP_MS ago and not started, oldest launch first. */
  neverStarted: StatusNeverStarted[];
}

/** owner/name's workflow run on GitHub. */
export function runUrl(webUrl: string, repo: string, runId: number): string {
  return `${webUrl.replace(/\/+$/, "")}/${repo}/actions/runs/${runId}`;
}

/** The readable name of a runner spec, as capacity reports name it. */
export function specName(org: string, target: Pick<RunnerTarget, "labels" | "job">): string {
  return `${org} [${target.labels.join(", ")}] → ${target.job.split("/").pop()}`;
}

/** The capacity key of a spec (capacityOf's), whether or not it has a cap now. */
function capacityKey(org: string, target: RunnerTarget): string {
  return capacityOf(org, { ...target, maxRunners: target.maxRunners || 1 })!.key;
}

/** Nearest-rank percentile of ascending values. */
export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

function stats(values: number[]): DurationStats | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return { count: sorted.length, p50Ms: percentile(sorted, 50), p95Ms: percentile(sorted, 95) };
}

/** From one timestamp to the next; a clock skew between GitHub and Google never makes it negative. */
function between(from: Date | undefined, to: Date | undefined): number | undefined {
  return from && to ? Math.max(0, to.getTime() - from.getTime()) : undefined;
}

function zeroStates(): Record<JobState, number> {
  return { failed: 0, pending: 0, waiting: 0, claimed: 0, launched: 0, running: 0, completed: 0 };
}

const queuedAt = (r: StatusRecord): Date => r.createdAt ?? r.receivedAt;
const iso = (d: Date | undefined): string | undefined => d?.toISOString();

export function buildStatus(input: StatusInput): StatusReport {
  const now = input.now.getTime();
  const seen = new Set<number>();
  const records = input.records.filter((r) => !seen.has(r.jobId) && seen.add(r.jobId));
  const url = (r: StatusRecord) => runUrl(input.webUrl, r.repo, r.runId);
  const nameOf = (r: StatusRecord) => (r.target ? specName(r.org, r.target) : null);

  const byState = zeroStates();
  for (const r of records) byState[r.state]++;

  // Runner specs: counts and the durations between the lifecycle's timestamps.
  const specs = new Map<string, { spec: StatusSpec; samples: [number[], number[], number[]]; newest: number }>();
  for (const r of records) {
    const key = r.target ? capacityKey(r.org, r.target) : `\n${r.org}`;
    const entry = specs.get(key) ?? {
      spec: {
        name: r.target ? specName(r.org, r.target) : noSpecName(r.org),
        org: r.org,
        labels: r.target?.labels ?? [],
        job: r.target?.job ?? null,
        maxRunners: undefined,
        jobs: 0,
        byState: zeroStates(),
        durations: { queuedToLaunched: null, launchedToStarted: null, startedToCompleted: null },
      },
      samples: [[], [], []],
      newest: -Infinity,
    };
    specs.set(key, entry);
    // The newest record tells the spec's current cap.
    if (r.target && r.receivedAt.getTime() > entry.newest) {
      entry.newest = r.receivedAt.getTime();
      entry.spec.maxRunners = r.target.maxRunners || undefined;
    }
    entry.spec.jobs++;
    entry.spec.byState[r.state]++;
    const durations = [between(queuedAt(r), r.launchedAt), between(r.launchedAt, r.startedAt), between(r.startedAt, r.completedAt)];
    durations.forEach((ms, i) => {
      if (ms !== undefined) entry.samples[i]!.push(ms);
    });
  }
  for (const { spec, samples } of specs.values()) {
    spec.durations = { queuedToLaunched: stats(samples[0]), launchedToStarted: stats(samples[1]), startedToCompleted: stats(samples[2]) };
  }
  // Specs by name; an org's jobs without a spec after its specs.
  const specList = [...specs.values()].map((e) => e.spec).sort((a, b) => a.org.localeCompare(b.org) || Number(a.job === null) - Number(b.job === null) || a.name.localeCompare(b.name));

  // Capacity of capped specs: live slots, the cap, and jobs waiting for it.
  const capacity = new Map<string, StatusCapacity>();
  for (const [key, { spec }] of specs) if (spec.maxRunners) capacity.set(key, { spec: spec.name, live: 0, cap: spec.maxRunners, waiting: 0 });
  for (const slot of input.slots) {
    const row = capacity.get(slot.key) ?? { spec: slot.name, live: 0, cap: 0, waiting: 0 };
    row.live++;
    // A spec whose cap was removed since: its slots still tell the old one.
    if (!specs.get(slot.key)?.spec.maxRunners) row.cap = Math.max(row.cap, slot.max);
    capacity.set(slot.key, row);
  }
  for (const r of records) {
    if (r.state === "waiting" && r.target) {
      const row = capacity.get(capacityKey(r.org, r.target));
      if (row) row.waiting++;
    }
  }
  const capacityOfRecord = (r: StatusRecord) => (r.target ? capacity.get(capacityKey(r.org, r.target)) : undefined);

  const why = (r: StatusRecord): string => {
    switch (r.state) {
      case "waiting": {
        const row = capacityOfRecord(r);
        return row ? `maxRunners: ${row.live}/${row.cap} live, ${row.waiting} waiting` : (r.lastError ?? "maxRunners reached");
      }
      case "claimed":
        return leaseActive(r, input.now) ? "launch under way" : "launch interrupted (its claim expired): reconcile relaunches it";
      default:
        return r.lastError ?? "no reason recorded: reconcile retries";
    }
  };

  const byAttention = (a: StatusRecord, b: StatusRecord) =>
    STATE_ORDER.indexOf(a.state) - STATE_ORDER.indexOf(b.state) || queuedAt(b).getTime() - queuedAt(a).getTime() || b.jobId - a.jobId;
  const oldestFirst = (a: StatusRecord, b: StatusRecord) => queuedAt(a).getTime() - queuedAt(b).getTime() || a.jobId - b.jobId;

  return {
    now: input.now.toISOString(),
    since: input.since.toISOString(),
    ...(input.window ? { window: input.window } : {}),
    truncated: Boolean(input.truncated),
    total: records.length,
    byState,
    jobs: [...records].sort(byAttention).map((r) => ({
      jobId: r.jobId,
      repo: r.repo,
      runId: r.runId,
      runUrl: url(r),
      state: r.state,
      ...(r.conclusion ? { conclusion: r.conclusion } : {}),
      spec: nameOf(r),
      attempts: r.attempts,
      queuedAt: queuedAt(r).toISOString(),
      receivedAt: r.receivedAt.toISOString(),
      ...(r.launchedAt ? { launchedAt: iso(r.launchedAt) } : {}),
      ...(r.startedAt ? { startedAt: iso(r.startedAt) } : {}),
      ...(r.completedAt ? { completedAt: iso(r.completedAt) } : {}),
      ...(r.lastError ? { lastError: r.lastError } : {}),
    })),
    specs: specList,
    capacity: [...capacity.values()].sort((a, b) => a.spec.localeCompare(b.spec)),
    waiting: records
      .filter((r) => r.state === "claimed" || r.state === "waiting" || r.state === "pending")
      .sort(oldestFirst)
      .map((r) => ({
        jobId: r.jobId,
        repo: r.repo,
        state: r.state,
        spec: nameOf(r),
        queuedAt: queuedAt(r).toISOString(),
        waitedMs: Math.max(0, now - queuedAt(r).getTime()),
        why: why(r),
        runUrl: url(r),
      })),
    failed: records
      .filter((r) => r.state === "failed")
      .sort((a, b) => oldestFirst(b, a))
      .map((r) => ({
        jobId: r.jobId,
        repo: r.repo,
        spec: nameOf(r),
        attempts: r.attempts,
        queuedAt: queuedAt(r).toISOString(),
        lastError: r.lastError ?? "no reason recorded",
        runUrl: url(r),
      })),
    neverStarted: records
      .filter((r) => r.state === "launched" && !r.startedAt && r.launchedAt && now - r.launchedAt.getTime() > NEVER_CAME_UP_MS)
      .sort((a, b) => a.launchedAt!.getTime() - b.launchedAt!.getTime() || a.jobId - b.jobId)
      .map((r) => ({
        jobId: r.jobId,
        repo: r.repo,
        spec: nameOf(r),
        attempts: r.attempts,
        launchedAt: r.launchedAt!.toISOString(),
        sinceLaunchMs: now - r.launchedAt!.getTime(),
        ...(r.execution ? { execution: r.execution } : {}),
        runUrl: url(r),
      })),
  };
}

// ---------------------------------------------------------------------------------------------
// Text
// ---------------------------------------------------------------------------------------------

/** A duration measured: 0.8s, 42s, 4m05s, 1h02m, 2d03h. */
export function formatDuration(ms: number): string {
  if (ms < 9_950) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad2(s % 60)}s`;
  const m = Math.round(s / 60);
  if (m < 24 * 60) return `${Math.floor(m / 60)}h${pad2(m % 60)}m`;
  const h = Math.round(m / 60);
  return `${Math.floor(h / 24)}d${pad2(h % 24)}h`;
}

/** How long ago, coarse (rounded down) so that it reads the same for a while: 45s, 12m, 1h05m, 2d03h. */
export function formatAge(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m`;
  if (m < 24 * 60) return `${Math.floor(m / 60)}h${pad2(m % 60)}m`;
  const h = Math.floor(m / 60);
  return `${Math.floor(h / 24)}d${pad2(h % 24)}h`;
}

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}

function shorten(text: string, max: number): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** Aligned columns; `right` columns (numbers) aligned right; a string row is a note printed as is. */
function table(header: string[], rows: Array<string[] | string>, right: readonly number[] = []): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (typeof r === "string" ? 0 : r[i]!.length))));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.includes(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map((r) => (typeof r === "string" ? r : line(r)))];
}

export interface TextOptions {
  /** Jobs listed per state in the JOBS table, and per section below it (JSON lists all). */
  rows?: number;
  /** Longest error text shown in a cell. */
  errorWidth?: number;
}

/** The report as a terminal table: plain text, aligned columns. */
export function formatStatusText(report: StatusReport, options: TextOptions = {}): string {
  const rows = options.rows ?? 20;
  /** The first `rows` of a list, then a note of how many more. */
  const capped = (all: string[][], what: string): Array<string[] | string> =>
    all.length > rows ? [...all.slice(0, rows), `… and ${all.length - rows} more ${what} (--json lists all)`] : all;
  const errorWidth = options.errorWidth ?? 100;
  const now = Date.parse(report.now);
  const ago = (at: string) => `${formatAge(now - Date.parse(at))} ago`;
  const out: string[] = [];
  const section = (title: string, lines: string[]) => {
    out.push("", lines.length ? title : `${title}: none`, ...lines);
  };

  out.push(`Kumo status at ${report.now}: jobs received since ${report.since}${report.window ? ` (last ${report.window})` : ""}, and older ones still ${OPEN_STATES.join(", ")}`);
  const present = STATE_ORDER.filter((s) => report.byState[s] > 0);
  out.push(`${report.total} ${report.total === 1 ? "job" : "jobs"}${present.length ? `: ${present.map((s) => `${report.byState[s]} ${s}`).join(", ")}` : ""}`);
  if (report.truncated) out.push("WARNING: more records than one query reads; counts are partial (ask for a shorter --since)");

  const jobRows: Array<string[] | string> = [];
  for (const state of present) {
    const ofState = report.jobs.filter((j) => j.state === state);
    jobRows.push(...capped(ofState.map((j) => [j.conclusion ? `${j.state} (${j.conclusion})` : j.state, String(j.jobId), j.repo, ago(j.queuedAt), j.runUrl]), state));
  }
  section("JOBS", jobRows.length ? table(["STATE", "JOB", "REPOSITORY", "QUEUED", "RUN"], jobRows, [1]) : []);

  const states = present;
  section(
    "RUNNER SPECS",
    report.specs.length
      ? table(
          ["SPEC", "JOBS", ...states.map((s) => s.toUpperCase())],
          report.specs.map((s) => [s.name, String(s.jobs), ...states.map((state) => String(s.byState[state]))]),
          Array.from({ length: states.length + 1 }, (_, i) => i + 1),
        )
      : [],
  );

  const stat = (d: DurationStats | null) => (d ? `${formatDuration(d.p50Ms)} / ${formatDuration(d.p95Ms)} (${d.count})` : "-");
  section(
    "DURATIONS p50 / p95 (jobs measured)",
    report.specs.length
      ? table(
          ["SPEC", "QUEUED→LAUNCHED", "LAUNCHED→STARTED", "STARTED→COMPLETED"],
          report.specs.map((s) => [s.name, stat(s.durations.queuedToLaunched), stat(s.durations.launchedToStarted), stat(s.durations.startedToCompleted)]),
        )
      : [],
  );

  section(
    "CAPACITY (maxRunners)",
    report.capacity.length
      ? table(
          ["SPEC", "LIVE", "CAP", "WAITING"],
          report.capacity.map((c) => [c.spec, String(c.live), String(c.cap), String(c.waiting)]),
          [1, 2, 3],
        )
      : [],
  );

  section(
    "WAITING",
    report.waiting.length
      ? table(
          ["JOB", "STATE", "REPOSITORY", "QUEUED", "RUN", "WHY"],
          capped(report.waiting.map((w) => [String(w.jobId), w.state, w.repo, ago(w.queuedAt), w.runUrl, shorten(w.why, errorWidth)]), "waiting"),
          [0],
        )
      : [],
  );

  section(
    "FAILED",
    report.failed.length
      ? table(
          ["JOB", "REPOSITORY", "ATTEMPTS", "QUEUED", "RUN", "LAST ERROR"],
          capped(report.failed.map((f) => [String(f.jobId), f.repo, String(f.attempts), ago(f.queuedAt), f.runUrl, shorten(f.lastError, errorWidth)]), "failed"),
          [0, 2],
        )
      : [],
  );

  section(
    `NEVER CAME UP (launched over ${formatAge(NEVER_CAME_UP_MS)} ago, not started)`,
    report.neverStarted.length
      ? table(
          ["JOB", "REPOSITORY", "ATTEMPTS", "LAUNCHED", "RUN", "EXECUTION"],
          capped(report.neverStarted.map((n) => [String(n.jobId), n.repo, String(n.attempts), ago(n.launchedAt), n.runUrl, n.execution?.split("/").pop() ?? "-"]), "that never came up"),
          [0, 2],
        )
      : [],
  );
  return `${out.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------
// Arguments and environment
// ---------------------------------------------------------------------------------------------

export const STATUS_USAGE = "usage: npm run status -- [--since=30m|2h|1d|<ISO time>] [--json]";

export type StatusArgs = { since: Date; window?: string; json: boolean } | { help: true } | { error: string };

const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `--since=30m|2h|1d|<ISO time>` (default 1h; `--since 2h` too) and `--json`. */
export function parseStatusArgs(argv: readonly string[], now: Date): StatusArgs {
  let since: string | undefined;
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--json") json = true;
    else if (arg === "--help" || arg === "-h") return { help: true };
    else if (arg.startsWith("--since=")) since = arg.slice("--since=".length);
    else if (arg === "--since") {
      since = argv[++i];
      if (since === undefined) return { error: "--since needs a value" };
    } else return { error: `unknown argument ${JSON.stringify(arg)}` };
  }
  if (since === undefined) return { since: new Date(now.getTime() - UNIT_MS.h), window: "1h", json };
  const relative = /^(\d{1,6})([mhd])$/.exec(since);
  if (relative) {
    const ms = Number(relative[1]) * UNIT_MS[relative[2] as keyof typeof UNIT_MS];
    if (ms <= 0) return { error: `--since must be longer than 0, not ${JSON.stringify(since)}` };
    return { since: new Date(now.getTime() - ms), window: since, json };
  }
  const at = /^\d{4}-\d{2}-\d{2}([T ]\S+)?$/.test(since) ? Date.parse(since) : Number.NaN;
  if (Number.isNaN(at)) return { error: `--since must be 30m, 2h, 1d or an ISO time (2026-01-31T09:00:00Z), not ${JSON.stringify(since)}` };
  if (at > now.getTime()) return { error: `--since ${since} is in the future` };
  return { since: new Date(at), json };
}

/** GitHub's web address: GitHub Enterprise Server's when GHE_HOST is set (Probot's variables). */
export function webUrlFrom(env: NodeJS.ProcessEnv): string {
  return env.GHE_HOST ? `${env.GHE_PROTOCOL || "https"}://${env.GHE_HOST}` : "https://github.com";
}
