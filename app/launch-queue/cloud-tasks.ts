import type { CloudTasksClient } from "@google-cloud/tasks";
import { OAuth2Client } from "google-auth-library";
import type { KumoConfig } from "../config.js";
import { errorLine, fromGoogleError } from "../errors.js";
import { googleClientOptions } from "../launcher/google-client-options.js";
import { taskId, type LaunchQueue, type QueuedLaunch, type QueuedWarmLaunch } from "./queue.js";

const ALREADY_EXISTS = 6;
/** A launch is a JIT registration and a runJob: seconds. Longer means something hangs; Cloud Tasks retries. */
const DISPATCH_DEADLINE_S = 60;

type QueueConfig = NonNullable<KumoConfig["launchQueue"]>;

/** Launches as tasks of a Cloud Tasks queue, sent with an OIDC token to the service's launch route. */
export class CloudTasksQueue implements LaunchQueue {
  readonly enqueues = true;
  private client: Promise<CloudTasksClient> | undefined;

  constructor(
    private readonly config: QueueConfig,
    private readonly prefix: string,
  ) {}

  async enqueue(launch: QueuedLaunch): Promise<void> {
    await this.create(taskId(launch, this.prefix), launch, `enqueue launch of job ${launch.jobId}`);
  }

  async enqueueWarm(launch: QueuedWarmLaunch): Promise<void> {
    const { key, id } = launch.warm;
    await this.create(`${this.prefix}-warm-${key}-${id}`, launch, `enqueue warm launch ${id} of ${key}`);
  }

  private async create(id: string, body: QueuedLaunch | QueuedWarmLaunch, what: string): Promise<void> {
    // Loaded on first use: a deployment without a queue never pays for the client.
    this.client ??= import("@google-cloud/tasks").then(({ CloudTasksClient }) => new CloudTasksClient(googleClientOptions(this.config.apiEndpoint)));
    const client = await this.client;
    try {
      await client.createTask({
        parent: this.config.queue,
        task: {
          name: `${this.config.queue}/tasks/${id}`,
          dispatchDeadline: { seconds: DISPATCH_DEADLINE_S },
          httpRequest: {
            url: this.config.url,
            httpMethod: "POST",
            headers: { "content-type": "application/json" },
            body: Buffer.from(JSON.stringify(body)),
            oidcToken: { serviceAccountEmail: this.config.serviceAccount, audience: this.config.url },
          },
        },
      });
    } catch (error) {
      // The same launch enqueued before (a redelivery, another instance, a reconcile pass): done already.
      if ((error as { code?: number }).code === ALREADY_EXISTS) return;
      throw fromGoogleError(what, error);
    }
  }
}

/** Why a task request is refused: 401 (no or bad token) or 403 (a valid token of another account). */
export class TaskAuthError extends Error {
  constructor(
    readonly status: 401 | 403,
    message: string,
  ) {
    super(message);
    this.name = "TaskAuthError";
  }
}

/**
 * Checks that a request to the launch route comes from Cloud Tasks with the
 * configured account's OIDC token: signature, expiry, issuer and audience (by
 * google-auth-library), and the `email` claim with `email_verified`, which the
 * library does not check. The X-CloudTasks-* headers are not identity.
 */
export class TaskTokenVerifier {
  private readonly oauth: OAuth2Client;

  constructor(private readonly config: Pick<QueueConfig, "url" | "serviceAccount" | "certsUrl">) {
    this.oauth = new OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: config.certsUrl } });
  }

  async verify(authorization: string | undefined): Promise<void> {
    const token = /^Bearer (\S+)$/.exec(authorization ?? "")?.[1];
    if (!token) throw new TaskAuthError(401, "no bearer token");
    let payload;
    try {
      payload = (await this.oauth.verifyIdToken({ idToken: token, audience: this.config.url })).getPayload();
    } catch (error) {
      throw new TaskAuthError(401, `token refused: ${errorLine(error, 200)}`);
    }
    if (!payload?.email_verified || payload.email !== this.config.serviceAccount) {
      throw new TaskAuthError(403, `token of ${payload?.email ?? "no account"}, not of ${this.config.serviceAccount}`);
    }
  }
}
