import { deleteRunner } from "../github/jit-runners.js";
import { getJob } from "../github/jobs.js";
import { closeIfNotQueued, jobLog, outOfTime, type ReconcileContext, type StepSummary } from "./context.js";
import { relaunch } from "./relaunch.js";

const TALLY = { launched: "relaunched", failed: "failed", skipped: "skipped", waiting: "errors", error: "errors" } as const;

/**
 * Step 2: launches that never came up. A launched record whose job is still
 * queued after the grace period, and whose execution has ended or vanished,
 * gets a new runner (bounded attempts, the reason recorded).
 */
export async function stalledLaunches(ctx: ReconcileContext): Promise<StepSummary> {
  const counts = { checked: 0, relaunched: 0, closed: 0, running: 0, failed: 0, skipped: 0, errors: 0 };
  const cutoff = ctx.now.getTime() - ctx.options.launchGraceMs;
  const records = (await ctx.deps.store.list(["launched"], ctx.options.batch)).filter((r) => (r.launchedAt ?? r.updatedAt).getTime() <= cutoff);
  for (const seen of records) {
    if (outOfTime(ctx)) break;
    counts.checked++;
    const log = jobLog(ctx, seen);
    try {
      const octokit = await ctx.octokitFor(seen.installationId);
      const github = await closeIfNotQueued(ctx, seen, await getJob(octokit, seen.repo, seen.jobId));
      if (github !== "queued") {
        counts[github === "closed" ? "closed" : "skipped"]++;
        continue;
      }
      const execution = seen.execution ? await ctx.deps.launcher.describe(seen.execution) : undefined;
      if (execution && !execution.done) {
        counts.running++; // the runner is up; GitHub hands the job to it or to a twin
        continue;
      }
      const why = execution ? `execution ${execution.failed ? "failed" : "ended"} without taking the job` : "execution not found";
      // The old registration, if GitHub has not removed it yet, would sit offline.
      const outcome = await relaunch(ctx, octokit, log, seen, why, async () => {
        if (seen.runnerId) await deleteRunner(octokit, seen.org, seen.runnerId);
      });
      counts[TALLY[outcome]]++;
    } catch (error) {
      counts.errors++;
      log.error({ err: (error as Error).message }, "reconcile: stalled launch not repaired");
    }
  }
  return { step: "launches that never came up", counts };
}
