import { run } from "probot";
import app from "../index.js";
import { KumoOctokit } from "../github/octokit.js";

// `npm start`: Probot's server (webhooks at /api/github/webhooks, /ping). With no
// APP_ID it walks through registering the app from app.yml (GH_ORG for an org).
// In a container set HOST=0.0.0.0: Probot listens on localhost otherwise.
await run(app, { Octokit: KumoOctokit });
