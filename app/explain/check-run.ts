import type { Logger } from "probot";
import type { KumoConfig } from "../config.js";
import { errorLine } from "../errors.js";
import type { Octokit } from "../github/octokit.js";
import { SETTINGS_PATH, SETTINGS_REPO } from "../settings/load.js";
import type { JobRecord, JobStore } from "../store/job-store.js";
import { explain, RESOLVED, type Explanation, type WaitReason } from "./reasons.js";

/** The job a check run is about. */
export interface ExplainedJob {
  jobId: number;
  org: string;
  /** owner/name */
  repo: string;
  name: string;
  headSha: string;
}

type Deps = { store: Pick<JobStore, "explanation" | "setExplanation" | "dropExplanation">; config: Pick<KumoConfig, "webUrl" | "troubleshootingUrl"> };

function links(config: Deps["config"], org: string) {
  return {
    settings: `${config.webUrl}/${org}/${SETTINGS_REPO}/blob/HEAD/${SETTINGS_PATH}`,
    ...(config.troubleshootingUrl ? { troubleshooting: config.troubleshootingUrl } : {}),
  };
}

function checkRunOutput(e: Explanation) {
  return { title: e.title.slice(0, 255), summary: e.summary.slice(0, 60_000) };
}

/**
 * Says on the job's commit why it waits: one check run per job (the first
 * explainer creates it, later reasons update it), `neutral` so that it never
 * blocks a merge. Costs GitHub calls only when a job waits; a failure is logged,
 * never fails the delivery.
 */
export async function explainWait(deps: Deps, octokit: Octokit, log: Logger, job: ExplainedJob, reason: WaitReason): Promise<void> {
  const [owner, repo] = job.repo.split("/") as [string, string];
  const output = checkRunOutput(explain(reason, links(deps.config, job.org)));
  try {
    const { created, explanation } = await deps.store.explanation(job.jobId, { jobId: job.jobId, repo: job.repo, headSha: job.headSha, reason: reason.kind });
    if (created) {
      try {
        const { data } = await octokit.rest.checks.create({
          owner,
          repo,
          name: `Kumo: ${job.name}`.slice(0, 255),
          head_sha: job.headSha,
          external_id: String(job.jobId),
          details_url: links(deps.config, job.org).troubleshooting ?? links(deps.config, job.org).settings,
          status: "completed",
          conclusion: "neutral",
          output,
        });
        await deps.store.setExplanation(job.jobId, { checkRunId: data.id });
        log.info({ checkRunId: data.id, reason: reason.kind }, "check run says why the job waits");
      } catch (error) {
        await deps.store.dropExplanation(job.jobId);
        throw error;
      }
      return;
    }
    // Already explained: only a new reason changes the check run.
    if (!explanation?.checkRunId || explanation.reason === reason.kind || explanation.reason === "resolved") return;
    await octokit.rest.checks.update({ owner, repo, check_run_id: explanation.checkRunId, output });
    await deps.store.setExplanation(job.jobId, { reason: reason.kind });
    log.info({ checkRunId: explanation.checkRunId, reason: reason.kind }, "check run updated with a new reason the job waits");
  } catch (error) {
    log.warn({ reason: reason.kind, err: errorLine(error) }, "could not explain the wait in a check run (does the app have Checks: write?)");
  }
}

/** A runner took a job that had a check run: it says so (success). */
export async function explainResolved(deps: Deps, octokit: Octokit, log: Logger, jobId: number): Promise<void> {
  try {
    const { explanation } = await deps.store.explanation(jobId);
    if (!explanation?.checkRunId || explanation.reason === "resolved") return;
    const [owner, repo] = explanation.repo.split("/") as [string, string];
    await octokit.rest.checks.update({ owner, repo, check_run_id: explanation.checkRunId, conclusion: "success", output: checkRunOutput(RESOLVED) });
    await deps.store.setExplanation(jobId, { reason: "resolved" });
    log.info({ checkRunId: explanation.checkRunId }, "check run: a runner took the job");
  } catch (error) {
    log.warn({ err: errorLine(error) }, "could not update the job's check run");
  }
}

/**
 * Reconcile's explanation for a job it found waiting (its record), unless the
 * org turned explanations off; `again`: also when the job was explained before
 * (a new reason), otherwise an explained job is left as it is, with no call.
 */
export async function explainRecord(
  deps: Deps,
  octokit: Octokit,
  log: Logger,
  record: Pick<JobRecord, "jobId" | "org" | "repo" | "name" | "headSha" | "explained" | "target">,
  reason: WaitReason,
  again = false,
): Promise<void> {
  if (!record.headSha || record.target?.explain === false || (record.explained && !again)) return;
  await explainWait(deps, octokit, log, { jobId: record.jobId, org: record.org, repo: record.repo, name: record.name ?? `job ${record.jobId}`, headSha: record.headSha }, reason);
}
