import { randomBytes } from "node:crypto";
import { fromGitHubError } from "../errors.js";
import type { Octokit } from "./octokit.js";

export interface JitRunner {
  runnerId: number;
  runnerName: string;
  /** Secret: goes to the runner container only, never to a log or the store. */
  encodedJitConfig: string;
}

/**
 * Runner names carry the job they were made for, `<prefix>-<job id>-<attempt>-<random>`,
 * so reconcile can find a half-made registration without any extra write.
 */
export function runnerName(prefix: string, jobId: number, attempt: number): string {
  return `${prefix}-${jobId}-${attempt}-${randomBytes(3).toString("hex")}`;
}

/** The job id a Kumo runner name was made for, or undefined for other runners. */
export function jobIdOfRunner(prefix: string, name: string): number | undefined {
  const match = new RegExp(`^${prefix}-(\\d+)-\\d+-[0-9a-f]+$`).exec(name);
  return match ? Number(match[1]) : undefined;
}

/**
 * Registers one org-level JIT runner with exactly `labels` (GitHub adds no
 * default labels to a JIT runner, so never `self-hosted`). Not retried: a
 * retry after a lost answer would meet a 409 for a registration we cannot see;
 * reconcile handles the failure instead.
 */
export async function generateJitRunner(
  octokit: Octokit,
  request: { org: string; name: string; runnerGroupId: number; labels: string[] },
): Promise<JitRunner> {
  try {
    const { data } = await octokit.rest.actions.generateRunnerJitconfigForOrg({
      org: request.org,
      name: request.name,
      runner_group_id: request.runnerGroupId,
      labels: request.labels,
      request: { retries: 0 },
    });
    return { runnerId: data.runner.id, runnerName: data.runner.name, encodedJitConfig: data.encoded_jit_config };
  } catch (error) {
    throw fromGitHubError("generate-jitconfig", error);
  }
}

/** Deletes a registration; a runner that is already gone counts as deleted. */
export async function deleteRunner(octokit: Octokit, org: string, runnerId: number): Promise<"deleted" | "gone"> {
  try {
    await octokit.rest.actions.deleteSelfHostedRunnerFromOrg({ org, runner_id: runnerId });
    return "deleted";
  } catch (error) {
    if ((error as { status?: number }).status === 404) return "gone";
    throw fromGitHubError("delete runner", error);
  }
}
