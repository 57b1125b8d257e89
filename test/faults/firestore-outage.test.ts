import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "@jest/globals";
import { Firestore } from "@google-cloud/firestore";
import nock from "nock";
import { FirestoreJobStore } from "../../app/store/firestore-job-store.js";
import { SETTINGS_YAML, workflowJobPayload } from "../helpers/fixtures.js";
import { createHarness, reconcileWith } from "../helpers/harness.js";
import { World } from "../helpers/world.js";
// @ts-expect-error plain JavaScript helper shared with the benchmark
import { startFirestoreEmulator } from "../setup/firestore-emulator.js";

let nextJobId = 1_500_000;
const jobIds = (n: number) => Array.from({ length: n }, () => nextJobId++);
const queued = (id: number) => workflowJobPayload("queued", { id, labels: ["kumo", "small"] }) as { action: string; workflow_job: { id: number } };

describe("faults: the Firestore emulator stops and restarts mid-run", () => {
  let emulator: Awaited<ReturnType<typeof startFirestoreEmulator>>;
  const projectId = `kumo-outage-${Date.now()}`;
  beforeAll(async () => {
    emulator = await startFirestoreEmulator();
    // This file's stores talk to an emulator of its own: the shared one must not stop.
    process.env.FIRESTORE_EMULATOR_HOST = emulator.host;
    nock.disableNetConnect();
    nock.enableNetConnect("127.0.0.1");
  });
  const clients: Firestore[] = [];
  const harnesses: Array<ReturnType<typeof createHarness>> = [];
  afterAll(async () => {
    // Writes sent into the outage are still retried by the first client: let them land first.
    await Promise.all(harnesses.map((h) => h.deps.store.drain(30_000)));
    await Promise.all(clients.map((c) => c.terminate()));
    nock.cleanAll();
    nock.enableNetConnect();
    await emulator?.stop();
  });

  test("deliveries fail fast during the outage; after the restart one pass launches every job exactly once", async () => {
    const world = new World(SETTINGS_YAML);
    world.install();
    const store = () => {
      const db = new Firestore({ projectId, ignoreUndefinedProperties: true });
      clients.push(db);
      return new FirestoreJobStore(db, 1_000);
    };
    const h = createHarness({ store: store(), env: { KUMO_STORE_TIMEOUT_MS: "1500" } });
    harnesses.push(h);
    const before = jobIds(5);
    const during = jobIds(5);
    await Promise.all(before.map((id) => world.deliver(h, queued(id))));

    // Stop: keep the data (production Firestore never loses a commit), then kill the emulator.
    const saved = await emulator.exportTo(mkdtempSync(join(tmpdir(), "kumo-fs-")), projectId);
    await emulator.stop();
    const started = Date.now();
    const outcomes = await Promise.all(during.map((id) => world.deliver(h, queued(id))));
    expect(outcomes).toEqual(during.map(() => false));
    expect(Date.now() - started).toBeLessThan(8_000); // within GitHub's 10 s, not the client's minutes of retries

    emulator = await startFirestoreEmulator({ port: emulator.port, importData: saved });
    // A fresh instance after the outage (the old one may hold broken connections; either is fine).
    const after = createHarness({ store: store() });
    harnesses.push(after);
    await reconcileWith(after);
    await world.flushRedeliveries(after);

    expect(world.violations()).toEqual([]);
    for (const id of [...before, ...during]) expect(world.executionsForJob(id)).toBe(1);
  }, 60_000);
});
