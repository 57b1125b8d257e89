import { listKumoRunners, type KumoRunner } from "../github/jit-runners.js";
import { retireRunner } from "../launch/retire-runner.js";
import type { JobRecord } from "../store/job-store.js";
import { outOfTime, waitsFor, type ReconcileContext, type StepSummary } from "./context.js";
import { labelKey, pooledSpecs } from "./warm-pool.js";

/**
 * Step 3: registrations of ours that no queued job needs — their job ran on
 * another runner, was cancelled, or their launch failed half-way. Idle ones
 * past the grace period are deleted and their executions cancelled. Busy ones
 * serve some job and are left alone.
 */
export async function staleRunners(ctx: ReconcileContext): Promise<StepSummary> {
  const counts = { runners: 0, needed: 0, busy: 0, pooled: 0, deleted: 0, young: 0, errors: 0 };
  for (const installation of await ctx.installations()) {
    if (outOfTime(ctx)) break;
    const log = ctx.log.child({ org: installation.org });
    try {
      const octokit = await ctx.octokitFor(installation.id);
      // Listed afresh: step 1 of this pass may have deleted and registered runners.
      const runners = await listKumoRunners(octokit, installation.org, ctx.deps.config.runnerPrefix);
      counts.runners += runners.length;
      // Runners of a spec with a warm pool are the pool's to keep or retire (the next step). Read at the
      // first surplus runner: a settings read that fails then stops this org's cleanup, never a pool.
      let pooled: Set<string> | undefined;
      for (const runner of runners) {
        if (outOfTime(ctx)) break;
        if (runner.busy) {
          counts.busy++;
          continue;
        }
        const record = await ctx.deps.store.get(runner.jobId);
        const verdict = judge(ctx, runner, record);
        if (verdict !== "surplus") {
          counts[verdict]++;
          continue;
        }
        pooled ??= new Set((await pooledSpecs(ctx, installation, octokit)).map((s) => labelKey(s.labels)));
        if (pooled.has(labelKey(runner.labels))) {
          counts.pooled++;
          continue;
        }
        try {
          const execution = record?.runnerName === runner.name ? record.execution : undefined;
          const outcome = await retireRunner(ctx.deps, octokit, log.child({ jobId: runner.jobId }), {
            org: installation.org,
            runnerId: runner.id,
            runnerName: runner.name,
            ...(execution ? { execution } : {}),
          }, "no queued job needs it");
          counts[outcome === "busy" ? "busy" : "deleted"]++;
        } catch (error) {
          counts.errors++;
          log.error({ jobId: runner.jobId, runnerName: runner.name, err: (error as Error).message }, "reconcile: stale runner not removed");
        }
      }
    } catch (error) {
      counts.errors++;
      log.error({ err: (error as Error).message }, "reconcile: runners of this org not checked");
    }
  }
  return { step: "stale runners", counts };
}

function judge(ctx: ReconcileContext, runner: KumoRunner, record: JobRecord | undefined): "needed" | "young" | "surplus" {
  // No record: it expired long ago, or the runner is not this deployment's.
  if (!record) return "surplus";
  if (waitsFor(record, runner)) return "needed";
  const settled = ctx.now.getTime() - record.updatedAt.getTime() >= ctx.options.runnerGraceMs;
  return settled ? "surplus" : "young";
}
