import type { Context, Logger } from "probot";
import { z } from "zod";
import type { KumoDeps } from "../deps.js";
import type { ExplainedJob } from "../explain/check-run.js";
import { addressedToKumo, noSpecReason, type WaitReason } from "../explain/reasons.js";
import { matchRunnerSpec } from "../labels.js";
import type { RunnerSpec } from "../settings/schema.js";

export type WorkflowJobContext = Context<"workflow_job">;

/** The organization a job belongs to; undefined for a user account (Kumo serves organizations only). */
export function organizationOf(payload: WorkflowJobContext["payload"]): string | undefined {
  if (payload.organization?.login) return payload.organization.login;
  const owner = payload.repository.owner;
  return owner.type === "Organization" ? owner.login : undefined;
}

// The fields Kumo relies on; a signed but malformed payload is logged and ignored, never a crash.
const WorkflowJobPayload = z.object({
  workflow_job: z.object({
    id: z.number().int().positive(),
    run_id: z.number().int(),
    // Older payloads (and some of GitHub's examples) carry neither of these.
    run_attempt: z.number().int().optional(),
    labels: z.array(z.string()),
    created_at: z.string().optional(),
  }),
  repository: z.object({ name: z.string().min(1), full_name: z.string().min(1), owner: z.object({ login: z.string(), type: z.string() }) }),
});

/** A logger carrying the job's fields, or undefined (logged) when the payload lacks what Kumo needs. */
export function jobLogger(context: WorkflowJobContext): Logger | undefined {
  const parsed = WorkflowJobPayload.safeParse(context.payload);
  if (!parsed.success) {
    const problems = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join(".")}: ${i.message}`);
    context.log.warn({ deliveryId: context.id, action: context.payload?.action, problems }, "malformed workflow_job payload ignored");
    return undefined;
  }
  const { workflow_job: job, repository } = parsed.data;
  return context.log.child({ jobId: job.id, runId: job.run_id, repo: repository.full_name, deliveryId: context.id });
}

export type JobSpec =
  | { ok: true; org: string; installationId: number; spec: RunnerSpec; explain: boolean }
  /** why: set when the job is addressed to Kumo (one of its labels is in a spec) and explaining is on. */
  | { ok: false; org?: string; why?: WaitReason };

/**
 * The runner spec serving this job, or why there is none (logged). Reads the
 * org's settings (cached), so it is cheap per job.
 */
export async function specForJob(deps: Pick<KumoDeps, "settings">, context: WorkflowJobContext, log: Logger): Promise<JobSpec> {
  const { workflow_job: job, repository, installation } = context.payload;
  if (!installation) {
    log.warn("webhook without installation: is this an app webhook?");
    return { ok: false };
  }
  const org = organizationOf(context.payload);
  if (!org) {
    log.info({ owner: repository.owner.login }, "Kumo serves organizations only; ignoring a job of a user account");
    return { ok: false };
  }
  const settings = await deps.settings.get(context.octokit, installation.id, org);
  if (!settings.ok) {
    log.error({ org, errors: settings.errors }, `invalid ${org}/.github/.github/kumo.yml: no runner started until it is fixed`);
    const addressed = settings.explain && addressedToKumo({ labels: settings.labels }, repository.name, job.labels);
    return { ok: false, org, ...(addressed ? { why: { kind: "invalid-settings", errors: settings.errors } } : {}) };
  }
  const spec = matchRunnerSpec(settings.settings, repository.name, job.labels);
  if (!spec) {
    log.debug({ labels: job.labels }, "no runner spec serves these labels");
    const addressed = settings.settings.explain && addressedToKumo(settings.settings, repository.name, job.labels);
    return { ok: false, org, ...(addressed ? { why: noSpecReason(settings.settings, repository.name, job.labels) } : {}) };
  }
  return { ok: true, org, installationId: installation.id, spec, explain: settings.settings.explain };
}

/** The job as a check run names it; undefined when the payload lacks its commit. */
export function explainedJob(context: WorkflowJobContext, org: string): ExplainedJob | undefined {
  const { workflow_job: job, repository } = context.payload;
  if (!job.head_sha) return undefined;
  return { jobId: job.id, org, repo: repository.full_name, name: job.name ?? `job ${job.id}`, headSha: job.head_sha };
}
