import type { Logger } from "probot";
import type { KumoDeps } from "../deps.js";
import { LaunchError } from "../errors.js";
import { deleteRunner, generateJitRunner, runnerName, type JitRunner } from "../github/jit-runners.js";
import type { Octokit } from "../github/octokit.js";
import type { JobRecord, RunnerTarget } from "../store/job-store.js";

export type LaunchOutcome =
  | { launched: true; runnerName: string; execution: string }
  /** deferred: not a failure; the job waits for capacity or JIT budget, and reconcile launches it. */
  | { launched: false; state: "pending" | "failed" | "waiting"; reason: string; deferred?: true };

/**
 * Turns a claimed job into a runner: a JIT registration, then one Cloud Run
 * execution carrying its config. When the execution cannot start, the
 * registration is deleted so no offline runner is left behind, and the record
 * says why. Shared by the webhook and reconcile.
 */
export async function launchRunner(
  deps: Pick<KumoDeps, "store" | "launcher" | "pacer" | "config">,
  octokit: Octokit,
  log: Logger,
  record: JobRecord & { target: RunnerTarget },
): Promise<LaunchOutcome> {
  const { jobId, attempts: attempt, target } = record;
  if (target.maxRunners) {
    const live = await deps.store.countLive(target, jobId);
    if (live >= target.maxRunners) {
      const reason = `maxRunners ${target.maxRunners} of [${target.labels.join(", ")}] reached; launched when a runner frees`;
      await deps.store.markNotLaunched(jobId, attempt, { state: "waiting", reason });
      log.info({ attempt, live }, reason);
      return { launched: false, state: "waiting", reason, deferred: true };
    }
  }
  if (!(await deps.pacer.acquire())) {
    const reason = "JIT registration budget of this instance is used up; reconcile launches the job";
    await deps.store.markNotLaunched(jobId, attempt, { state: "pending", reason });
    log.warn({ attempt }, reason);
    return { launched: false, state: "pending", reason, deferred: true };
  }

  let runner: JitRunner | undefined;
  const started = performance.now();
  try {
    runner = await generateJitRunner(octokit, {
      org: record.org,
      name: runnerName(deps.config.runnerPrefix, jobId, attempt),
      runnerGroupId: target.groupId,
      labels: target.labels,
    });
    const jitMs = Math.round(performance.now() - started);
    const { execution } = await deps.launcher.launch(target.job, runner.encodedJitConfig);
    const runJobMs = Math.round(performance.now() - started) - jitMs;
    await deps.store.markLaunched(jobId, attempt, { runnerId: runner.runnerId, runnerName: runner.runnerName, execution });
    log.info({ attempt, runnerName: runner.runnerName, runnerId: runner.runnerId, execution, jitMs, runJobMs }, "runner launched");
    return { launched: true, runnerName: runner.runnerName, execution };
  } catch (error) {
    const failure = error instanceof LaunchError ? error : new LaunchError(String((error as Error)?.message ?? error), true);
    if (failure.retryAfterMs) deps.pacer.pause(failure.retryAfterMs);
    if (runner) await removeRegistration(octokit, log, record.org, runner);
    const state = failure.retryable ? "pending" : "failed";
    await deps.store.markNotLaunched(jobId, attempt, { state, reason: failure.message, retryAfterMs: failure.retryAfterMs });
    log.error({ attempt, state, reason: failure.message }, "runner not launched");
    return { launched: false, state, reason: failure.message };
  }
}

async function removeRegistration(octokit: Octokit, log: Logger, org: string, runner: JitRunner): Promise<void> {
  try {
    await deleteRunner(octokit, org, runner.runnerId);
    log.info({ runnerName: runner.runnerName, runnerId: runner.runnerId }, "deleted the registration of a runner that never started");
  } catch (error) {
    // Reconcile deletes stale registrations carrying our prefix.
    log.warn({ runnerName: runner.runnerName, err: (error as Error).message }, "could not delete registration; reconcile will");
  }
}
