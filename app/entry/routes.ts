import type { IncomingMessage, ServerResponse } from "node:http";
import { createNodeMiddleware, createProbot, type Logger } from "probot";
import app, { productionDeps } from "../index.js";
import { KumoOctokit } from "../github/octokit.js";
import { launchTaskRoute } from "../handlers/launch-task.js";
import { frontDoor } from "./front-door.js";

/**
 * The service's routes, as the server and the functions entry both serve them:
 * the launch queue's route (its own authentication), then the webhook route
 * behind the front door (body limit, signature), then Probot's middleware.
 * Resolves true when a route answered; `notFound` otherwise.
 */
export async function kumoRoutes(log: Logger, options: { env?: NodeJS.ProcessEnv; webhooksPath: string; secret: string }) {
  // A bad KUMO_* or Google variable is named here, before anything listens.
  const deps = productionDeps();
  const probot = createProbot({ ...(options.env ? { env: options.env } : {}), overrides: { Octokit: KumoOctokit, log } });
  const middleware = await createNodeMiddleware(app, { probot, webhooksPath: options.webhooksPath });
  const launchTasks = launchTaskRoute(deps, probot, log.child({ name: "launch-task" }));
  const guard = frontDoor({ path: options.webhooksPath, secret: options.secret, maxBodyBytes: deps.config.maxBodyBytes, log });
  return {
    config: deps.config,
    async handle(req: IncomingMessage, res: ServerResponse, notFound: () => void): Promise<void> {
      if (launchTasks && (await launchTasks(req, res))) return;
      if (await guard(req, res)) return;
      await middleware(req, res, notFound);
    },
  };
}
