import type { NewJob, RunnerTarget } from "../../app/store/job-store.js";
import { createRequire } from "node:module";

// The package's main is a JSON file.
const examples = createRequire(import.meta.url)("@octokit/webhooks-examples") as Array<{ name: string; examples: Example[] }>;

export const INSTALLATION_ID = 4242;
export const ORG = "octo-org";
export const REPO = "example-workflow";

type Example = { action: string; workflow_job: Record<string, any>; [key: string]: any };

function workflowJobExample(action: string, labels?: string[]): Example {
  const group = examples.find((e) => e.name === "workflow_job")!;
  const example = group.examples.find((e) => e.action === action && (!labels || sameLabels(e.workflow_job.labels, labels)));
  if (!example) throw new Error(`no workflow_job.${action} example`);
  return structuredClone(example);
}

function sameLabels(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((l, i) => l === b[i]);
}

/**
 * A real `workflow_job` payload from @octokit/webhooks-examples, moved to one
 * organization and given the installation the examples lack.
 */
export function workflowJobPayload(
  action: "queued" | "in_progress" | "completed" | "waiting",
  job: { id?: number; labels?: string[]; repo?: string; org?: string | null; exampleLabels?: string[] } = {},
) {
  const payload = workflowJobExample(action, job.exampleLabels);
  const org = job.org === undefined ? ORG : job.org;
  const repo = job.repo ?? REPO;
  const owner = org ?? "octocat";
  payload.installation = { id: INSTALLATION_ID, node_id: "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==" };
  if (org) payload.organization = { login: org, id: 9919, node_id: "O_kgDOAAAmvw" };
  else delete payload.organization;
  payload.repository = {
    ...payload.repository,
    name: repo,
    full_name: `${owner}/${repo}`,
    owner: { ...payload.repository.owner, login: owner, type: org ? "Organization" : "User" },
  };
  if (job.id !== undefined) payload.workflow_job.id = job.id;
  if (job.labels) payload.workflow_job.labels = job.labels;
  return payload;
}

let nextDelivery = 1;
export function deliveryId(): string {
  return `00000000-0000-4000-8000-${String(nextDelivery++).padStart(12, "0")}`;
}

export const SETTINGS_YAML = `
runners:
  - labels: [kumo, small]
    group: cloudrun
    job: gha-runner-small
  - labels: [kumo, large, gpu]
    job: projects/other-project/locations/europe-west1/jobs/gha-runner-large
repositories:
  special:
    runners:
      - labels: [kumo, small]
        group: special-group
        job: gha-runner-special
`;

/** The test settings' small spec as a job record's target (TEST_ENV's project and region). */
export const SMALL_TARGET: RunnerTarget = { labels: ["kumo", "small"], group: "cloudrun", groupId: 7, job: "projects/kumo-test/locations/us-central1/jobs/gha-runner-small" };

/** A job as the store records it when seen queued, for seeding reconcile's tests. */
export function recordedJob(jobId: number, extra: Partial<NewJob> = {}): NewJob {
  return { jobId, runId: 1, runAttempt: 1, installationId: INSTALLATION_ID, org: ORG, repo: `${ORG}/${REPO}`, labels: SMALL_TARGET.labels, target: SMALL_TARGET, ...extra };
}

/** kumo.yml with one Cloud Run spec for [kumo, small] and the given `warm:` body (indented six spaces). */
export function warmSettings(warm: string, group = "cloudrun"): string {
  return `runners:\n  - labels: [kumo, small]\n    group: ${group}\n    job: gha-runner-small\n    warm:\n${warm}\n`;
}

/** A `warm:` body whose only window is never open now: one minute, 12 hours away. */
export function closedWindow(size = 2): string {
  const hh = String(new Date(Date.now() + 12 * 3_600_000).getUTCHours()).padStart(2, "0");
  return `      size: ${size}\n      windows:\n        - from: "${hh}:00"\n          to: "${hh}:01"`;
}
