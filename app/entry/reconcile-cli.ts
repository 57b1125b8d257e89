import { createProbot } from "probot";
import { readConfig } from "../config.js";
import { createDeps } from "../deps.js";
import { KumoOctokit } from "../github/octokit.js";
import { reconcileContext } from "../reconcile/from-probot.js";
import { formatSummary, reconcile } from "../reconcile/reconcile.js";

// `npm run reconcile`: one pass, then exit. Deployed as a Cloud Run job that
// Cloud Scheduler runs every minute; overlapping passes are safe.
const probot = createProbot({ overrides: { Octokit: KumoOctokit } });
try {
  const deps = createDeps(readConfig());
  const started = Date.now();
  const summaries = await reconcile(await reconcileContext(probot, deps));
  for (const summary of summaries) console.log(formatSummary(summary));
  console.log(`reconcile pass done in ${Date.now() - started} ms`);
  process.exit(0);
} catch (error) {
  // The pass could not run at all (configuration, credentials): say so and fail the execution.
  probot.log.error({ err: (error as Error).message }, "reconcile pass failed");
  process.exit(1);
}
