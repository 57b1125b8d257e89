import { capacity } from "./capacity.js";
import type { ReconcileContext, StepSummary } from "./context.js";
import { lostWebhooks } from "./lost-webhooks.js";
import { runnerMachines } from "./runner-machines.js";
import { staleRunners } from "./stale-runners.js";
import { stalledLaunches } from "./stalled-launches.js";
import { unfinishedLaunches } from "./unfinished-launches.js";
import { warmPools } from "./warm-pool.js";

// Capacity first: what it frees is used by the waiting jobs at once.
// Machines after stale runners: a runner retired there has its machine removed already.
// Warm pools before stale runners (which leaves pooled runners to them): a long pass must not starve
// the recycling that keeps a warm runner's job inside its task timeout. Machines after both.
const STEPS = [capacity, unfinishedLaunches, stalledLaunches, warmPools, staleRunners, runnerMachines, lostWebhooks];
const NAMES = ["capacity", "unfinished launches", "launches that never came up", "warm pools", "stale runners", "runner machines", "lost webhooks"];

/**
 * One reconcile pass: repairs whatever the webhooks missed. Idempotent and
 * safe to run on two machines at once (every launch goes through a Firestore
 * transaction). A failing step is reported and the next one still runs.
 */
export async function reconcile(ctx: ReconcileContext): Promise<StepSummary[]> {
  const summaries: StepSummary[] = [];
  for (const [i, step] of STEPS.entries()) {
    try {
      summaries.push(await step(ctx));
    } catch (error) {
      const reason = (error as Error).message;
      ctx.log.error({ step: NAMES[i], err: reason }, "reconcile step failed");
      summaries.push({ step: NAMES[i]!, counts: { errors: 1 }, failed: reason });
    }
  }
  return summaries;
}

/** `stale runners: runners=3 busy=1 deleted=2` */
export function formatSummary(summary: StepSummary): string {
  return `${summary.step}: ${Object.entries(summary.counts).map(([k, v]) => `${k}=${v}`).join(" ")}`;
}

