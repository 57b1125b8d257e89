import type { ProbotOctokit } from "probot";
import { parseSettings, type ParsedSettings } from "./schema.js";

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
    let raw: unknown;
    try {
      const { config } = await octokit.config.get({ owner: org, repo: SETTINGS_REPO, path: SETTINGS_PATH });
      raw = config;
    } catch (error) {
      // Invalid YAML or a broken `_extends` is a settings problem, not an outage:
      // report it like a schema error (the plugin prefixes its own errors).
      if (error instanceof Error && error.message.startsWith("[@probot/octokit-plugin-config]")) {
        const cause = error.cause instanceof Error ? `: ${error.cause.message.split("\n")[0]}` : "";
        return { ok: false, errors: [`(file): ${error.message.replace(/^\[[^\]]+\] /, "")}${cause}`] };
      }
      throw error;
    }
    return parseSettings(raw);
  }
}
