import { generateKeyPairSync } from "node:crypto";
import { Firestore } from "@google-cloud/firestore";
import { AppProcess, freePort } from "./app-process.js";
import { FakeCloudRun } from "./fakes/cloud-run.js";
import { FirestoreProxy } from "./fakes/firestore-proxy.js";
import { FakeGitHub } from "./fakes/github.js";
import { cpuMsOf, pidsMatching } from "./proc.js";

export const WEBHOOK_SECRET = "kumo-bench-secret";
export const KUMO_SERVER = new URL("../app/entry/server.js", import.meta.url).pathname;
export const BARE_APP = new URL("./bare-app.js", import.meta.url).pathname;

type Emulator = { host: string; stop(): Promise<void> };

/**
 * Everything the app processes talk to: the fakes of GitHub and Cloud Run, and
 * the real Firestore emulator behind a counting proxy. One per bench run;
 * scenarios reset the counters and use a Firestore project of their own.
 */
export class World {
  private readonly privateKey = generateKeyPairSync("rsa", {
    modulusLength: 2048,
    privateKeyEncoding: { type: "pkcs8", format: "pem" },
    publicKeyEncoding: { type: "spki", format: "pem" },
  }).privateKey;

  private constructor(
    /** The Kumo server under test: dist/app/entry/server.js unless --server names another build. */
    readonly kumoServer: string,
    /** NODE_OPTIONS for the app processes (e.g. --max-old-space-size=160 to mimic a memory limit). */
    readonly appNodeOptions: string | undefined,
    readonly emulator: Emulator,
    readonly github: FakeGitHub,
    readonly cloudRun: FakeCloudRun,
    readonly firestore: FirestoreProxy,
  ) {}

  static async start(kumoServer = KUMO_SERVER, appNodeOptions?: string): Promise<World> {
    // test/setup is plain JS outside the build: load it from the project root at run time.
    const url = new URL("../../test/setup/firestore-emulator.js", import.meta.url).href;
    const { startFirestoreEmulator } = (await import(url)) as { startFirestoreEmulator: () => Promise<Emulator> };
    const emulator = await startFirestoreEmulator();
    try {
      // The bench's own reads go straight to the emulator, not through the counting proxy.
      process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
      const [github, cloudRun, firestore] = await Promise.all([
        new FakeGitHub().listen(),
        new FakeCloudRun().listen(),
        new FirestoreProxy(emulator.host).listen(),
      ]);
      const world = new World(kumoServer, appNodeOptions, emulator, github, cloudRun, firestore);
      await world.warmEmulator();
      return world;
    } catch (error) {
      await emulator.stop();
      throw error;
    }
  }

  /** The emulator's Java process, found by the port it was started with (the wrapper script is not Java). */
  emulatorCpuMs(): number {
    const port = this.emulator.host.split(":").pop()!;
    return pidsMatching("java", "irestore", port).reduce((n, pid) => n + cpuMsOf(pid), 0);
  }

  /**
   * A fresh emulator is a cold JVM: its first thousands of commits take 5-50×
   * longer than later ones. Warm it up outside any measurement, the way the
   * app will use it (creates, failed creates, reads, updates).
   */
  private async warmEmulator(): Promise<void> {
    const db = new Firestore({ projectId: "kumo-bench-warmup" });
    try {
      const docs = db.collection("warmup");
      const ids = Array.from({ length: 4000 }, (_, i) => String(i));
      const inParallel = async (work: (id: string) => Promise<unknown>) => {
        let next = 0;
        const worker = async () => {
          for (let i = next++; i < ids.length; i = next++) await work(ids[i]!);
        };
        await Promise.all(Array.from({ length: 50 }, worker));
      };
      await inParallel((id) => docs.doc(id).create({ id, state: "claimed", labels: ["kumo", "small"] }));
      await inParallel((id) => docs.doc(id).create({ id }).catch(() => docs.doc(id).get()));
      await inParallel((id) => docs.doc(id).update({ state: "launched" }));
    } finally {
      await db.terminate();
    }
  }

  setLatency(latency: Record<string, number>): void {
    this.github.setLatency(latency);
    this.cloudRun.setLatency(latency);
  }

  /** Configured latency of an endpoint of either fake, ms. */
  latencyOf(endpoint: string): number {
    return this.github.latencyOf(endpoint) || this.cloudRun.latencyOf(endpoint);
  }

  resetCounters(): void {
    this.github.reset();
    this.cloudRun.reset();
    this.firestore.reset();
  }

  /** Only what the app needs: no variable of the bench's own environment leaks in. */
  appEnv(port: number, project: string, extra: Record<string, string> = {}): Record<string, string> {
    return {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: process.env.HOME ?? "/tmp",
      NODE_ENV: "production",
      // Cloud Logging's JSON lines, as on Cloud Run (K_SERVICE set there): not the terminal's pino-pretty.
      LOG_FORMAT: "json",
      LOG_LEVEL: "warn",
      APP_ID: "123",
      PRIVATE_KEY: this.privateKey,
      WEBHOOK_SECRET,
      GHE_HOST: `127.0.0.1:${this.github.port}`,
      GHE_PROTOCOL: "http",
      CLOUD_RUN_API_ENDPOINT: `http://127.0.0.1:${this.cloudRun.port}`,
      FIRESTORE_EMULATOR_HOST: this.firestore.host,
      GOOGLE_CLOUD_PROJECT: project,
      CLOUD_RUN_REGION: "us-central1",
      // No GCE metadata server here: Google's clients must not wait for one.
      METADATA_SERVER_DETECTION: "none",
      HOST: "127.0.0.1",
      PORT: String(port),
      ...(this.appNodeOptions ? { NODE_OPTIONS: this.appNodeOptions } : {}),
      ...extra,
    };
  }

  async startApp(script: string, project: string, extra: Record<string, string> = {}): Promise<AppProcess> {
    const port = await freePort();
    return new AppProcess(script, port, this.appEnv(port, project, extra));
  }

  /** Each job's state as the app left it in Firestore (collection kumo-jobs). */
  async jobStates(project: string): Promise<Map<number, string>> {
    const db = new Firestore({ projectId: project });
    try {
      const snapshot = await db.collection("kumo-jobs").select("state").get();
      return new Map(snapshot.docs.map((d) => [Number(d.id), String(d.get("state"))]));
    } finally {
      await db.terminate();
    }
  }

  async stop(): Promise<void> {
    await Promise.allSettled([this.github.close(), this.cloudRun.close(), this.firestore.close()]);
    await this.emulator.stop();
  }
}
