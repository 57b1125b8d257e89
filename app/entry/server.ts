import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { run, type Logger } from "probot";
import { checkAppCredentials } from "../config.js";
import app, { productionDeps } from "../index.js";
import { KumoOctokit } from "../github/octokit.js";
import { createLogger } from "../logging.js";
import { exitWithError } from "./exit.js";

/** Cloud Run kills an instance 10 s after SIGTERM: what is in flight gets most of that. */
const STOP_GRACE_MS = 8_000;

/**
 * `npm start`: Probot's server (webhooks at /api/github/webhooks, /ping). With no
 * APP_ID it walks through registering the app from app.yml (GH_ORG for an org).
 * In a container set HOST=0.0.0.0: Probot listens on localhost otherwise.
 */
export function startServer(log: Logger = createLogger()) {
  return run(app, { Octokit: KumoOctokit, log });
}

const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const log = createLogger();
  try {
    // Probot only sets up a new app when not in production; there, missing credentials are an error.
    if (process.env.NODE_ENV === "production") checkAppCredentials();
    // A bad KUMO_* or Google variable is named before anything listens.
    const deps = productionDeps();
    const server = await startServer(log);
    // Cloud Run stops instances with SIGTERM; Probot itself only handles SIGINT.
    // Requests in flight are answered, then store writes still running land.
    process.once("SIGTERM", () => {
      log.info("SIGTERM: finishing requests in flight");
      const stopped = Promise.race([server.stop(), new Promise((r) => setTimeout(r, STOP_GRACE_MS))]);
      void stopped
        .then(() => deps.store.drain(1_000))
        .finally(() => process.exit(0));
    });
  } catch (error) {
    exitWithError(log, "server", error);
  }
}
