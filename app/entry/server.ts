import { realpathSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";
import { run, type Logger } from "probot";
import { checkAppCredentials, checkWebhookSecret } from "../config.js";
import app, { productionDeps } from "../index.js";
import { KumoOctokit } from "../github/octokit.js";
import { createLogger } from "../logging.js";
import { exitWithError } from "./exit.js";
import { kumoRoutes } from "./routes.js";

/** Cloud Run kills an instance 10 s after SIGTERM: what is in flight gets most of that. */
const STOP_GRACE_MS = 8_000;
/** GitHub sends a delivery at once; a client that trickles one is cut off. */
const REQUEST_TIMEOUT_MS = 15_000;

export interface RunningServer {
  port: number;
  /** Stops accepting, lets requests in flight finish (closing their connections after), resolves when none is left. */
  stop(): Promise<void>;
}

/**
 * `npm start`. With the app's credentials: a node:http server whose webhook route
 * is guarded (body limit, signature) before Probot's middleware, and /ping. Without
 * them, outside production, Probot's setup flow registers the app from app.yml
 * (GH_ORG for an org). In a container set HOST=0.0.0.0: it listens on localhost otherwise.
 */
export async function startServer(log: Logger = createLogger(), env: NodeJS.ProcessEnv = process.env): Promise<RunningServer> {
  if (env.NODE_ENV === "production") {
    checkAppCredentials(env);
    checkWebhookSecret(env);
  } else if (!env.APP_ID || !(env.PRIVATE_KEY || env.PRIVATE_KEY_PATH)) {
    return run(app, { Octokit: KumoOctokit, log });
  }
  const path = env.WEBHOOK_PATH || "/api/github/webhooks";
  const routes = await kumoRoutes(log, { env, webhooksPath: path, secret: env.WEBHOOK_SECRET || "development" });
  const { config } = routes;
  const notFound = (req: IncomingMessage, res: ServerResponse) =>
    res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: `no route for ${req.method} ${req.url}` }));

  let stopping = false;
  const server = createServer((req, res) => {
    // While stopping, a connection is closed as soon as its last response is out.
    res.once("finish", () => stopping && setImmediate(() => server.closeIdleConnections()));
    if (req.method === "GET" && req.url === "/ping") {
      res.writeHead(200, { "content-type": "text/plain" }).end("PONG");
      return;
    }
    routes.handle(req, res, () => notFound(req, res)).catch((error: unknown) => {
      log.error({ err: error }, "request failed");
      if (!res.headersSent) res.writeHead(500).end();
    });
  });
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  // A client that asks before sending a large body (Expect: 100-continue, as curl does) is refused before it sends it.
  server.on("checkContinue", (req, res) => {
    if (!(Number(req.headers["content-length"]) > config.maxBodyBytes)) res.writeContinue();
    server.emit("request", req, res);
  });
  const host = env.HOST || "localhost";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(Number(env.PORT || 3000), host, resolve);
  });
  const port = (server.address() as { port: number }).port;
  log.info({ host, port, path }, `Kumo listening on http://${host}:${port}`);
  return {
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        stopping = true;
        server.close(() => resolve());
        server.closeIdleConnections();
      }),
  };
}

const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const log = createLogger();
  try {
    const server = await startServer(log);
    // Cloud Run stops instances with SIGTERM; Probot itself only handles SIGINT.
    // Requests in flight are answered, then store writes still running land.
    process.once("SIGTERM", () => {
      log.info("SIGTERM: finishing requests in flight");
      const stopped = Promise.race([server.stop(), new Promise((r) => setTimeout(r, STOP_GRACE_MS))]);
      void stopped.then(() => productionDeps().store.drain(1_000)).finally(() => process.exit(0));
    });
  } catch (error) {
    exitWithError(log, "server", error);
  }
}
