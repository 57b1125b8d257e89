import type { Logger } from "probot";
import type { KumoDeps } from "../deps.js";
import { deleteRunner } from "../github/jit-runners.js";
import type { Octokit } from "../github/octokit.js";

export type RetireOutcome = "deleted" | "gone" | "busy";

/**
 * Removes a runner no job needs (`why`): deletes its registration and
 * cancels its Cloud Run execution. A busy runner is serving some other job
 * with the same labels and is left alone (GitHub refuses to delete it anyway).
 */
export async function retireRunner(
  deps: Pick<KumoDeps, "launcher">,
  octokit: Octokit,
  log: Logger,
  runner: { org: string; runnerId: number; runnerName: string; execution?: string },
  why: string,
): Promise<RetireOutcome> {
  const outcome = await deleteRunner(octokit, runner.org, runner.runnerId);
  if (outcome === "busy") {
    log.info({ runnerName: runner.runnerName, why }, "runner to retire is busy with another job: left alone");
    return outcome;
  }
  if (runner.execution) await deps.launcher.cancel(runner.execution);
  log.info({ runnerName: runner.runnerName, execution: runner.execution, registration: outcome, why }, "runner retired");
  return outcome;
}
