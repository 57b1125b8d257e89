import type { ApplicationFunction, ApplicationFunctionOptions, Probot } from "probot";
import { readConfig } from "./config.js";
import { createDeps, type KumoDeps } from "./deps.js";
import { withDeadline } from "./handlers/deadline.js";
import { settingsPush } from "./handlers/settings-push.js";
import { workflowJobProgress } from "./handlers/workflow-job-progress.js";
import { workflowJobQueued } from "./handlers/workflow-job-queued.js";

/** Wires events to handlers; everything else lives in the modules they call. */
export function kumo(deps: KumoDeps): ApplicationFunction {
  const deadline = deps.config.deliveryDeadlineMs;
  return (app: Probot) => {
    app.on("workflow_job.queued", withDeadline(deadline, workflowJobQueued(deps)));
    app.on(["workflow_job.in_progress", "workflow_job.completed"], withDeadline(deadline, workflowJobProgress(deps)));
    app.on("push", withDeadline(deadline, settingsPush(deps)));
  };
}

let production: KumoDeps | undefined;

/** The process's dependencies from the environment, made once. */
export function productionDeps(): KumoDeps {
  production ??= createDeps(readConfig());
  return production;
}

/** The app as `probot run` and the entry points load it. */
export default function app(probot: Probot, options: ApplicationFunctionOptions): void {
  void kumo(productionDeps())(probot, options);
}
