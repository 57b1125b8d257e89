import type { RunnerSpec, Settings } from "./settings/schema.js";

/**
 * The runner spec that serves a job, or undefined. A JIT runner carries exactly
 * its spec's labels, so a job can only run on it when every `runs-on` label is
 * among them; that is also why `self-hosted` only matches a spec listing it.
 * Per-repository specs come first, then the org-wide list; first match wins.
 */
export function matchRunnerSpec(settings: Settings, repoName: string, jobLabels: readonly string[]): RunnerSpec | undefined {
  if (jobLabels.length === 0) return undefined;
  const wanted = jobLabels.map((l) => l.toLowerCase());
  const candidates = [...(settings.repositories[repoName.toLowerCase()]?.runners ?? []), ...settings.runners];
  return candidates.find((spec) => {
    const offered = new Set(spec.labels.map((l) => l.toLowerCase()));
    return wanted.every((l) => offered.has(l));
  });
}
