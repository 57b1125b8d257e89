import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { run } from "probot";
import app, { productionDeps } from "../index.js";
import { KumoOctokit } from "../github/octokit.js";

/**
 * `npm start`: Probot's server (webhooks at /api/github/webhooks, /ping). With no
 * APP_ID it walks through registering the app from app.yml (GH_ORG for an org).
 * In a container set HOST=0.0.0.0: Probot listens on localhost otherwise.
 */
export function startServer() {
  return run(app, { Octokit: KumoOctokit });
}

const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const server = await startServer();
  // Cloud Run stops instances with SIGTERM and kills them 10 s later; Probot itself
  // only handles SIGINT. Let store writes in flight land before exiting.
  process.once("SIGTERM", () => {
    void Promise.allSettled([server.stop(), productionDeps().store.drain(8_000)]).finally(() => process.exit(0));
  });
}
