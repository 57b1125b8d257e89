import { getJob } from "../github/jobs.js";
import { deleteRunner } from "../github/jit-runners.js";
import { launchRunner } from "../launch/launch-runner.js";
import { isLaunchable } from "../store/firestore-job-store.js";
import { closeIfNotQueued, jobLog, kumoRunners, outOfTime, type ReconcileContext, type StepSummary } from "./context.js";

/**
 * Step 1: claims whose launch never finished (crash, lease expired), launches
 * that failed for a reason that may have passed (pending), and jobs waiting for
 * capacity. Still queued on GitHub → launch now, after removing any half-made
 * registration; otherwise the record is closed.
 */
export async function unfinishedLaunches(ctx: ReconcileContext): Promise<StepSummary> {
  const counts = { checked: 0, launched: 0, closed: 0, waiting: 0, failed: 0, skipped: 0, errors: 0 };
  const records = await ctx.deps.store.list(["claimed", "pending", "waiting"], ctx.options.batch);
  for (const seen of records) {
    if (outOfTime(ctx)) break;
    if (!isLaunchable(seen, ctx.now) || !seen.target) continue;
    counts.checked++;
    const log = jobLog(ctx, seen);
    try {
      const octokit = await ctx.octokitFor(seen.installationId);
      const github = await closeIfNotQueued(ctx, seen, await getJob(octokit, seen.repo, seen.jobId));
      if (github === "closed") {
        counts.closed++;
        log.info({ state: seen.state }, "reconcile: job no longer queued, record closed");
        continue;
      }
      if (github === "waiting") {
        counts.skipped++;
        continue;
      }
      if (seen.target.maxRunners && (await ctx.deps.store.countLive(seen.target, seen.jobId)) >= seen.target.maxRunners) {
        counts.waiting++;
        continue;
      }
      const claim = await ctx.deps.store.reclaim(seen, ctx.now);
      if (!claim.claimed) {
        counts.skipped++; // another pass or a redelivery took it
        continue;
      }
      if (claim.record.attempts > ctx.options.maxAttempts) {
        await ctx.deps.store.markNotLaunched(seen.jobId, claim.record.attempts, { state: "failed", reason: `gave up after ${ctx.options.maxAttempts} launch attempts; last: ${seen.lastError ?? "unknown"}` });
        counts.failed++;
        log.error({ attempts: ctx.options.maxAttempts, lastError: seen.lastError }, "reconcile: gave up launching a runner");
        continue;
      }
      // A crash between generate-jitconfig and runJob leaves a registration with this job's name.
      for (const runner of await kumoRunners(ctx, octokit, seen.org)) {
        if (runner.jobId === seen.jobId && !runner.busy) await deleteRunner(octokit, seen.org, runner.id);
      }
      const outcome = await launchRunner(ctx.deps, octokit, log, { ...claim.record, target: claim.record.target! });
      if (outcome.launched) counts.launched++;
      else if (outcome.state === "waiting") counts.waiting++;
      else counts.errors++;
    } catch (error) {
      counts.errors++;
      log.error({ err: (error as Error).message }, "reconcile: unfinished launch not repaired");
    }
  }
  return { step: "unfinished launches", counts };
}
