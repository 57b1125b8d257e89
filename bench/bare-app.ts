import { run, type Probot } from "probot";

// The baseline of the cold-start figure: Probot's own server with an empty
// handler for the event Kumo handles, started the way app/entry/server.ts is.
await run((app: Probot) => {
  app.on("workflow_job.queued", async () => {});
});
