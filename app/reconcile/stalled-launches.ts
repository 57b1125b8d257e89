import { deleteRunner } from "../github/jit-runners.js";
import { getJob } from "../github/jobs.js";
import type { JobRecord } from "../store/job-store.js";
import { closeIfNotQueued, jobLog, outOfTime, type ReconcileContext, type StepSummary } from "./context.js";
import { relaunch } from "./relaunch.js";

const TALLY = { launched: "relaunched", failed: "failed", skipped: "skipped", waiting: "errors", error: "errors" } as const;

/**
 * Step 2: launches that never came up. A launched record whose job is still
 * queued after the grace period (or sooner, when its backend tells failures
 * sooner), and whose runner machine has ended or vanished, gets a new runner
 * (bounded attempts, the reason recorded; a VM's next attempt tries the next zone).
 */
export async function stalledLaunches(ctx: ReconcileContext): Promise<StepSummary> {
  const counts = { checked: 0, relaunched: 0, closed: 0, running: 0, failed: 0, skipped: 0, errors: 0 };
  const now = ctx.now.getTime();
  const age = (r: JobRecord) => now - (r.launchedAt ?? r.updatedAt).getTime();
  // A machine that will never run may show it before the grace (a VM whose zone had no stock): look early at those.
  const early = (r: JobRecord) => {
    const after = r.execution ? ctx.deps.launcher.failureVisibleAfterMs(r.execution) : undefined;
    return after !== undefined && age(r) >= after;
  };
  const records = (await ctx.deps.store.list(["launched"], ctx.options.batch)).filter((r) => age(r) >= ctx.options.launchGraceMs || early(r));
  for (const seen of records) {
    if (outOfTime(ctx)) break;
    counts.checked++;
    const log = jobLog(ctx, seen);
    try {
      const describe = () => (seen.execution ? ctx.deps.launcher.describe(seen.execution) : Promise.resolve(undefined));
      const young = age(seen) < ctx.options.launchGraceMs;
      // Young: only a machine already gone matters, and asking the backend first spares GitHub the question.
      let execution = young ? await describe() : undefined;
      if (execution && !execution.done) {
        counts.running++;
        continue;
      }
      const octokit = await ctx.octokitFor(seen.installationId);
      const github = await closeIfNotQueued(ctx, seen, await getJob(octokit, seen.repo, seen.jobId));
      if (github !== "queued") {
        counts[github === "closed" ? "closed" : "skipped"]++;
        continue;
      }
      if (!young) execution = await describe();
      if (execution && !execution.done) {
        counts.running++; // the runner is up; GitHub hands the job to it or to a twin
        continue;
      }
      const why = execution ? (execution.reason ?? `execution ${execution.failed ? "failed" : "ended"} without taking the job`) : "execution not found";
      // The old registration, if GitHub has not removed it yet, would sit offline (a stopped VM goes in step 5).
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
