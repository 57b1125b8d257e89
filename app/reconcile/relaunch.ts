import type { Logger } from "probot";
import type { Octokit } from "../github/octokit.js";
import { explainRecord } from "../explain/check-run.js";
import { freeCapacity, launchWaitingAfter } from "../launch/capacity.js";
import { launchRunner } from "../launch/launch-runner.js";
import type { JobRecord } from "../store/job-store.js";
import type { ReconcileContext } from "./context.js";

export type RelaunchOutcome = "launched" | "waiting" | "failed" | "skipped" | "error";

/**
 * Reconcile's new launch attempt for a job it saw still queued: a transaction
 * takes the record as it was seen (of concurrent passes, one wins), `cleanUp`
 * removes what the previous attempt left, then a bounded number of attempts.
 */
export async function relaunch(
  ctx: ReconcileContext,
  octokit: Octokit,
  log: Logger,
  seen: JobRecord,
  why: string,
  cleanUp: () => Promise<unknown>,
): Promise<RelaunchOutcome> {
  const claim = await ctx.deps.store.reclaim(seen, ctx.now);
  if (!claim.claimed) return "skipped"; // another pass or a redelivery took it
  await cleanUp();
  const { attempts } = claim.record;
  // Claims that only found the capacity full started nothing and do not count.
  if (attempts - (claim.record.waits ?? 0) > ctx.options.maxAttempts) {
    await ctx.deps.store.markNotLaunched(seen.jobId, attempts, { state: "failed", reason: `gave up after ${ctx.options.maxAttempts} launch attempts: ${why}` });
    log.error({ attempts: ctx.options.maxAttempts, why }, "reconcile: gave up launching a runner");
    await explainRecord(ctx.deps, octokit, log, claim.record, { kind: "launch-failed", reason: `gave up after ${ctx.options.maxAttempts} launch attempts: ${why}`, final: true }, true);
    await freeCapacity(ctx.deps, octokit, ctx.log, claim.record);
    return "failed";
  }
  log.info({ attempt: attempts, why }, "reconcile: launching a runner");
  const outcome = await launchRunner(ctx.deps, octokit, log, { ...claim.record, target: claim.record.target! });
  await launchWaitingAfter(ctx.deps, octokit, ctx.log, claim.record, claim.record.target!, outcome);
  // Enqueued counts as launched: the launch queue makes it.
  if (outcome.launched || outcome.state === "queued") return "launched";
  // A launch that keeps failing: after a while the job's commit says why.
  const waitedMs = ctx.now.getTime() - (seen.createdAt ?? seen.receivedAt).getTime();
  if (!outcome.deferred && waitedMs >= ctx.deps.config.explainAfterMs) {
    await explainRecord(ctx.deps, octokit, log, claim.record, { kind: "launch-failed", reason: outcome.reason, final: outcome.state === "failed" }, outcome.state === "failed");
  }
  return outcome.state === "waiting" ? "waiting" : "error";
}
