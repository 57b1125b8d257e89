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

/** Warm runners are made for no job: job id 0, and their pool's launch turn where the attempt goes. */
export function warmRunnerName(prefix: string, turn: number): string {
  return runnerName(prefix, WARM_JOB_ID, turn);
}
export const WARM_JOB_ID = 0;

/** The job id a Kumo runner name was made for (WARM_JOB_ID for a warm runner), or undefined for other runners. */
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

/**
 * Deletes a registration. "gone": GitHub removed it already; "busy": it is
 * running a job (GitHub refuses to delete a busy runner), which is then fine.
 */
export async function deleteRunner(octokit: Octokit, org: string, runnerId: number): Promise<"deleted" | "gone" | "busy"> {
  try {
    await octokit.rest.actions.deleteSelfHostedRunnerFromOrg({ org, runner_id: runnerId });
    return "deleted";
  } catch (error) {
    const status = (error as { status?: number }).status;
    if (status === 404) return "gone";
    if (status === 422) return "busy";
    throw fromGitHubError("delete runner", error);
  }
}

export interface KumoRunner {
  id: number;
  name: string;
  status: string;
  busy: boolean;
  jobId: number;
  /** The claim attempt that registered it (a warm runner: its launch place + 1). */
  attempt: number;
  labels: string[];
}

/** The org's runners that Kumo registered (by name prefix). */
export async function listKumoRunners(octokit: Octokit, org: string, prefix: string): Promise<KumoRunner[]> {
  try {
    const runners = await octokit.paginate(octokit.rest.actions.listSelfHostedRunnersForOrg, { org, per_page: 100 });
    return runners.flatMap((r) => {
      const jobId = jobIdOfRunner(prefix, r.name);
      return jobId === undefined
        ? []
        : [{ id: r.id, name: r.name, status: r.status, busy: r.busy, jobId, attempt: attemptOfRunner(r.name), labels: (r.labels ?? []).map((l) => l.name) }];
    });
  } catch (error) {
    throw fromGitHubError("list runners", error);
  }
}

function attemptOfRunner(name: string): number {
  return Number(name.split("-").at(-2));
}
