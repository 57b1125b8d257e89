import type { Octokit } from "./octokit.js";

interface RunnerGroup {
  id: number;
  name: string;
}

/**
 * Resolves a runner group name to its id among the groups the job's repository
 * may use. A group the repository cannot use resolves to undefined: a runner
 * there could never take the job. Cached per org and repository for a TTL.
 */
export class RunnerGroupResolver {
  private readonly cache = new Map<string, { at: number; groups: Promise<RunnerGroup[]> }>();

  constructor(
    private readonly ttlMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  async resolve(octokit: Octokit, org: string, repoName: string, groupName: string): Promise<number | undefined> {
    const groups = await this.visibleGroups(octokit, org, repoName);
    const wanted = groupName.toLowerCase();
    return groups.find((g) => g.name.toLowerCase() === wanted)?.id;
  }

  /** A group of the org by name, whichever repositories may use it (warm runners serve no one job). */
  async resolveInOrg(octokit: Octokit, org: string, groupName: string): Promise<number | undefined> {
    const groups = await this.visibleGroups(octokit, org, undefined);
    const wanted = groupName.toLowerCase();
    return groups.find((g) => g.name.toLowerCase() === wanted)?.id;
  }

  invalidate(org: string): void {
    for (const key of this.cache.keys()) if (key.startsWith(`${org.toLowerCase()}/`)) this.cache.delete(key);
  }

  private visibleGroups(octokit: Octokit, org: string, repoName: string | undefined): Promise<RunnerGroup[]> {
    const key = `${org}/${repoName ?? "*"}`.toLowerCase();
    const hit = this.cache.get(key);
    if (hit && this.now() - hit.at < this.ttlMs) return hit.groups;
    const groups = octokit
      .paginate("GET /orgs/{org}/actions/runner-groups", { org, ...(repoName ? { visible_to_repository: repoName } : {}), per_page: 100 }, (response) =>
        // The endpoint answers {total_count, runner_groups}; paginate unwraps it.
        (response.data as unknown as RunnerGroup[]).map(({ id, name }) => ({ id, name })),
      );
    this.cache.set(key, { at: this.now(), groups });
    groups.catch(() => {
      if (this.cache.get(key)?.groups === groups) this.cache.delete(key);
    });
    return groups;
  }
}
