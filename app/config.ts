import { getPrivateKey } from "@probot/get-private-key";
import { z } from "zod";
import { ConfigError } from "./errors.js";

// Runtime configuration from the environment. Probot reads its own variables
// (APP_ID, PRIVATE_KEY, WEBHOOK_SECRET, GHE_HOST…); these are Kumo's.
const EnvSchema = z.object({
  GOOGLE_CLOUD_PROJECT: z.string().min(1).optional(),
  CLOUD_RUN_REGION: z.string().min(1).optional(),
  CLOUD_RUN_API_ENDPOINT: z
    .url({ protocol: /^https?$/, error: "must be an http(s)://host:port URL" })
    .optional(),
  COMPUTE_API_ENDPOINT: z
    .url({ protocol: /^https?$/, error: "must be an http(s)://host:port URL" })
    .optional(),
  KUMO_COMPUTE_ENGINE: z.enum(["true", "false"], { error: "must be true or false" }).default("false"),
  FIRESTORE_DATABASE_ID: z.string().min(1).optional(),
  KUMO_RUNNER_PREFIX: z
    .string()
    .regex(/^[a-z][a-z0-9-]{0,19}$/, "must be 1-20 lowercase letters, digits or dashes")
    .default("kumo"),
  KUMO_SETTINGS_TTL_SECONDS: z.coerce.number().int().min(0).max(3600).default(60),
  KUMO_LAUNCH_LEASE_SECONDS: z.coerce.number().int().min(15).max(3600).default(60),
  KUMO_JIT_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(180),
  KUMO_JIT_MAX_WAIT_MS: z.coerce.number().int().min(0).max(8_000).default(3_000),
  KUMO_STORE_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(8_000),
  // Below Probot's 9 s, after which it answers 202 and a failure would look delivered.
  KUMO_DELIVERY_DEADLINE_MS: z.coerce.number().int().min(500).max(8_500).default(8_000),
  // GitHub's workflow_job payloads are ~10 KB; pushes to the org's .github repository are small too.
  KUMO_MAX_BODY_KB: z.coerce.number().int().min(64).max(25 * 1024).default(512),
  KUMO_TROUBLESHOOTING_URL: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).optional(),
  KUMO_EXPLAIN_AFTER_SECONDS: z.coerce.number().int().min(0).max(86_400).default(120),
  GHE_HOST: z.string().min(1).optional(),
  GHE_PROTOCOL: z.enum(["http", "https"]).default("https"),
  // One JIT budget for the whole deployment: launches go through this Cloud Tasks queue.
  KUMO_LAUNCH_QUEUE: z.string().regex(/^projects\/[^/]+\/locations\/[^/]+\/queues\/[A-Za-z0-9-]{1,100}$/, "must be projects/P/locations/L/queues/Q").optional(),
  KUMO_TASKS_URL: z.url({ protocol: /^https?$/, error: "must be the absolute http(s) URL of the launch route" }).optional(),
  KUMO_TASKS_SERVICE_ACCOUNT: z.email({ error: "must be a service account's email" }).optional(),
  KUMO_OIDC_CERTS_URL: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).default("https://www.googleapis.com/oauth2/v1/certs"),
  CLOUD_TASKS_API_ENDPOINT: z.url({ protocol: /^https?$/, error: "must be an http(s)://host:port URL" }).optional(),
  // A launch waiting in the queue keeps its claim this long; a lost task is enqueued again after it.
  KUMO_QUEUED_LEASE_SECONDS: z.coerce.number().int().min(60).max(86_400).default(900),
}).superRefine((e, ctx) => {
  if (!e.KUMO_LAUNCH_QUEUE) return;
  for (const name of ["KUMO_TASKS_URL", "KUMO_TASKS_SERVICE_ACCOUNT"] as const) {
    if (!e[name]) ctx.addIssue({ code: "custom", path: [name], message: "must be set with KUMO_LAUNCH_QUEUE" });
  }
});

export interface KumoConfig {
  /** Google Cloud project of the runner jobs, for short job names in settings. */
  project?: string;
  /** Region of the runner jobs, for short job names in settings. */
  region?: string;
  /** http(s)://host:port of a Cloud Run REST stand-in (tests, emulators). */
  cloudRunApiEndpoint?: string;
  /** Compute Engine API stand-in (tests), like cloudRunApiEndpoint. */
  computeApiEndpoint?: string;
  /**
   * compute-engine runner specs are served (the deployment made their template and IAM). Off:
   * Kumo never calls the Compute Engine API, and such specs fail with a clear reason.
   */
  computeEngine: boolean;
  firestoreDatabaseId?: string;
  /** Every runner Kumo registers is named `<prefix>-<job id>-…`. */
  runnerPrefix: string;
  settingsTtlMs: number;
  /** How long a claim protects a launch in progress before it may be taken over. */
  launchLeaseMs: number;
  /** GitHub's secondary limit allows about 180 JIT configs per minute per app. */
  jitPerMinute: number;
  /** Longest a webhook waits for JIT budget before leaving the job to reconcile. */
  jitMaxWaitMs: number;
  /** Longest one store call may take before it fails. */
  storeTimeoutMs: number;
  /** A delivery's handler finishes or fails within this, so GitHub records every failure. */
  deliveryDeadlineMs: number;
  /** Largest webhook body read; larger ones are refused with 413 before their signature is checked. */
  maxBodyBytes: number;
  /** GitHub's web address (GitHub Enterprise Server's with GHE_HOST), for links in check runs. */
  webUrl: string;
  /** Kumo's troubleshooting guide, linked from check runs. */
  troubleshootingUrl?: string;
  /** A job waiting for capacity this long gets a check run that says so. */
  explainAfterMs: number;
  /** With a Cloud Tasks queue, every launch (webhook, reconcile) is a task of it: one JIT budget for the deployment. */
  launchQueue?: {
    queue: string;
    /** The launch route's absolute URL: where tasks are sent, and the OIDC audience. */
    url: string;
    /** The account whose OIDC token the tasks carry; the route accepts no other. */
    serviceAccount: string;
    certsUrl: string;
    /** http(s)://host:port of a Cloud Tasks REST stand-in (tests). */
    apiEndpoint?: string;
    /** How long an enqueued launch keeps its claim. */
    leaseMs: number;
  };
}

export function readConfig(env: NodeJS.ProcessEnv = process.env): KumoConfig {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new ConfigError(`Invalid Kumo environment: ${problems}`);
  }
  const e = parsed.data;
  return {
    project: e.GOOGLE_CLOUD_PROJECT,
    region: e.CLOUD_RUN_REGION,
    cloudRunApiEndpoint: e.CLOUD_RUN_API_ENDPOINT,
    computeApiEndpoint: e.COMPUTE_API_ENDPOINT,
    computeEngine: e.KUMO_COMPUTE_ENGINE === "true",
    firestoreDatabaseId: e.FIRESTORE_DATABASE_ID,
    runnerPrefix: e.KUMO_RUNNER_PREFIX,
    settingsTtlMs: e.KUMO_SETTINGS_TTL_SECONDS * 1000,
    launchLeaseMs: e.KUMO_LAUNCH_LEASE_SECONDS * 1000,
    jitPerMinute: e.KUMO_JIT_PER_MINUTE,
    jitMaxWaitMs: e.KUMO_JIT_MAX_WAIT_MS,
    storeTimeoutMs: e.KUMO_STORE_TIMEOUT_MS,
    deliveryDeadlineMs: e.KUMO_DELIVERY_DEADLINE_MS,
    maxBodyBytes: e.KUMO_MAX_BODY_KB * 1024,
    webUrl: e.GHE_HOST ? `${e.GHE_PROTOCOL}://${e.GHE_HOST}` : "https://github.com",
    troubleshootingUrl: e.KUMO_TROUBLESHOOTING_URL,
    explainAfterMs: e.KUMO_EXPLAIN_AFTER_SECONDS * 1000,
    ...(e.KUMO_LAUNCH_QUEUE
      ? {
          launchQueue: {
            queue: e.KUMO_LAUNCH_QUEUE,
            url: e.KUMO_TASKS_URL!,
            serviceAccount: e.KUMO_TASKS_SERVICE_ACCOUNT!,
            certsUrl: e.KUMO_OIDC_CERTS_URL,
            ...(e.CLOUD_TASKS_API_ENDPOINT ? { apiEndpoint: e.CLOUD_TASKS_API_ENDPOINT } : {}),
            leaseMs: e.KUMO_QUEUED_LEASE_SECONDS * 1000,
          },
        }
      : {}),
  };
}

/**
 * The GitHub App's credentials, which Probot reads itself: checked first so a
 * missing one is named, instead of failing later deep inside Probot.
 */
export function checkAppCredentials(env: NodeJS.ProcessEnv = process.env): void {
  if (!env.APP_ID) throw new ConfigError("APP_ID is not set: the GitHub App's numeric id, from its settings page");
  if (!/^\d+$/.test(env.APP_ID)) throw new ConfigError(`APP_ID must be the GitHub App's numeric id, not "${env.APP_ID.slice(0, 40)}"`);
  let key: string | null;
  try {
    // The same lookup as Probot's: PRIVATE_KEY, then PRIVATE_KEY_PATH, then one .pem file in the working directory.
    key = getPrivateKey({ env });
  } catch (error) {
    throw new ConfigError(`PRIVATE_KEY / PRIVATE_KEY_PATH: ${(error as Error).message}`);
  }
  if (!key) throw new ConfigError("PRIVATE_KEY is not set (nor PRIVATE_KEY_PATH): the GitHub App's private key, PEM");
}

/** In production the webhook secret is required: Probot would otherwise accept bodies signed with its public default. */
export function checkWebhookSecret(env: NodeJS.ProcessEnv = process.env): string {
  const secret = env.WEBHOOK_SECRET;
  if (!secret) throw new ConfigError("WEBHOOK_SECRET is not set: the secret GitHub signs webhooks with, from the app's settings");
  if (secret === "development") throw new ConfigError('WEBHOOK_SECRET is Probot\'s public default "development": set the app\'s own secret');
  return secret;
}

/** Which Firestore the process talks to, for an error that says it did not answer. */
export function firestoreWhere(config: Pick<KumoConfig, "project" | "firestoreDatabaseId">, env: NodeJS.ProcessEnv = process.env): string {
  return env.FIRESTORE_EMULATOR_HOST
    ? `emulator at FIRESTORE_EMULATOR_HOST=${env.FIRESTORE_EMULATOR_HOST}`
    : `GOOGLE_CLOUD_PROJECT=${config.project ?? "(from credentials)"}, database ${config.firestoreDatabaseId ?? "(default)"}`;
}
