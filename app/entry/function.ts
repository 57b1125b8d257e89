import { http } from "@google-cloud/functions-framework";
import { checkAppCredentials, checkWebhookSecret } from "../config.js";
import { createLogger } from "../logging.js";
import { exitWithError } from "./exit.js";
import { kumoRoutes } from "./routes.js";

// Cloud Run functions entry (package.json `main`, target `kumo`): the same routes as
// the server. The functions framework has read the body already (up to its own 32 MiB
// limit); the front door checks its size and signature. Built once per instance:
// Probot 14's middleware is made asynchronously.
const log = createLogger();
let routes: Awaited<ReturnType<typeof kumoRoutes>>;
try {
  checkAppCredentials();
  routes = await kumoRoutes(log, { webhooksPath: "/api/github/webhooks", secret: checkWebhookSecret() });
} catch (error) {
  exitWithError(log, "function", error);
}

http("kumo", (req, res) =>
  routes.handle(req, res, () => {
    res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
  }),
);
