import type { Settings } from "../settings/schema.js";

/** Why a job addressed to Kumo has no runner yet. */
export type WaitReason =
  | { kind: "no-spec"; labels: string[]; closest?: { labels: string[]; missing: string[] }; specs: string[][] }
  | { kind: "group-not-visible"; group: string; repo: string }
  | { kind: "invalid-settings"; errors: string[] }
  | { kind: "capacity"; labels: string[]; max: number; waitingMinutes: number }
  | { kind: "launch-failed"; reason: string; final: boolean };

export interface Links {
  /** The org's .github/kumo.yml on GitHub. */
  settings: string;
  /** Kumo's troubleshooting guide, when the deployment names one. */
  troubleshooting?: string;
}

/** What a check run says: GitHub shows the title in the checks list and the summary on the check's page. */
export interface Explanation {
  title: string;
  summary: string;
}

const list = (labels: readonly string[]) => labels.map((l) => `\`${l}\``).join(", ");

/**
 * A job is addressed to Kumo when one of its labels appears in some runner spec
 * the repository may use; other jobs (GitHub-hosted, other runner systems) are never touched.
 */
export function addressedToKumo(settings: Settings | { labels: string[] }, repoName: string, jobLabels: readonly string[]): boolean {
  const known = "labels" in settings ? settings.labels : specsFor(settings, repoName).flat();
  const offered = new Set(known.map((l) => l.toLowerCase()));
  return jobLabels.some((l) => offered.has(l.toLowerCase()));
}

function specsFor(settings: Settings, repoName: string): string[][] {
  return [...(settings.repositories[repoName.toLowerCase()]?.runners ?? []), ...settings.runners].map((s) => s.labels);
}

/** The no-spec reason: which labels are missing from the closest spec, and which specs exist. */
export function noSpecReason(settings: Settings, repoName: string, jobLabels: readonly string[]): WaitReason {
  const specs = specsFor(settings, repoName);
  const missingFrom = (labels: string[]) => {
    const offered = new Set(labels.map((l) => l.toLowerCase()));
    return jobLabels.filter((l) => !offered.has(l.toLowerCase()));
  };
  const closest = specs.map((labels) => ({ labels, missing: missingFrom(labels) })).sort((a, b) => a.missing.length - b.missing.length)[0];
  return { kind: "no-spec", labels: [...jobLabels], ...(closest ? { closest } : {}), specs };
}

/** The check run's text for a reason; it never holds a secret (reasons are Kumo's own words and GitHub's or Cloud Run's first line). */
export function explain(reason: WaitReason, links: Links): Explanation {
  const more = `\n\nSettings: ${links.settings}` + (links.troubleshooting ? `\nTroubleshooting: ${links.troubleshooting}` : "");
  switch (reason.kind) {
    case "no-spec":
      return {
        title: "No Kumo runner spec serves all of this job's labels",
        summary:
          `The job asks for ${list(reason.labels)}. A Kumo runner has exactly its spec's labels, so a spec must list all of them.` +
          (reason.closest ? ` The closest spec, ${list(reason.closest.labels)}, lacks ${list(reason.closest.missing)}.` : "") +
          `\n\nSpecs for this repository:\n${reason.specs.map((s) => `- ${list(s)}`).join("\n") || "- none"}` +
          `\n\nAdd the labels to a spec in the org's kumo.yml, or change the job's \`runs-on\`.${more}`,
      };
    case "group-not-visible":
      return {
        title: `Runner group "${reason.group}" is not available to this repository`,
        summary: `The runner spec that serves this job puts its runners in the group "${reason.group}", which does not exist or is not visible to ${reason.repo}. Allow the repository in the group's settings (Organization settings → Actions → Runner groups), or use another group in kumo.yml.${more}`,
      };
    case "invalid-settings":
      return {
        title: "The org's kumo.yml is invalid: no Kumo runner starts until it is fixed",
        summary: `Problems (first ${Math.min(5, reason.errors.length)} of ${reason.errors.length}):\n${reason.errors.slice(0, 5).map((e) => `- ${e}`).join("\n")}${more}`,
      };
    case "capacity":
      return {
        title: `Waiting for a runner: maxRunners ${reason.max} of ${list(reason.labels)} reached`,
        summary: `All ${reason.max} runners of this spec are busy; this job has waited ${reason.waitingMinutes} min and starts, oldest first, when one finishes. Raise \`maxRunners\` in kumo.yml if that is too slow.${more}`,
      };
    case "launch-failed":
      return {
        title: reason.final ? "Kumo gave up starting a runner for this job" : "Kumo could not start a runner for this job",
        summary: `${reason.reason}\n\n${reason.final ? "No further attempt is made: fix the cause, then re-run the job." : "Kumo retries while the job is queued."}${more}`,
      };
  }
}

/** The check run once a runner took the job. */
export const RESOLVED: Explanation = { title: "A runner took the job", summary: "The job got a runner; nothing to do." };
