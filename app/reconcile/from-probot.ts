import type { Logger, Probot } from "probot";
import type { KumoDeps } from "../deps.js";
import type { Octokit } from "../github/octokit.js";
import { DEFAULT_RECONCILE_OPTIONS, type ReconcileContext, type ReconcileOptions } from "./context.js";

/** A pass's context from a Probot instance: the app's JWT octokit and installation octokits. */
export async function reconcileContext(
  probot: Probot,
  deps: KumoDeps,
  // Given, not read from probot.log: Probot sets that only once its asynchronous start has finished.
  log: Logger,
  options: Partial<ReconcileOptions> = {},
): Promise<ReconcileContext> {
  const appOctokit = (await probot.auth()) as Octokit;
  const octokits = new Map<number, Promise<Octokit>>();
  let installations: Promise<Array<{ id: number; org: string }>> | undefined;
  return {
    deps,
    log,
    now: new Date(),
    options: { ...DEFAULT_RECONCILE_OPTIONS, ...options },
    appOctokit,
    octokitFor(id) {
      let octokit = octokits.get(id);
      if (!octokit) octokits.set(id, (octokit = probot.auth(id) as Promise<Octokit>));
      return octokit;
    },
    installations() {
      installations ??= appOctokit
        .paginate(appOctokit.rest.apps.listInstallations, { per_page: 100 })
        .then((all) =>
          all.flatMap((i) => {
            const account = i.account as { login?: string; type?: string } | null;
            // Kumo serves organizations only.
            return account?.login && account.type === "Organization" ? [{ id: i.id, org: account.login }] : [];
          }),
        );
      return installations;
    },
  };
}
