import type { Logger } from "probot";
import type { KumoDeps } from "../deps.js";
import { LaunchError } from "../errors.js";
import { generateJitRunner, runnerName, type JitRunner } from "../github/jit-runners.js";
import type { Octokit } from "../github/octokit.js";
import { capacityOf, type JobRecord, type RunnerTarget } from "../store/job-store.js";
import { retireRunner } from "./retire-runner.js";

/** A job left pending for JIT budget is not re-claimed by duplicate deliveries for this long; reconcile takes it after. */
const DEFER_MS = 10_000;

export type LaunchOutcome =
  | { launched: true; runnerName: string; execution: string }
  /**
   * deferred: not a failure; the job waits for capacity or JIT budget, and reconcile launches it.
   * capacityMayBeFree: a capped job gave its slot back or found none; the caller launches waiting jobs.
   */
  | { launched: false; state: "pending" | "failed" | "waiting" | "queued"; reason: string; deferred?: true; capacityMayBeFree?: true };

/**
 * Turns a claimed job into a runner: a JIT registration, then one runner
 * machine carrying its config. When the machine cannot start, the
 * registration is deleted so no offline runner is left behind, and the record
 * says why. Shared by the webhook and reconcile.
 */
export async function launchRunner(
  deps: Pick<KumoDeps, "store" | "launcher" | "pacer" | "config" | "queue">,
  octokit: Octokit,
  log: Logger,
  record: JobRecord & { target: RunnerTarget },
  /** fromQueue: the launch route runs the task; otherwise, with a launch queue, the launch becomes a task. */
  options: { fromQueue?: boolean } = {},
): Promise<LaunchOutcome> {
  const { jobId, attempts: attempt, target } = record;
  const capacity = capacityOf(record.org, target);
  // The slot is taken before anything is made, and held until the job is done (or the launch undone).
  if (capacity && !(await deps.store.takeSlot(capacity.key, capacity.max, { jobId, org: record.org, name: capacity.name }))) {
    const reason = `maxRunners ${capacity.max} of [${target.labels.join(", ")}] reached; launched when a runner frees`;
    // No lease: the first runner to free takes the oldest waiting job at once.
    await deps.store.markNotLaunched(jobId, attempt, { state: "waiting", reason });
    log.info({ attempt }, reason);
    // A slot freed between the look and this mark found no waiting job: the caller looks again.
    return { launched: false, state: "waiting", reason, deferred: true, capacityMayBeFree: true };
  }
  // With a launch queue the capacity is held from here, and the JIT budget is the queue's rate.
  if (deps.queue.enqueues && !options.fromQueue) return enqueue(deps, log, record, Boolean(capacity));
  if (!(await deps.pacer.acquire())) {
    const reason = "JIT registration budget of this instance is used up; reconcile launches the job";
    if (capacity) await deps.store.releaseSlot(jobId);
    await deps.store.markNotLaunched(jobId, attempt, { state: "pending", reason, retryAfterMs: DEFER_MS });
    log.warn({ attempt }, reason);
    return { launched: false, state: "pending", reason, deferred: true };
  }

  let runner: JitRunner | undefined;
  let execution: string | undefined;
  const started = performance.now();
  try {
    runner = await generateJitRunner(octokit, {
      org: record.org,
      name: runnerName(deps.config.runnerPrefix, jobId, attempt),
      runnerGroupId: target.groupId,
      labels: target.labels,
    });
    const jitMs = Math.round(performance.now() - started);
    execution = (await deps.launcher.launch(target, runner.encodedJitConfig, { name: runner.runnerName, attempt })).execution;
    const runJobMs = Math.round(performance.now() - started) - jitMs;
    try {
      await deps.store.markLaunched(jobId, attempt, { runnerId: runner.runnerId, runnerName: runner.runnerName, execution });
    } catch (error) {
      // A runner nobody knows of would be neither watched nor cleaned up: undo the launch.
      throw new LaunchError(`runner started but not recorded (${(error as Error).message}); launch undone`, true);
    }
    log.info({ attempt, runnerName: runner.runnerName, runnerId: runner.runnerId, execution, jitMs, runJobMs }, "runner launched");
    return { launched: true, runnerName: runner.runnerName, execution };
  } catch (error) {
    const failure = error instanceof LaunchError ? error : new LaunchError(String((error as Error)?.message ?? error), true);
    if (failure.retryAfterMs) deps.pacer.pause(failure.retryAfterMs);
    if (runner) await undo(deps, octokit, log, { org: record.org, runnerId: runner.runnerId, runnerName: runner.runnerName, ...(execution ? { execution } : {}) });
    const state = failure.retryable ? "pending" : "failed";
    let released = false;
    try {
      if (capacity) released = await deps.store.releaseSlot(jobId);
      await deps.store.markNotLaunched(jobId, attempt, { state, reason: failure.message, retryAfterMs: failure.retryAfterMs });
    } catch (storeError) {
      // The claim (and slot) stay; reconcile takes them over when the lease expires.
      log.warn({ err: (storeError as Error).message }, "could not record the failed launch");
    }
    log.error({ attempt, state, reason: failure.message }, "runner not launched");
    return {
      launched: false,
      state,
      reason: failure.message,
      // GitHub said when to come back (its secondary limit): like an exhausted budget, that is a wait, not a
      // failure; reconcile launches the job then, and a failed delivery would only be redelivered for nothing.
      ...(failure.retryable && failure.retryAfterMs ? { deferred: true as const } : {}),
      ...(released ? { capacityMayBeFree: true as const } : {}),
    };
  }
}

/** The launch as a task of the launch queue; a queue that cannot be reached leaves the job pending for reconcile. */
async function enqueue(
  deps: Pick<KumoDeps, "store" | "queue" | "config">,
  log: Logger,
  record: JobRecord,
  capped: boolean,
): Promise<LaunchOutcome> {
  const { jobId, attempts: attempt } = record;
  try {
    await deps.queue.enqueue({ jobId, attempt });
  } catch (error) {
    const reason = error instanceof LaunchError ? error.message : `enqueue launch: ${(error as Error).message}`;
    if (capped) await deps.store.releaseSlot(jobId);
    await deps.store.markNotLaunched(jobId, attempt, { state: "pending", reason });
    log.error({ attempt, state: "pending", reason }, "launch not enqueued");
    return { launched: false, state: "pending", reason };
  }
  await deps.store.markEnqueued(jobId, attempt, deps.config.launchQueue?.leaseMs ?? 900_000);
  log.info({ attempt }, "launch enqueued");
  return { launched: false, state: "queued", reason: "launch enqueued", deferred: true };
}

/** Removes the registration (and execution) of a launch that did not complete; reconcile deletes what this misses. */
async function undo(deps: Pick<KumoDeps, "launcher">, octokit: Octokit, log: Logger, runner: Parameters<typeof retireRunner>[3]): Promise<void> {
  try {
    await retireRunner(deps, octokit, log, runner, "launch undone");
  } catch (error) {
    log.warn({ runnerName: runner.runnerName, err: (error as Error).message }, "could not remove the runner of an undone launch; reconcile will");
  }
}
