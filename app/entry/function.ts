import { http } from "@google-cloud/functions-framework";
import { createNodeMiddleware, createProbot } from "probot";
import { checkAppCredentials } from "../config.js";
import app, { productionDeps } from "../index.js";
import { KumoOctokit } from "../github/octokit.js";
import { createLogger } from "../logging.js";
import { exitWithError } from "./exit.js";

// Cloud Run functions entry (package.json `main`, target `kumo`): Probot's own Node
// middleware. Built once per instance: createNodeMiddleware is async in Probot 14.
const log = createLogger();
let middleware: Awaited<ReturnType<typeof createNodeMiddleware>>;
try {
  checkAppCredentials();
  productionDeps();
  middleware = await createNodeMiddleware(app, {
    probot: createProbot({ overrides: { Octokit: KumoOctokit, log } }),
    webhooksPath: "/api/github/webhooks",
  });
} catch (error) {
  exitWithError(log, "function", error);
}

http("kumo", (req, res) => {
  void middleware(req, res, () => {
    res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
  });
});
