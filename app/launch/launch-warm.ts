import type { Logger } from "probot";
import type { KumoDeps } from "../deps.js";
import { LaunchError } from "../errors.js";
import { generateJitRunner, warmRunnerName, type JitRunner } from "../github/jit-runners.js";
import type { Octokit } from "../github/octokit.js";
import type { RunnerTarget } from "../store/job-store.js";
import { retireRunner } from "./retire-runner.js";

/** A launch a warm pool decided (store.updateWarmPool): which pool, which launch, its turn. */
export interface WarmPlace {
  key: string;
  id: string;
  turn: number;
  org: string;
}

/**
 * One idle runner for a warm pool: a JIT registration with the spec's labels
 * and group, then one runner machine carrying its config, recorded on the
 * pool. The same budget as any launch (the JIT pacer); a failure forgets the
 * launch and removes what was made, and the next pass tops the pool up.
 */
export async function launchWarmRunner(
  deps: Pick<KumoDeps, "store" | "launcher" | "pacer" | "config">,
  octokit: Octokit,
  log: Logger,
  place: WarmPlace,
  target: RunnerTarget,
): Promise<{ launched: true; runnerName: string } | { launched: false; reason: string }> {
  if (!(await deps.pacer.acquire())) {
    await deps.store.dropWarmLaunch(place.key, place.id);
    return { launched: false, reason: "JIT registration budget used up; the next pass tops the pool up" };
  }
  let runner: JitRunner | undefined;
  let execution: string | undefined;
  try {
    runner = await generateJitRunner(octokit, { org: place.org, name: warmRunnerName(deps.config.runnerPrefix, place.turn), runnerGroupId: target.groupId, labels: target.labels });
    // The pool's turn picks the zone (VMs): successive launches go round the spec's zones.
    execution = (await deps.launcher.launch(target, runner.encodedJitConfig, { name: runner.runnerName, attempt: place.turn })).execution;
    if (!(await deps.store.recordWarmLaunch(place.key, place.id, { runnerId: runner.runnerId, runnerName: runner.runnerName, execution }))) {
      throw new LaunchError("the pool no longer counts this launch (a pass retired it meanwhile)", false);
    }
    log.info({ runnerName: runner.runnerName, execution, turn: place.turn }, "warm runner launched");
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
    await deps.store.dropWarmLaunch(place.key, place.id).catch(() => undefined);
    log.error({ turn: place.turn, reason }, "warm runner not launched");
    return { launched: false, reason };
  }
}
