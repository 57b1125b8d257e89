import { fromGitHubError } from "../errors.js";
import type { Octokit } from "./octokit.js";

export interface GitHubJob {
  status: string;
  conclusion: string | null;
  runnerId: number | null;
  runnerName: string | null;
  startedAt: string | null;
  completedAt: string | null;
}

/** A job's status as GitHub sees it now; undefined when GitHub no longer knows it. */
export async function getJob(octokit: Octokit, repoFullName: string, jobId: number): Promise<GitHubJob | undefined> {
  const [owner, repo] = repoFullName.split("/") as [string, string];
  try {
    const { data } = await octokit.rest.actions.getJobForWorkflowRun({ owner, repo, job_id: jobId });
    return {
      status: data.status,
      conclusion: data.conclusion,
      runnerId: data.runner_id,
      runnerName: data.runner_name,
      startedAt: data.started_at,
      completedAt: data.completed_at ?? null,
    };
  } catch (error) {
    if ((error as { status?: number }).status === 404) return undefined;
    throw fromGitHubError(`get job ${jobId}`, error);
  }
}
