import { describe, expect, test } from "@jest/globals";
import nock from "nock";
import { reconcile } from "../../app/reconcile/reconcile.js";
import { reconcileContext } from "../../app/reconcile/from-probot.js";
import { unfinishedLaunches } from "../../app/reconcile/unfinished-launches.js";
import type { NewJob } from "../../app/store/job-store.js";
import { INSTALLATION_ID, ORG, REPO } from "../helpers/fixtures.js";
import { GITHUB, mockGitHub } from "../helpers/github.js";
import { createHarness, reconcileWith, trackMocks, useNock } from "../helpers/harness.js";

useNock();

const FULL_REPO = `${ORG}/${REPO}`;
const SMALL = ["kumo", "small"];
const TARGET = { labels: SMALL, group: "cloudrun", groupId: 7, job: "projects/kumo-test/locations/us-central1/jobs/gha-runner-small" };
let nextJobId = 2_100_000;
const newJobId = () => nextJobId++;
const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);
const newJob = (jobId: number): NewJob => ({ jobId, runId: 1, runAttempt: 1, installationId: INSTALLATION_ID, org: ORG, repo: FULL_REPO, labels: SMALL, target: TARGET });

describe("a reconcile pass", () => {
  const track = trackMocks();

  test("a step that fails is reported with its reason, and the steps after it still run", async () => {
    const h = createHarness();
    // Listing installations fails: stale runners cannot run at all.
    track(nock(GITHUB).get("/app/installations").query(true).reply(500, { message: "Server Error" }));
    track(mockGitHub().hasDeliveries([]));

    const summaries = await reconcileWith(h);

    const stale = summaries.find((s) => s.step === "stale runners")!;
    expect(stale).toEqual({ step: "stale runners", counts: { errors: 1 }, failed: expect.stringMatching(/Server Error/) });
    expect(summaries.at(-1)).toEqual({ step: "lost webhooks", counts: { lost: 0, redelivered: 0, givenUp: 0, errors: 0 } });
    // Steps that need the installations fail too; those that do not are unaffected.
    expect(summaries.filter((s) => s.failed).map((s) => s.step)).toContain("stale runners");
    expect(summaries[0]).toMatchObject({ step: "capacity", counts: { errors: 0 } });
    const failures = h.logs.entries.filter((e) => /reconcile step failed/.test(e.msg));
    expect(failures).toContainEqual(expect.objectContaining({ level: 50, step: "stale runners", err: expect.stringMatching(/Server Error/) }));
  });

  test("installations: organizations only, listed once per pass", async () => {
    const h = createHarness();
    track(mockGitHub().hasInstallations([{ id: 1, login: "octo-org" }, { id: 2, login: "someone", type: "User" }, { id: 3, login: "acme" }]));
    const ctx = await reconcileContext(h.probot, h.deps, h.probot.log);
    expect(await ctx.installations()).toEqual([{ id: 1, org: "octo-org" }, { id: 3, org: "acme" }]);
    // A second call makes no request (the interceptor answers once).
    expect(await ctx.installations()).toEqual([{ id: 1, org: "octo-org" }, { id: 3, org: "acme" }]);
    expect(ctx.options).toMatchObject({ launchGraceMs: 300_000, runnerGraceMs: 120_000, maxAttempts: 3, batch: 200, maxRedeliveries: 3, firstLookbackMs: 3_600_000, budgetMs: 240_000 });
    expect((await reconcileContext(h.probot, h.deps, h.probot.log, { maxAttempts: 5 })).options.maxAttempts).toBe(5);
  });

  test("an installation's octokit is made once per pass", async () => {
    const h = createHarness();
    const ctx = await reconcileContext(h.probot, h.deps, h.probot.log);
    expect(await ctx.octokitFor(INSTALLATION_ID)).toBe(await ctx.octokitFor(INSTALLATION_ID));
    expect(await ctx.octokitFor(INSTALLATION_ID)).not.toBe(await ctx.octokitFor(INSTALLATION_ID + 1));
  });

  test("records of jobs GitHub no longer has queued are brought up to date: in progress, completed, gone", async () => {
    const h = createHarness();
    const [running, done, gone] = [newJobId(), newJobId(), newJobId()];
    for (const id of [running, done, gone]) {
      await h.deps.store.claim(newJob(id), minutesAgo(5));
      await h.deps.store.markNotLaunched(id, 1, { state: "pending", reason: "HTTP 502" }, minutesAgo(5));
    }
    track(
      mockGitHub()
        .canGetToken()
        .hasJob(FULL_REPO, running, "in_progress", { runner_id: 77, runner_name: "kumo-other", started_at: "2026-12-01T10:00:00Z" })
        .hasJob(FULL_REPO, done, "completed", { conclusion: null, completed_at: "2026-12-01T10:05:00Z" }),
    );
    track(nock(GITHUB).get(`/repos/${FULL_REPO}/actions/jobs/${gone}`).reply(404, { message: "Not Found" }));

    const [summary] = await reconcileWith(h, {}, [unfinishedLaunches]);

    expect(summary!.counts).toMatchObject({ checked: 3, closed: 3, launched: 0, errors: 0 });
    expect(await h.deps.store.get(running)).toMatchObject({ state: "running", assignedRunnerId: 77, assignedRunnerName: "kumo-other", startedAt: new Date("2026-12-01T10:00:00Z") });
    expect(await h.deps.store.get(done)).toMatchObject({ state: "completed", conclusion: "completed", completedAt: new Date("2026-12-01T10:05:00Z") });
    expect(await h.deps.store.get(gone)).toMatchObject({ state: "completed", conclusion: "job not found on GitHub" });
    expect(h.logs.find(/job no longer queued, record closed/)).toMatchObject({ state: "pending" });
  });

  test("a GitHub error while looking at one job is counted; the others are still looked at", async () => {
    const h = createHarness();
    const [broken, fine] = [newJobId(), newJobId()];
    for (const id of [broken, fine]) {
      await h.deps.store.claim(newJob(id), minutesAgo(5));
      await h.deps.store.markNotLaunched(id, 1, { state: "pending", reason: "HTTP 502" }, minutesAgo(5));
    }
    track(mockGitHub().canGetToken().hasJob(FULL_REPO, fine, "completed", { conclusion: "cancelled" }));
    track(nock(GITHUB).get(`/repos/${FULL_REPO}/actions/jobs/${broken}`).reply(502, { message: "Bad Gateway" }));

    const [summary] = await reconcileWith(h, {}, [unfinishedLaunches]);

    expect(summary!.counts).toMatchObject({ checked: 2, closed: 1, errors: 1 });
    expect(h.logs.find(/unfinished launch not repaired/)).toMatchObject({ level: 50, jobId: broken, err: expect.stringMatching(/^get job \d+: HTTP 502/) });
    expect(await h.deps.store.get(broken)).toMatchObject({ state: "pending" });
  });
});

describe("reconcile passes run alone", () => {
  test("reconcile() runs every step in order", async () => {
    const h = createHarness();
    const track = mockGitHub().hasInstallations([]).hasDeliveries([]);
    const ctx = await reconcileContext(h.probot, h.deps, h.probot.log);
    const steps = (await reconcile(ctx)).map((s) => s.step);
    track.done();
    expect(steps).toEqual(expect.arrayContaining(["capacity", "unfinished launches", "launches that never came up", "stale runners", "lost webhooks"]));
    expect(steps[0]).toBe("capacity");
    expect(steps.at(-1)).toBe("lost webhooks");
  });
});
