import { generateKeyPairSync, randomUUID } from "node:crypto";
import { Writable } from "node:stream";
import { Firestore } from "@google-cloud/firestore";
import nock from "nock";
import { pino } from "pino";
import { Probot } from "probot";
import { readConfig } from "../../app/config.js";
import { createDeps, type KumoDeps } from "../../app/deps.js";
import { KumoOctokit } from "../../app/github/octokit.js";
import { kumo } from "../../app/index.js";
import { createLogger } from "../../app/logging.js";
import { FirestoreJobStore } from "../../app/store/firestore-job-store.js";
import type { ReconcileContext, ReconcileOptions, StepSummary } from "../../app/reconcile/context.js";
import { reconcileContext } from "../../app/reconcile/from-probot.js";
import { reconcile } from "../../app/reconcile/reconcile.js";
import { CLOUD_RUN_ENDPOINT } from "./cloud-run.js";
import { deliveryId } from "./fixtures.js";

const { privateKey } = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
});
export const PRIVATE_KEY = privateKey;
export const APP_ID = 123;
export const WEBHOOK_SECRET = "kumo-test-secret";

export const TEST_ENV = {
  GOOGLE_CLOUD_PROJECT: "kumo-test",
  CLOUD_RUN_REGION: "us-central1",
  CLOUD_RUN_API_ENDPOINT: CLOUD_RUN_ENDPOINT,
};

/** A store on the emulator, in a Firestore project of its own so test files never see each other's jobs. */
export function emulatorStore(leaseMs = 60_000): FirestoreJobStore {
  if (!process.env.FIRESTORE_EMULATOR_HOST) throw new Error("FIRESTORE_EMULATOR_HOST is not set: run the tests through jest's global setup");
  const db = new Firestore({ projectId: `kumo-test-${randomUUID().slice(0, 8)}`, ignoreUndefinedProperties: true });
  return new FirestoreJobStore(db, leaseMs);
}

/** Every log line the app writes, as parsed JSON and as raw text. */
export class LogCapture {
  readonly lines: string[] = [];
  readonly stream = new Writable({
    write: (chunk, _enc, done) => {
      this.lines.push(...String(chunk).split("\n").filter(Boolean));
      done();
    },
  });
  get entries(): Array<Record<string, any>> {
    return this.lines.map((l) => JSON.parse(l));
  }
  text(): string {
    return this.lines.join("\n");
  }
  find(msg: RegExp): Record<string, any> | undefined {
    // `msg` in pino's own format, `message` in Cloud Logging's.
    return this.entries.find((e) => msg.test(String(e.msg ?? e.message)));
  }
}

/** One reconcile pass (or the given steps) with this harness's app, store and launcher. */
export async function reconcileWith(
  h: Harness,
  options: Partial<ReconcileOptions> = {},
  steps?: Array<(ctx: ReconcileContext) => Promise<StepSummary>>,
  now?: Date,
) {
  const ctx = await reconcileContext(h.probot, h.deps, h.probot.log.child({ name: "reconcile" }), options);
  if (now) ctx.now = now;
  if (!steps) return reconcile(ctx);
  const summaries: StepSummary[] = [];
  for (const step of steps) summaries.push(await step(ctx));
  return summaries;
}

export interface Harness {
  probot: Probot;
  deps: KumoDeps;
  logs: LogCapture;
  deliver(name: "workflow_job" | "push", payload: unknown, id?: string): Promise<void>;
}

/** A Probot app wired like production (KumoOctokit, Cloud Run client in REST mode), with test doubles only at the network edge. */
export function createHarness(
  options: { store?: FirestoreJobStore; env?: Record<string, string>; deps?: Partial<KumoDeps>; cloudLogging?: boolean } = {},
): Harness {
  const logs = new LogCapture();
  // cloudLogging: the production logger as on Cloud Run; otherwise plain pino JSON.
  const log = options.cloudLogging ? createLogger({ LOG_FORMAT: "json", LOG_LEVEL: "trace" }, logs.stream) : pino({ level: "trace" }, logs.stream);
  const probot = new Probot({
    appId: APP_ID,
    privateKey: PRIVATE_KEY,
    secret: WEBHOOK_SECRET,
    log,
    Octokit: KumoOctokit,
  });
  const config = readConfig({ ...TEST_ENV, ...options.env });
  const deps = createDeps(config, { store: options.store ?? emulatorStore(config.launchLeaseMs), ...options.deps });
  void probot.load(kumo(deps));
  return {
    probot,
    deps,
    logs,
    deliver: (name, payload, id = deliveryId()) => probot.receive({ id, name, payload } as any),
  };
}

export function useNock(): void {
  beforeAll(() => {
    nock.disableNetConnect();
  });
  afterEach(() => {
    nock.cleanAll();
  });
  afterAll(() => {
    nock.enableNetConnect();
  });
}

/**
 * Collects a test's nock scenarios; after each test, every interceptor they set
 * up must have been used.
 */
export function trackMocks(): <T extends { done(): void }>(mock: T) => T {
  let mocks: Array<{ done(): void }> = [];
  afterEach(() => {
    const used = mocks;
    mocks = [];
    for (const m of used) m.done();
  });
  return (mock) => (mocks.push(mock), mock);
}
