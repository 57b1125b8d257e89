import { getJob } from "../github/jobs.js";
import { explainRecord } from "../explain/check-run.js";
import { launchWaiting } from "../launch/capacity.js";
import { leaseActive, type CapacitySlot, type JobRecord, type RunnerTarget } from "../store/job-store.js";
import { closeIfNotQueued, jobLog, outOfTime, type ReconcileContext, type StepSummary } from "./context.js";

/** How often reconcile asks GitHub whether a slot holder's job is still alive (its completed webhook may be lost). */
export const SLOT_CHECK_MS = 5 * 60_000;

export type SlotVerdict = { keep: true } | { keep: false; why: string } | { ask: true };

/**
 * Whether a slot's holder still holds a runner, from its record alone:
 * released when the job is gone, done, failed or not launching, or when its
 * launch crashed (a claim whose lease expired); a launched or running job is
 * asked about on GitHub now and then.
 */
export function slotVerdict(slot: Pick<CapacitySlot, "takenAt" | "checkedAt">, record: Pick<JobRecord, "state" | "leaseUntil"> | undefined, now: Date): SlotVerdict {
  if (!record) return { keep: false, why: "job record gone" };
  switch (record.state) {
    case "completed":
    case "failed":
      return { keep: false, why: `job ${record.state}` };
    case "pending":
    case "waiting":
      return { keep: false, why: `job ${record.state}, not launching` };
    case "claimed":
      return leaseActive(record, now) ? { keep: true } : { keep: false, why: "launch crashed: its claim expired" };
    case "launched":
    case "running":
      return now.getTime() - (slot.checkedAt ?? slot.takenAt).getTime() >= SLOT_CHECK_MS ? { ask: true } : { keep: true };
  }
}

/**
 * Step 0: capacity of capped specs. Gives back every slot whose holder no
 * longer holds a runner (so a spec never stays "full" with nothing running),
 * launches waiting jobs into what was freed, and reports each spec's
 * live/cap/waiting.
 */
export async function capacity(ctx: ReconcileContext): Promise<StepSummary> {
  const counts = { specs: 0, live: 0, waiting: 0, released: 0, asked: 0, launched: 0, explained: 0, errors: 0 };
  const specs = new Map<string, { name: string; max: number; org: string; target?: RunnerTarget; installationId?: number }>();
  for (const slot of await ctx.deps.store.listSlots()) {
    if (outOfTime(ctx)) break;
    const spec = specs.get(slot.key) ?? { name: slot.name, max: slot.max, org: slot.org };
    specs.set(slot.key, spec);
    try {
      const record = await ctx.deps.store.get(slot.jobId);
      if (record?.target) Object.assign(spec, { target: record.target, installationId: record.installationId });
      let verdict = slotVerdict(slot, record, ctx.now);
      if ("ask" in verdict) {
        counts.asked++;
        const octokit = await ctx.octokitFor(record!.installationId);
        const job = await getJob(octokit, record!.repo, record!.jobId);
        if (!job || job.status === "completed") {
          await closeIfNotQueued(ctx, record!, job);
          verdict = { keep: false, why: "job completed on GitHub; its webhook was lost" };
        } else {
          await ctx.deps.store.touchSlot(slot.id, ctx.now);
          verdict = { keep: true };
        }
      }
      if (!verdict.keep) {
        await ctx.deps.store.releaseSlot(slot.jobId);
        counts.released++;
        ctx.log.info({ jobId: slot.jobId, spec: slot.name, why: verdict.why }, "reconcile: capacity given back");
      }
    } catch (error) {
      counts.errors++;
      ctx.log.error({ jobId: slot.jobId, err: (error as Error).message }, "reconcile: capacity slot not checked");
    }
  }
  const details: string[] = [];
  for (const [key, spec] of specs) {
    if (spec.target && spec.installationId !== undefined && !outOfTime(ctx)) {
      try {
        counts.launched += await launchWaiting(ctx.deps, await ctx.octokitFor(spec.installationId), ctx.log, spec.org, spec.target);
      } catch (error) {
        counts.errors++;
        ctx.log.error({ spec: spec.name, err: (error as Error).message }, "reconcile: waiting jobs not launched");
      }
    }
    const live = (await ctx.deps.store.listSlots(key)).length;
    const waitingJobs = spec.target ? await ctx.deps.store.listWaiting(spec.org, spec.target, 1000) : [];
    const waiting = waitingJobs.length;
    // Jobs that have waited a while are told why, on their commit.
    for (const job of waitingJobs) {
      const waitedMs = ctx.now.getTime() - (job.createdAt ?? job.receivedAt).getTime();
      if (waitedMs < ctx.deps.config.explainAfterMs || job.explained || outOfTime(ctx)) continue;
      await explainRecord(ctx.deps, await ctx.octokitFor(job.installationId), jobLog(ctx, job), job, {
        kind: "capacity",
        labels: job.target!.labels,
        max: spec.max,
        waitingMinutes: Math.floor(waitedMs / 60_000),
      });
      counts.explained++;
    }
    counts.specs++;
    counts.live += live;
    counts.waiting += waiting;
    details.push(`${spec.name}: live=${live} cap=${spec.target?.maxRunners ?? spec.max} waiting=${waiting}`);
  }
  return { step: "capacity", counts, details };
}
