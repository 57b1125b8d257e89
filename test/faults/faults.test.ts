import { afterAll, afterEach, beforeAll, describe, expect, test } from "@jest/globals";
import nock from "nock";
import { formatSummary } from "../../app/reconcile/reconcile.js";
import { INSTALLATION_ID, ORG, REPO, SETTINGS_YAML, workflowJobPayload } from "../helpers/fixtures.js";
import { createHarness, emulatorStore, reconcileWith } from "../helpers/harness.js";
import { World } from "../helpers/world.js";

const SMALL_JOB = "projects/kumo-test/locations/us-central1/jobs/gha-runner-small";
let nextJobId = 1_400_000;
const jobIds = (n: number) => Array.from({ length: n }, () => nextJobId++);
const queued = (id: number) => workflowJobPayload("queued", { id, labels: ["kumo", "small"] }) as { action: string; workflow_job: { id: number } };

/** Every fifth JIT request fails, rotating through 500, 502 and GitHub's secondary rate limit. */
function flakyGitHub(n: number) {
  if (n % 5 !== 0) return undefined;
  const kind = (n / 5) % 3;
  if (kind === 0) return { status: 500, body: { message: "Server Error" } };
  if (kind === 1) return { status: 502, body: { message: "Bad Gateway" } };
  return { status: 403, body: { message: "You have exceeded a secondary rate limit" }, headers: { "retry-after": "1" } };
}
/** Every fifth runJob answers 503. */
const flakyCloudRun = (n: number) => (n % 5 === 2 ? { status: 503, body: { error: { code: 503, message: "unavailable", status: "UNAVAILABLE" } } } : undefined);

describe("faults: after one reconcile pass the system is exact", () => {
  beforeAll(() => {
    nock.disableNetConnect();
    nock.enableNetConnect("127.0.0.1");
  });
  afterEach(() => nock.cleanAll());
  afterAll(() => nock.enableNetConnect());

  test("20% of JIT and runJob calls fail, and the app died once between JIT and runJob", async () => {
    const world = new World(SETTINGS_YAML);
    world.install();
    world.jitFault = flakyGitHub;
    world.runJobFault = flakyCloudRun;
    const store = emulatorStore(1_000);
    const h = createHarness({ store });
    const ids = jobIds(30);

    // The app died after generate-jitconfig: a claim and a registration, no execution.
    const crashed = nextJobId++;
    world.jobStatus.set(crashed, "queued");
    await store.claim(
      { jobId: crashed, runId: 1, runAttempt: 1, installationId: INSTALLATION_ID, org: ORG, repo: `${ORG}/${REPO}`, labels: ["kumo", "small"], target: { labels: ["kumo", "small"], group: "cloudrun", groupId: 7, job: SMALL_JOB } },
      new Date(Date.now() - 10_000),
    );
    world.registerOrphan(`kumo-${crashed}-1-0a0b0c`);

    const outcomes = await Promise.all(ids.map((id) => world.deliver(h, queued(id))));
    expect(outcomes.filter((ok) => !ok).length).toBeGreaterThan(0);
    expect(world.violations().length).toBeGreaterThan(0);

    // GitHub and Cloud Run recover; the rate limit's retry-after (1 s) passes.
    world.jitFault = () => undefined;
    world.runJobFault = () => undefined;
    await new Promise((r) => setTimeout(r, 1_100));
    const summary = (await reconcileWith(h)).map(formatSummary);
    await world.flushRedeliveries(h);

    expect(world.violations()).toEqual([]);
    for (const id of [...ids, crashed]) expect(world.executionsForJob(id)).toBe(1);
    expect(summary[1]).toMatch(/^unfinished launches: checked=\d+ launched=[1-9]\d* .* errors=0$/);
    expect(world.redeliveryQueue).toEqual([]);
  });

  test("a storm: every delivery of 20 jobs 5 times at once, across two instances → one runner each", async () => {
    const world = new World(SETTINGS_YAML);
    world.install();
    const store = emulatorStore();
    const a = createHarness({ store });
    const b = createHarness({ store });
    const ids = jobIds(20);
    await Promise.all(ids.flatMap((id) => Array.from({ length: 5 }, (_, i) => world.deliver(i % 2 ? a : b, queued(id)))));
    for (const id of ids) expect(world.executionsForJob(id)).toBe(1);
    expect(world.violations()).toEqual([]);
  });
});

