import type { Logger } from "probot";
import type { KumoDeps } from "../deps.js";
import type { GitHubJob } from "../github/jobs.js";
import type { Octokit } from "../github/octokit.js";
import type { JobRecord } from "../store/job-store.js";

export interface ReconcileOptions {
  /** A launched runner that has not taken its still-queued job after this is looked at. */
  launchGraceMs: number;
  /** A surplus runner is left this long after its record last changed (a launch may be under way). */
  runnerGraceMs: number;
  /** Launch attempts per job before the record is marked failed. */
  maxAttempts: number;
  /** Records looked at per step and pass. */
  batch: number;
  /** Redeliveries per lost webhook. */
  maxRedeliveries: number;
  /** How far back the first pass looks for lost webhooks (GitHub keeps 3 days). */
  firstLookbackMs: number;
  /** The pass stops starting new work after this long. */
  budgetMs: number;
}

export const DEFAULT_RECONCILE_OPTIONS: ReconcileOptions = {
  launchGraceMs: 5 * 60_000,
  runnerGraceMs: 2 * 60_000,
  maxAttempts: 3,
  batch: 200,
  maxRedeliveries: 3,
  firstLookbackMs: 60 * 60_000,
  budgetMs: 4 * 60_000,
};

export interface ReconcileContext {
  deps: KumoDeps;
  log: Logger;
  now: Date;
  options: ReconcileOptions;
  /** The app's JWT octokit (deliveries, installations). */
  appOctokit: Octokit;
  /** An installation's octokit (memoized by the caller). */
  octokitFor(installationId: number): Promise<Octokit>;
  /** Organization installations of the app. */
  installations(): Promise<Array<{ id: number; org: string }>>;
}

/** One line of the pass summary: a step and its counts. */
export interface StepSummary {
  step: string;
  counts: Record<string, number>;
  /** Why the step as a whole could not run; per-item failures are only counted. */
  failed?: string;
  /** Lines printed under the summary (each capped spec's live/cap/waiting). */
  details?: string[];
}

export function outOfTime(ctx: ReconcileContext): boolean {
  return Date.now() - ctx.now.getTime() > ctx.options.budgetMs;
}

/** Whether GitHub still has the job queued; when it no longer waits for a runner, the record is brought up to date. */
export async function closeIfNotQueued(ctx: ReconcileContext, record: JobRecord, job: GitHubJob | undefined): Promise<"queued" | "waiting" | "closed"> {
  if (job?.status === "queued") return "queued";
  // Waiting for an environment approval, or not yet queued: no runner needed yet.
  if (job && ["waiting", "pending", "requested"].includes(job.status)) return "waiting";
  await ctx.deps.store.recordProgress({
    jobId: record.jobId,
    status: job?.status === "in_progress" ? "in_progress" : "completed",
    installationId: record.installationId,
    org: record.org,
    repo: record.repo,
    runId: record.runId,
    runAttempt: record.runAttempt,
    labels: record.labels,
    ...(job?.runnerId ? { runnerId: job.runnerId } : {}),
    ...(job?.runnerName ? { runnerName: job.runnerName } : {}),
    ...(job?.startedAt ? { startedAt: new Date(job.startedAt) } : {}),
    ...(job?.completedAt ? { completedAt: new Date(job.completedAt) } : {}),
    conclusion: job ? (job.conclusion ?? job.status) : "job not found on GitHub",
  });
  return "closed";
}

/** Whether the record's job waits for exactly this runner: its launch made it, or is making it (registered, not yet recorded). */
export function waitsFor(record: JobRecord | undefined, runner: { name: string; attempt: number }): boolean {
  if (!record) return false;
  return (record.state === "launched" && record.runnerName === runner.name) || (record.state === "claimed" && record.attempts === runner.attempt);
}

export function jobLog(ctx: ReconcileContext, record: JobRecord): Logger {
  return ctx.log.child({ jobId: record.jobId, repo: record.repo });
}

