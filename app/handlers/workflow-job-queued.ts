import type { Context } from "probot";
import type { KumoDeps } from "../deps.js";
import { LaunchError } from "../errors.js";
import { explainWait } from "../explain/check-run.js";
import type { WaitReason } from "../explain/reasons.js";
import { launchWaitingAfter } from "../launch/capacity.js";
import { launchRunner } from "../launch/launch-runner.js";
import { launchTarget, type LaunchTarget } from "../launcher/launcher.js";
import { explainedJob, jobLogger, specForJob } from "./job-context.js";

/**
 * The fast path: match → claim in the store → JIT config → one runner
 * machine (a Cloud Run execution or a VM). Duplicate and late deliveries stop at the claim.
 */
export function workflowJobQueued(deps: KumoDeps) {
  return async (context: Context<"workflow_job.queued">): Promise<void> => {
    const log = jobLogger(context);
    if (!log) return;
    const match = await specForJob(deps, context, log);
    // Only here, at queued: the one event a waiting job is sure to have.
    const tell = async (org: string, why: WaitReason) => {
      const job = explainedJob(context, org);
      if (job) await explainWait(deps, context.octokit, log, job, why);
    };
    if (!match.ok) {
      if (match.why && match.org) await tell(match.org, match.why);
      return;
    }
    const { org, installationId, spec } = match;
    const { workflow_job: job, repository } = context.payload;

    const groupId = await deps.groups.resolve(context.octokit, org, repository.name, spec.group);
    if (groupId === undefined) {
      log.warn({ group: spec.group }, `runner group "${spec.group}" does not exist or is not available to ${repository.full_name}: no runner started`);
      if (match.explain) await tell(org, { kind: "group-not-visible", group: spec.group, repo: repository.full_name });
      return;
    }
    let where: LaunchTarget;
    try {
      where = launchTarget(spec, deps.config);
    } catch (error) {
      log.error({ err: (error as Error).message }, "cannot name where runners are made: no runner started");
      return;
    }

    const claim = await deps.store.claim({
      jobId: job.id,
      runId: job.run_id,
      runAttempt: job.run_attempt ?? 1,
      installationId,
      org,
      repo: repository.full_name,
      labels: job.labels,
      target: {
        labels: spec.labels,
        group: spec.group,
        groupId,
        ...where,
        ...(spec.maxRunners ? { maxRunners: spec.maxRunners } : {}),
        ...(match.explain ? {} : { explain: false }),
      },
      deliveryId: context.id,
      ...(job.created_at ? { createdAt: new Date(job.created_at) } : {}),
      ...(job.name ? { name: job.name } : {}),
      ...(job.head_sha ? { headSha: job.head_sha } : {}),
    });
    if (!claim.claimed) {
      log.info({ state: claim.record.state, attempts: claim.record.attempts }, "job already handled: duplicate or late delivery");
      return;
    }

    const { record } = claim;
    const outcome = await launchRunner(deps, context.octokit, log, { ...record, target: record.target! });
    await launchWaitingAfter(deps, context.octokit, context.log, record, record.target!, outcome);
    // Transient failures are retried by reconcile, which explains them if they last.
    if (!outcome.launched && outcome.state === "failed" && match.explain) await tell(org, { kind: "launch-failed", reason: outcome.reason, final: true });
    // A launch failure answers 5xx so the delivery shows as failed; waiting for capacity is not a failure.
    if (!outcome.launched && !outcome.deferred) {
      throw new LaunchError(`job ${job.id}: ${outcome.reason}`, outcome.state === "pending");
    }
  };
}
