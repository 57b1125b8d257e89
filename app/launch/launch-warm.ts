import type { Logger } from "probot";
import type { KumoDeps } from "../deps.js";
import { LaunchError } from "../errors.js";
import { generateJitRunner, warmRunnerName, type JitRunner } from "../github/jit-runners.js";
import type { Octokit } from "../github/octokit.js";
import type { RunnerTarget } from "../store/job-store.js";
import { retireRunner } from "./retire-runner.js";

/** A warm launch place the caller took (store.claimWarmLaunch): which pool, which place. */
export interface WarmPlace {
  key: string;
  index: number;
  org: string;
}

/**
 * One idle runner for a warm pool: a JIT registration with the spec's labels
 * and group, then one runner machine carrying its config, recorded on its
 * launch place. The same budget as any launch (the JIT pacer); a failure frees
 * the place and removes what was made.
 */
export async function launchWarmRunner(
  deps: Pick<KumoDeps, "store" | "launcher" | "pacer" | "config">,
  octokit: Octokit,
  log: Logger,
  place: WarmPlace,
  target: RunnerTarget,
): Promise<{ launched: true; runnerName: string } | { launched: false; reason: string }> {
  if (!(await deps.pacer.acquire())) {
    await deps.store.dropWarmLaunch(place.key, place.index);
    return { launched: false, reason: "JIT registration budget used up; the next pass tops the pool up" };
  }
  let runner: JitRunner | undefined;
  let execution: string | undefined;
  try {
    runner = await generateJitRunner(octokit, { org: place.org, name: warmRunnerName(deps.config.runnerPrefix, place.index), runnerGroupId: target.groupId, labels: target.labels });
    // Places start in different zones (VMs): a stock-out in one costs the pool one runner, not all.
    execution = (await deps.launcher.launch(target, runner.encodedJitConfig, { name: runner.runnerName, attempt: place.index + 1 })).execution;
    await deps.store.recordWarmLaunch(place.key, place.index, { runnerId: runner.runnerId, runnerName: runner.runnerName, execution });
    log.info({ runnerName: runner.runnerName, execution, place: place.index }, "warm runner launched");
    return { launched: true, runnerName: runner.runnerName };
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    if (error instanceof LaunchError && error.retryAfterMs) deps.pacer.pause(error.retryAfterMs);
    if (runner) {
      try {
        await retireRunner(deps, octokit, log, { org: place.org, runnerId: runner.runnerId, runnerName: runner.runnerName, ...(execution ? { execution } : {}) }, "warm launch undone");
      } catch (undoError) {
        log.warn({ runnerName: runner.runnerName, err: (undoError as Error).message }, "could not remove the runner of an undone warm launch; reconcile will");
      }
    }
    await deps.store.dropWarmLaunch(place.key, place.index).catch(() => undefined);
    log.error({ place: place.index, reason }, "warm runner not launched");
    return { launched: false, reason };
  }
}
