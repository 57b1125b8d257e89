import { describe, expect, test } from "@jest/globals";
import nock from "nock";
import { capacity, SLOT_CHECK_MS } from "../../app/reconcile/capacity.js";
import { capacityOf, type NewJob } from "../../app/store/job-store.js";
import { INSTALLATION_ID, ORG, REPO } from "../helpers/fixtures.js";
import { GITHUB, mockGitHub } from "../helpers/github.js";
import { createHarness, reconcileWith, trackMocks, useNock, type Harness } from "../helpers/harness.js";

useNock();

const FULL_REPO = `${ORG}/${REPO}`;
const TARGET = { labels: ["kumo", "capped"], group: "cloudrun", groupId: 7, job: "projects/kumo-test/locations/us-central1/jobs/gha-runner-small", maxRunners: 2 };
const { key, name } = capacityOf(ORG, TARGET)!;
let nextJobId = 2_300_000;
const newJobId = () => nextJobId++;
const newJob = (jobId: number): NewJob => ({ jobId, runId: 1, runAttempt: 1, installationId: INSTALLATION_ID, org: ORG, repo: FULL_REPO, labels: TARGET.labels, target: TARGET });

/** A capped job launched at `at`, holding a slot taken then. */
async function launchedHolder(h: Harness, at: Date): Promise<number> {
  const jobId = newJobId();
  await h.deps.store.claim(newJob(jobId), at);
  await h.deps.store.takeSlot(key, TARGET.maxRunners, { jobId, org: ORG, name }, at);
  await h.deps.store.markLaunched(jobId, 1, { runnerId: 1, runnerName: `kumo-${jobId}-1-aaaaaa`, execution: "e" }, at);
  return jobId;
}

describe("reconcile: capacity", () => {
  const track = trackMocks();

  test("a holder found alive on GitHub is noted: not asked again until SLOT_CHECK_MS after that", async () => {
    const h = createHarness();
    const t0 = Date.now();
    const jobId = await launchedHolder(h, new Date(t0));
    track(mockGitHub().canGetToken().hasJob(FULL_REPO, jobId, "in_progress", {}, 2));

    const first = await reconcileWith(h, {}, [capacity], new Date(t0 + SLOT_CHECK_MS));
    expect(first[0]!.counts).toMatchObject({ asked: 1, released: 0, live: 1 });
    expect((await h.deps.store.listSlots(key))[0]!.checkedAt).toEqual(new Date(t0 + SLOT_CHECK_MS));

    const soon = await reconcileWith(h, {}, [capacity], new Date(t0 + 2 * SLOT_CHECK_MS - 1));
    expect(soon[0]!.counts).toMatchObject({ asked: 0, released: 0, live: 1 });

    const later = await reconcileWith(h, {}, [capacity], new Date(t0 + 2 * SLOT_CHECK_MS));
    expect(later[0]!.counts).toMatchObject({ asked: 1, released: 0, live: 1 });
  });

  test("a question GitHub cannot answer is an error: the slot is kept, the other slots still checked", async () => {
    const h = createHarness();
    const t0 = Date.now();
    const [broken, done] = [await launchedHolder(h, new Date(t0)), await launchedHolder(h, new Date(t0))];
    track(mockGitHub().canGetToken().hasJob(FULL_REPO, done, "completed", { conclusion: "success" }));
    track(nock(GITHUB).get(`/repos/${FULL_REPO}/actions/jobs/${broken}`).reply(502, { message: "Bad Gateway" }));

    const [summary] = await reconcileWith(h, {}, [capacity], new Date(t0 + SLOT_CHECK_MS));

    expect(summary!.counts).toMatchObject({ asked: 2, released: 1, errors: 1, live: 1 });
    expect((await h.deps.store.listSlots(key)).map((s) => s.jobId)).toEqual([broken]);
    expect(await h.deps.store.get(done)).toMatchObject({ state: "completed", conclusion: "success" });
    expect(h.logs.find(/capacity slot not checked/)).toMatchObject({ level: 50, jobId: broken, err: expect.stringMatching(/Bad Gateway/) });
    expect(h.logs.find(/capacity given back/)).toMatchObject({ jobId: done, spec: name, why: "job completed on GitHub; its webhook was lost" });
  });

  test("a slot whose job record is gone is given back; its spec is reported with the slot's cap", async () => {
    const h = createHarness();
    await h.deps.store.takeSlot(key, 3, { jobId: newJobId(), org: ORG, name });

    const [summary] = await reconcileWith(h, {}, [capacity]);

    expect(summary!.counts).toMatchObject({ specs: 1, released: 1, live: 0, waiting: 0, asked: 0 });
    expect(summary!.details).toEqual([`${name}: live=0 cap=3 waiting=0`]);
    expect(h.logs.find(/capacity given back/)).toMatchObject({ why: "job record gone" });
  });

  test("the spec's current cap is reported (it may have changed since its slots were taken)", async () => {
    const h = createHarness();
    const jobId = newJobId();
    await h.deps.store.claim(newJob(jobId));
    await h.deps.store.takeSlot(key, 5, { jobId, org: ORG, name });
    await h.deps.store.markLaunched(jobId, 1, { runnerId: 1, runnerName: `kumo-${jobId}-1-aaaaaa`, execution: "e" });

    const [summary] = await reconcileWith(h, {}, [capacity]);

    expect(summary!.details).toEqual([`${name}: live=1 cap=2 waiting=0`]);
  });

  test("a pass out of time checks no slot", async () => {
    const h = createHarness();
    await h.deps.store.takeSlot(key, 3, { jobId: newJobId(), org: ORG, name });
    const [summary] = await reconcileWith(h, { budgetMs: -1 }, [capacity]);
    expect(summary!.counts).toMatchObject({ specs: 0, released: 0 });
    expect(await h.deps.store.listSlots(key)).toHaveLength(1);
  });
});
