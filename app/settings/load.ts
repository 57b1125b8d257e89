import type { ProbotOctokit } from "probot";
import { parse as parseYaml } from "yaml";
import { parseSettings, unreadableSettings, type ParsedSettings } from "./schema.js";

export const SETTINGS_REPO = ".github";
export const SETTINGS_PATH = ".github/kumo.yml";

type Octokit = InstanceType<typeof ProbotOctokit>;

/**
 * Reads `.github/kumo.yml` from the org's `.github` repository only — never from
 * the job's repository, so a repo writer cannot pick a Cloud Run job or runner
 * group for themselves. Results (valid or not) are cached per installation for a
 * short TTL: the steady state makes no settings call per job, and a change
 * reaches every app instance within the TTL (a push drops it at once on the
 * instance that receives the push).
 */
export class SettingsLoader {
  private readonly cache = new Map<number, { at: number; value: Promise<ParsedSettings> }>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get(octokit: Octokit, installationId: number, org: string): Promise<ParsedSettings> {
    const hit = this.cache.get(installationId);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.value;
    const value = this.fetch(octokit, org);
    this.cache.set(installationId, { at: this.now(), value });
    // A failed read (GitHub down) must not be cached.
    value.catch(() => {
      if (this.cache.get(installationId)?.value === value) this.cache.delete(installationId);
    });
    return value;
  }

  invalidate(installationId: number): void {
    this.cache.delete(installationId);
  }

  private async fetch(octokit: Octokit, org: string): Promise<ParsedSettings> {
    // The file itself, not Probot's config.get: that one follows `_extends` into any
    // repository (a writer of the one named could then choose Kumo's Cloud Run job).
    let text: string;
    try {
      const { data } = await octokit.rest.repos.getContent({ owner: org, repo: SETTINGS_REPO, path: SETTINGS_PATH, mediaType: { format: "raw" } });
      text = String(data);
    } catch (error) {
      if ((error as { status?: number }).status === 404) return parseSettings({});
      throw error;
    }
    let raw: unknown;
    try {
      raw = parseYaml(text);
    } catch (error) {
      // Invalid YAML is a settings problem, not an outage: reported like a schema error.
      return unreadableSettings(`(file): invalid YAML: ${(error as Error).message.split("\n")[0]}`);
    }
    if (raw !== null && typeof raw === "object" && "_extends" in raw) {
      return unreadableSettings(`_extends: not supported; Kumo reads its settings only from ${org}/${SETTINGS_REPO}/${SETTINGS_PATH}`);
    }
    return parseSettings(raw);
  }
}
