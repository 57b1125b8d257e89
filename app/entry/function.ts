import { http } from "@google-cloud/functions-framework";
import { createNodeMiddleware, createProbot } from "probot";
import { checkAppCredentials, checkWebhookSecret } from "../config.js";
import app, { productionDeps } from "../index.js";
import { KumoOctokit } from "../github/octokit.js";
import { createLogger } from "../logging.js";
import { exitWithError } from "./exit.js";
import { launchTaskRoute } from "../handlers/launch-task.js";
import { frontDoor } from "./front-door.js";

// Cloud Run functions entry (package.json `main`, target `kumo`): Probot's own Node
// middleware behind the same front door as the server. The functions framework has
// read the body already (up to its own 32 MiB limit); the front door checks its size
// and signature. Built once per instance: createNodeMiddleware is async in Probot 14.
const log = createLogger();
const WEBHOOKS_PATH = "/api/github/webhooks";
let middleware: Awaited<ReturnType<typeof createNodeMiddleware>>;
let guard: ReturnType<typeof frontDoor>;
let launchTasks: ReturnType<typeof launchTaskRoute>;
try {
  checkAppCredentials();
  const secret = checkWebhookSecret();
  const deps = productionDeps();
  guard = frontDoor({ path: WEBHOOKS_PATH, secret, maxBodyBytes: deps.config.maxBodyBytes, log });
  const probot = createProbot({ overrides: { Octokit: KumoOctokit, log } });
  middleware = await createNodeMiddleware(app, { probot, webhooksPath: WEBHOOKS_PATH });
  launchTasks = launchTaskRoute(deps, probot, log.child({ name: "launch-task" }));
} catch (error) {
  exitWithError(log, "function", error);
}

http("kumo", async (req, res) => {
  if (launchTasks && (await launchTasks(req, res))) return;
  if (await guard(req, res)) return;
  await middleware(req, res, () => {
    res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
  });
});
