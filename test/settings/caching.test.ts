import { describe, expect, test } from "@jest/globals";
import { SettingsLoader } from "../../app/settings/load.js";
import { mockCloudRun } from "../helpers/cloud-run.js";
import { ORG, REPO, SETTINGS_YAML, workflowJobPayload } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { createHarness, trackMocks, useNock } from "../helpers/harness.js";

useNock();

let nextJobId = 1_600_000;
const newJobId = () => nextJobId++;
const queued = (id: number) => workflowJobPayload("queued", { id, labels: ["kumo", "small"] });
const groups = [{ id: 7, name: "cloudrun" }];
const INVALID = "runners:\n  - labels: [kumo, small]\n    job: Not_A_Job\n";

/**
 * Settings and runner groups are cached per installation, valid or not; a read
 * that failed (GitHub down) is not, so the next job tries again instead of
 * failing for the whole TTL.
 */
describe("settings and runner group caches", () => {
  const track = trackMocks();

  test("a failed settings read is not cached: the next job reads them again and launches", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().failsSettings(500));
    const failed = newJobId();
    await expect(h.deliver("workflow_job", queued(failed))).rejects.toThrow(/Server Error/);
    expect(await h.deps.store.get(failed)).toBeUndefined();

    const gh = track(mockGitHub().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    track(mockCloudRun().runsJob());
    const jobId = newJobId();
    await h.deliver("workflow_job", queued(jobId));

    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "launched", runnerName: gh.jitRequests[0]!.name });
  });

  test("a failed runner group read is not cached: the next job reads them again and launches", async () => {
    const h = createHarness();
    track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).failsRunnerGroups(REPO, 502, "Bad Gateway"));
    const failed = newJobId();
    await expect(h.deliver("workflow_job", queued(failed))).rejects.toThrow(/Bad Gateway/);
    expect(await h.deps.store.get(failed)).toBeUndefined();

    // Settings stay cached; only the groups are read again.
    const gh = track(mockGitHub().hasRunnerGroups(REPO, groups).generatesJitConfig());
    track(mockCloudRun().runsJob());
    const jobId = newJobId();
    await h.deliver("workflow_job", queued(jobId));

    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "launched", runnerName: gh.jitRequests[0]!.name, target: { groupId: 7 } });
  });

  test("an invalid settings file is cached like a valid one, and read again after the TTL", async () => {
    let now = 1_000_000;
    const h = createHarness({ deps: { settings: new SettingsLoader(60_000, () => now) } });
    track(mockGitHub().canGetToken().hasSettings(INVALID));
    const first = newJobId();
    const second = newJobId();

    await h.deliver("workflow_job", queued(first));
    now += 59_999;
    // No interceptor: a second read would fail the delivery.
    await h.deliver("workflow_job", queued(second));

    const invalid = h.logs.entries.filter((e) => /invalid octo-org\/.github\/.github\/kumo.yml/.test(e.msg));
    expect(invalid.map((e) => e.jobId)).toEqual([first, second]);
    expect(await h.deps.store.get(second)).toBeUndefined();

    now += 1;
    track(mockGitHub().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, groups).generatesJitConfig());
    track(mockCloudRun().runsJob());
    const fixed = newJobId();
    await h.deliver("workflow_job", queued(fixed));
    expect(await h.deps.store.get(fixed)).toMatchObject({ state: "launched", org: ORG });
  });
});
