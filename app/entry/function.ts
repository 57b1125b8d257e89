import { http } from "@google-cloud/functions-framework";
import { createNodeMiddleware, createProbot } from "probot";
import app from "../index.js";
import { KumoOctokit } from "../github/octokit.js";

// Cloud Run functions entry (`--entry-point kumo`): Probot's own Node middleware.
// Built once per instance: createNodeMiddleware is async in Probot 14.
const middleware = await createNodeMiddleware(app, {
  probot: createProbot({ overrides: { Octokit: KumoOctokit } }),
  webhooksPath: "/api/github/webhooks",
});

http("kumo", (req, res) => {
  void middleware(req, res, () => {
    res.status(404).json({ error: `no route for ${req.method} ${req.path}` });
  });
});
