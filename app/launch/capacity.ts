import type { Logger } from "probot";
import type { KumoDeps } from "../deps.js";
import type { Octokit } from "../github/octokit.js";
import { capacityOf, type JobRecord, type RunnerTarget } from "../store/job-store.js";
import { launchRunner, type LaunchOutcome } from "./launch-runner.js";

type LaunchDeps = Pick<KumoDeps, "store" | "launcher" | "pacer" | "config" | "queue">;

/**
 * Launches waiting jobs of an org's capped spec, oldest first, while it has
 * free capacity. Called wherever capacity may have freed (a job done, a launch
 * failed, a claim that found it full), so a freed runner is used at once;
 * reconcile is only the safety net. Stops at the first job that does not launch.
 */
export async function launchWaiting(deps: LaunchDeps, octokit: Octokit, log: Logger, org: string, target: RunnerTarget): Promise<number> {
  const capacity = capacityOf(org, target);
  if (!capacity) return 0;
  let launched = 0;
  // Bounded: never more launches than the cap, nor more looks than a few per launch.
  for (let look = 0; launched < capacity.max && look < capacity.max + 3; look++) {
    if ((await deps.store.listSlots(capacity.key)).length >= capacity.max) break;
    const waiting = await deps.store.listWaiting(org, target, 3);
    if (waiting.length === 0) break;
    let outcome: LaunchOutcome | undefined;
    for (const seen of waiting) {
      // Of every instance filling the same freed capacity, one takes each job.
      const claim = await deps.store.reclaim(seen);
      if (!claim.claimed) continue;
      const jobLog = log.child({ jobId: seen.jobId, repo: seen.repo, runId: seen.runId });
      jobLog.info({ attempt: claim.record.attempts, waitedMs: Date.now() - seen.receivedAt.getTime() }, `capacity freed: launching waiting job of ${capacity.name}`);
      outcome = await launchRunner(deps, octokit, jobLog, { ...claim.record, target: claim.record.target! });
      break;
    }
    if (!outcome) continue; // others took these; look again
    if (!outcome.launched && outcome.state !== "queued") break;
    launched++;
  }
  return launched;
}

/** After a launch: when capacity may be free, the next waiting jobs of the spec go now. */
export async function launchWaitingAfter(deps: LaunchDeps, octokit: Octokit, log: Logger, record: Pick<JobRecord, "org">, target: RunnerTarget, outcome: LaunchOutcome): Promise<void> {
  if (!outcome.launched && outcome.capacityMayBeFree) await launchWaiting(deps, octokit, log, record.org, target);
}

/** A capped job is done (or its runner retired): its slot goes to the oldest waiting job. */
export async function freeCapacity(deps: LaunchDeps, octokit: Octokit, log: Logger, record: Pick<JobRecord, "jobId" | "org" | "target">): Promise<boolean> {
  if (!record.target || !capacityOf(record.org, record.target)) return false;
  const released = await deps.store.releaseSlot(record.jobId);
  // Even without a slot of its own: capacity left by a crash is used too.
  await launchWaiting(deps, octokit, log, record.org, record.target);
  return released;
}
