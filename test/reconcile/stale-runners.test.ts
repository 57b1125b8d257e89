import { describe, expect, test } from "@jest/globals";
import nock from "nock";
import { staleRunners } from "../../app/reconcile/stale-runners.js";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { INSTALLATION_ID, ORG, recordedJob as newJob, REPO, SETTINGS_YAML, SMALL_TARGET } from "../helpers/fixtures.js";
import { GITHUB, mockGitHub } from "../helpers/github.js";
import { createHarness, reconcileWith, trackMocks, useNock } from "../helpers/harness.js";

useNock();

const SMALL_JOB = SMALL_TARGET.job;
let nextJobId = 2_200_000;
const newJobId = () => nextJobId++;
const GRACE = 2 * 60_000;
/** GitHub for one org with these Kumo runners; settings read once, at the first surplus runner (no warm pool). */
const orgWithRunners = (runners: Array<{ id: number; name: string }>) =>
  mockGitHub().canGetToken().hasInstallations([{ id: INSTALLATION_ID, login: ORG }]).hasSettings(SETTINGS_YAML).hasRunners(runners);

describe("reconcile: stale runners", () => {
  const track = trackMocks();

  test("the grace is measured from the record's last change: surplus at exactly the grace, young a millisecond before", async () => {
    const h = createHarness();
    const [settled, young] = [newJobId(), newJobId()];
    const changedAt = new Date(Date.now() - 60_000);
    for (const id of [settled, young]) {
      await h.deps.store.claim(newJob(id), changedAt);
      // The job ran on another runner: this one is surplus once settled.
      await h.deps.store.markLaunched(id, 1, { runnerId: 1, runnerName: `kumo-${id}-1-000000`, execution: `${SMALL_JOB}/executions/e-${id}` }, changedAt);
    }
    const base = { installationId: INSTALLATION_ID, org: ORG, repo: `${ORG}/${REPO}`, runId: 1, runAttempt: 1, labels: ["kumo", "small"] };
    await h.deps.store.recordProgress({ ...base, jobId: settled, status: "completed", runnerName: "other" }, changedAt);
    await h.deps.store.recordProgress({ ...base, jobId: young, status: "completed", runnerName: "other" }, new Date(changedAt.getTime() + 1));
    const gh = track(
      orgWithRunners([
        { id: 91, name: `kumo-${settled}-1-000000` },
        { id: 92, name: `kumo-${young}-1-000000` },
      ])
        .deletesRunner(91),
    );
    const cr = track(mockCloudRun().cancelsExecution());

    const [summary] = await reconcileWith(h, { runnerGraceMs: GRACE }, [staleRunners], new Date(changedAt.getTime() + GRACE));

    expect(summary!.counts).toEqual({ runners: 2, needed: 0, busy: 0, pooled: 0, deleted: 1, young: 1, errors: 0 });
    expect(gh.deletedRunners).toEqual([91]);
    expect(cr.cancelled).toEqual([`${SMALL_JOB}/executions/e-${settled}`]);
    expect(h.logs.find(/runner retired/)).toMatchObject({ org: ORG, jobId: settled, runnerName: `kumo-${settled}-1-000000`, why: "no queued job needs it" });
  });

  test("a launched job's runner of an earlier attempt is surplus; its record's execution (the new runner's) is not cancelled", async () => {
    const h = createHarness();
    const jobId = newJobId();
    await h.deps.store.claim(newJob(jobId), new Date(Date.now() - 30 * 60_000));
    await h.deps.store.markLaunched(jobId, 1, { runnerId: 2, runnerName: `kumo-${jobId}-2-bbbbbb`, execution: `${SMALL_JOB}/executions/new` }, new Date(Date.now() - 30 * 60_000));
    const gh = track(
      orgWithRunners([
        { id: 1, name: `kumo-${jobId}-1-aaaaaa` },
        { id: 2, name: `kumo-${jobId}-2-bbbbbb` },
      ])
        .deletesRunner(1),
    );
    // No Cloud Run interceptor: a cancel would be an error.

    const [summary] = await reconcileWith(h, {}, [staleRunners]);

    expect(summary!.counts).toEqual({ runners: 2, needed: 1, busy: 0, pooled: 0, deleted: 1, young: 0, errors: 0 });
    expect(gh.deletedRunners).toEqual([1]);
  });

  test("a runner that took a job meanwhile (GitHub refuses the delete) counts as busy; a failed delete is an error, the next runner still goes", async () => {
    const h = createHarness();
    const [a, b, c] = [newJobId(), newJobId(), newJobId()];
    const gh = track(
      orgWithRunners([
        { id: 1, name: `kumo-${a}-1-aaaaaa` },
        { id: 2, name: `kumo-${b}-1-bbbbbb` },
        { id: 3, name: `kumo-${c}-1-cccccc` },
      ])
        .failsToDeleteBusyRunner(1)
        .deletesRunner(3),
    );
    track(nock(GITHUB).delete(`/orgs/${ORG}/actions/runners/2`).reply(500, { message: "Server Error" }));

    const [summary] = await reconcileWith(h, {}, [staleRunners]);

    expect(summary!.counts).toEqual({ runners: 3, needed: 0, busy: 1, pooled: 0, deleted: 1, young: 0, errors: 1 });
    expect(gh.deletedRunners).toEqual([3]);
    expect(h.logs.find(/stale runner not removed/)).toMatchObject({ level: 50, jobId: b, runnerName: `kumo-${b}-1-bbbbbb`, err: expect.stringMatching(/^delete runner: HTTP 500/) });
  });

  test("an organization whose runners cannot be listed is an error; the next organization is still checked", async () => {
    const h = createHarness();
    const jobId = newJobId();
    nock(GITHUB).post(/\/app\/installations\/\d+\/access_tokens/).times(2).optionally().reply(201, { token: "ghs_x", expires_at: new Date(Date.now() + 3_600_000).toISOString() });
    track(mockGitHub().hasInstallations([{ id: 1, login: "broken-org" }, { id: INSTALLATION_ID, login: ORG }]).hasSettings(SETTINGS_YAML).hasRunners([{ id: 5, name: `kumo-${jobId}-1-aaaaaa` }]).deletesRunner(5));
    track(nock(GITHUB).get("/orgs/broken-org/actions/runners").query(true).reply(403, { message: "Resource not accessible by integration" }));

    const [summary] = await reconcileWith(h, {}, [staleRunners]);

    expect(summary!.counts).toEqual({ runners: 1, needed: 0, busy: 0, pooled: 0, deleted: 1, young: 0, errors: 1 });
    expect(h.logs.find(/runners of this org not checked/)).toMatchObject({ level: 50, org: "broken-org", err: expect.stringMatching(/^list runners: HTTP 403/) });
  });

  test("a pass out of time checks no organization", async () => {
    const h = createHarness();
    track(mockGitHub().hasInstallations([{ id: INSTALLATION_ID, login: ORG }]));
    const [summary] = await reconcileWith(h, { budgetMs: -1 }, [staleRunners]);
    expect(summary!.counts).toEqual({ runners: 0, needed: 0, busy: 0, pooled: 0, deleted: 0, young: 0, errors: 0 });
  });
});
