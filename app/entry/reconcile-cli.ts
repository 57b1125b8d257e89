import { createProbot } from "probot";
import { checkAppCredentials, readConfig } from "../config.js";
import { createDeps } from "../deps.js";
import { KumoOctokit } from "../github/octokit.js";
import { createLogger } from "../logging.js";
import { reconcileContext } from "../reconcile/from-probot.js";
import { preflight } from "../reconcile/preflight.js";
import { formatSummary, reconcile } from "../reconcile/reconcile.js";
import { exitWithError } from "./exit.js";

// `npm run reconcile`: one pass, then exit. Deployed as a Cloud Run job that
// Cloud Scheduler runs every minute; overlapping passes are safe. Exit code 1
// when the pass or one of its steps could not run, so the execution shows failed.
const log = createLogger();
try {
  checkAppCredentials();
  const deps = createDeps(readConfig());
  const started = Date.now();
  const ctx = await reconcileContext(createProbot({ overrides: { Octokit: KumoOctokit, log } }), deps, log.child({ name: "reconcile" }));
  await preflight(ctx);
  const summaries = await reconcile(ctx);
  for (const summary of summaries) {
    log.info({ step: summary.step, counts: summary.counts }, formatSummary(summary));
    for (const detail of summary.details ?? []) log.info({ step: summary.step }, `  ${detail}`);
  }
  const failed = summaries.filter((s) => s.failed).map((s) => s.step);
  if (failed.length > 0) {
    log.error({ failed, ms: Date.now() - started }, `reconcile pass incomplete: ${failed.join(", ")} could not run`);
    process.exit(1);
  }
  log.info({ ms: Date.now() - started }, `reconcile pass done in ${Date.now() - started} ms`);
  process.exit(0);
} catch (error) {
  exitWithError(log, "reconcile", error);
}
