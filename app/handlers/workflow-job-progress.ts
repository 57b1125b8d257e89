import type { Context, Logger } from "probot";
import type { KumoDeps } from "../deps.js";
import type { JobRecord } from "../store/job-store.js";
import { explainResolved } from "../explain/check-run.js";
import { jobIdOfRunner, WARM_JOB_ID } from "../github/jit-runners.js";
import { freeCapacity } from "../launch/capacity.js";
import { retireRunner } from "../launch/retire-runner.js";
import { jobLogger, specForJob } from "./job-context.js";

/**
 * GitHub's in_progress and completed: keep the record's lifecycle and
 * timestamps. Recorded even when queued never arrived, so a late queued
 * delivery can never start a runner for a job already running or done.
 */
export function workflowJobProgress(deps: KumoDeps) {
  return async (context: Context<"workflow_job.in_progress" | "workflow_job.completed">): Promise<void> => {
    const log = jobLogger(context);
    if (!log) return;
    // Only jobs Kumo serves get a record: GitHub-hosted jobs send these events too.
    const match = await specForJob(deps, context, log);
    if (!match.ok) return;
    const { workflow_job: job, repository } = context.payload;
    const record = await deps.store.recordProgress({
      jobId: job.id,
      status: context.payload.action,
      installationId: match.installationId,
      org: match.org,
      repo: repository.full_name,
      runId: job.run_id,
      runAttempt: job.run_attempt ?? 1,
      labels: job.labels,
      ...(job.runner_id ? { runnerId: job.runner_id } : {}),
      ...(job.runner_name ? { runnerName: job.runner_name } : {}),
      ...(job.started_at ? { startedAt: new Date(job.started_at) } : {}),
      ...(job.completed_at ? { completedAt: new Date(job.completed_at) } : {}),
      ...(job.conclusion ? { conclusion: job.conclusion } : {}),
    });
    log.info({ state: record.state, runnerName: job.runner_name, conclusion: job.conclusion }, `job ${context.payload.action}`);
    // A check run said why it waited: now it has a runner. (Nothing to do, and no call, in the steady state.)
    if (record.explained && job.runner_name) await explainResolved(deps, context.octokit, log, job.id);
    if (context.payload.action === "completed") logTimings(log, record);

    // Completed without ever getting a runner (cancelled while queued): the runner
    // launched for it is surplus, unless it already took another job.
    // A spec with a warm pool keeps it: reconcile trims the pool to its size.
    if (context.payload.action === "completed" && !job.runner_name && record.runnerId && record.runnerName && match.spec.warm) {
      log.info({ runnerName: record.runnerName }, "job cancelled before any runner took it: its runner stays for the warm pool");
    } else if (context.payload.action === "completed" && !job.runner_name && record.runnerId && record.runnerName) {
      await retireRunner(deps, context.octokit, log, {
        org: match.org,
        runnerId: record.runnerId,
        runnerName: record.runnerName,
        ...(record.execution ? { execution: record.execution } : {}),
      }, "job cancelled before any runner took it");
    }
    // Runners with the job's labels come from its spec: only a spec whose machines outlive them needs a look.
    if (context.payload.action === "completed" && job.runner_name && record.target && deps.launcher.outlivesRunner(record.target)) {
      await releaseMachine(deps, log, record, job.runner_name);
    }
    // Its runner has ended (or was just retired): a waiting job of a capped spec takes its place.
    if (context.payload.action === "completed") await freeCapacity(deps, context.octokit, context.log, record);
  };
}

/**
 * The machine of the runner that ran the job outlives it unless removed (a VM;
 * a Cloud Run execution ends by itself). The runner may have been launched
 * for another job with the same labels: its record knows the machine.
 */
async function releaseMachine(deps: KumoDeps, log: Logger, record: JobRecord, runnerName: string): Promise<void> {
  const owner = jobIdOfRunner(deps.config.runnerPrefix, runnerName);
  if (owner === undefined) return; // not one of Kumo's runners
  try {
    const launchedFor = owner === WARM_JOB_ID ? await deps.store.findWarmLaunch(runnerName) : owner === record.jobId ? record : await deps.store.get(owner);
    if (launchedFor?.runnerName !== runnerName || !launchedFor.execution) return;
    await deps.launcher.finished(launchedFor.execution);
  } catch (error) {
    log.warn({ runnerName, err: (error as Error).message }, "runner machine not removed; reconcile removes it");
  }
}

const ms = (from?: Date, to?: Date) => (from && to ? Math.max(0, to.getTime() - from.getTime()) : undefined);

/**
 * One line per completed job with its timings and runner spec, for log-based
 * metrics and dashboards (docs/troubleshooting.md shows one) without reading Firestore.
 */
function logTimings(log: Logger, record: JobRecord): void {
  const queued = record.createdAt ?? record.receivedAt;
  log.info(
    {
      queueMs: ms(queued, record.launchedAt),
      startMs: ms(record.launchedAt, record.startedAt),
      runMs: ms(record.startedAt, record.completedAt),
      totalMs: ms(queued, record.completedAt),
      spec: record.target ? `${record.org} [${record.target.labels.join(", ")}] → ${record.target.job.split("/").pop()}` : undefined,
      conclusion: record.conclusion,
      attempts: record.attempts,
    },
    "job timings",
  );
}
