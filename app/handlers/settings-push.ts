import type { Context } from "probot";
import type { KumoDeps } from "../deps.js";
import { SETTINGS_PATH, SETTINGS_REPO } from "../settings/load.js";

/** A push to the org's `.github` repository that touches kumo.yml drops the cached settings at once. */
export function settingsPush(deps: KumoDeps) {
  return async (context: Context<"push">): Promise<void> => {
    const { repository, installation, commits, ref } = context.payload;
    if (!installation || repository.name !== SETTINGS_REPO || ref !== `refs/heads/${repository.default_branch}`) return;
    const touched = commits.some((c) => [...(c.added ?? []), ...(c.modified ?? []), ...(c.removed ?? [])].includes(SETTINGS_PATH));
    // GitHub lists at most 2048 commits, and none for a reset: drop the cache when unsure.
    if (!touched && commits.length > 0 && commits.length < 2048) return;
    deps.settings.invalidate(installation.id);
    const org = context.payload.organization?.login ?? repository.owner?.login ?? "";
    deps.groups.invalidate(org);
    context.log.info({ org, deliveryId: context.id }, "kumo.yml changed: settings reloaded on next job");
  };
}
