import { getJob } from "../github/jobs.js";
import { deleteRunner, listKumoRunners, type KumoRunner } from "../github/jit-runners.js";
import { capacityOf, isLaunchable } from "../store/job-store.js";
import { closeIfNotQueued, jobLog, outOfTime, type ReconcileContext, type StepSummary } from "./context.js";
import { relaunch } from "./relaunch.js";

/**
 * Step 1: claims whose launch never finished (crash, lease expired), launches
 * that failed for a reason that may have passed (pending), and jobs waiting for
 * capacity. Still queued on GitHub → launch now, after removing any half-made
 * registration; otherwise the record is closed.
 */
export async function unfinishedLaunches(ctx: ReconcileContext): Promise<StepSummary> {
  const counts = { checked: 0, launched: 0, closed: 0, waiting: 0, failed: 0, skipped: 0, errors: 0 };
  const records = await ctx.deps.store.list(["claimed", "pending", "waiting"], ctx.options.batch);
  // Kumo's runners per org, listed once for the pass.
  const runnersOf = new Map<string, Promise<KumoRunner[]>>();
  // Capacities found full in this pass: their other waiting jobs are not claimed in vain.
  const full = new Set<string>();
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
      const capacity = capacityOf(seen.org, seen.target);
      if (capacity && full.has(capacity.key)) {
        counts.waiting++;
        continue;
      }
      const outcome = await relaunch(ctx, octokit, log, seen, seen.lastError ?? `left ${seen.state}`, async () => {
        // A crash between generate-jitconfig and runJob leaves a registration with this job's name.
        if (!runnersOf.has(seen.org)) runnersOf.set(seen.org, listKumoRunners(octokit, seen.org, ctx.deps.config.runnerPrefix));
        for (const runner of await runnersOf.get(seen.org)!) {
          if (runner.jobId === seen.jobId && !runner.busy) await deleteRunner(octokit, seen.org, runner.id);
        }
      });
      if (outcome === "waiting" && capacity) full.add(capacity.key);
      counts[outcome === "error" ? "errors" : outcome]++;
    } catch (error) {
      counts.errors++;
      log.error({ err: (error as Error).message }, "reconcile: unfinished launch not repaired");
    }
  }
  return { step: "unfinished launches", counts };
}
