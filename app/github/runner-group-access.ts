import type { Octokit } from "./octokit.js";

/** A runner group of an organization and who may use it. */
export interface OrgRunnerGroup {
  id: number;
  name: string;
  /** "all" repositories, "selected" ones, or all "private" ones. */
  visibility: string;
  default: boolean;
}

/** Every runner group of the org, whichever repositories may use it (needs organization_self_hosted_runners: read). */
export async function listOrgRunnerGroups(octokit: Octokit, org: string): Promise<OrgRunnerGroup[]> {
  return octokit.paginate("GET /orgs/{org}/actions/runner-groups", { org, per_page: 100 }, (response) =>
    // The endpoint answers {total_count, runner_groups}; paginate unwraps it.
    (response.data as unknown as Array<Partial<OrgRunnerGroup> & { id: number; name: string }>).map((g) => ({
      id: g.id,
      name: g.name,
      visibility: g.visibility ?? "all",
      default: Boolean(g.default),
    })),
  );
}

/** How many repositories a group with `selected` visibility is open to. */
export async function countGroupRepositories(octokit: Octokit, org: string, groupId: number): Promise<number> {
  const { data } = await octokit.request("GET /orgs/{org}/actions/runner-groups/{runner_group_id}/repositories", {
    org,
    runner_group_id: groupId,
    per_page: 1,
  });
  return data.total_count;
}
