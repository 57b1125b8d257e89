import { describe, expect, test } from "@jest/globals";
import type { Octokit } from "../../app/github/octokit.js";
import { SettingsLoader } from "../../app/settings/load.js";
import { INSTALLATION_ID, ORG } from "../helpers/fixtures.js";
import { mockGitHub } from "../helpers/github.js";
import { createHarness, trackMocks, useNock } from "../helpers/harness.js";

useNock();

async function load(yaml: string | null) {
  const h = createHarness();
  track(mockGitHub().canGetToken().hasSettings(yaml));
  const octokit = (await h.probot.auth(INSTALLATION_ID)) as Octokit;
  return new SettingsLoader(60_000).get(octokit, INSTALLATION_ID, ORG);
}
const track = trackMocks();

describe("settings are read from the org's .github repository only", () => {
  test("_extends is refused, and the file it names is never read", async () => {
    // No interceptor for octo-org/app: reading it would fail the test (net connect is disabled).
    expect(await load("_extends: app\nrunners: []\n")).toEqual({
      ok: false,
      errors: [`_extends: not supported; Kumo reads its settings only from ${ORG}/.github/.github/kumo.yml`],
      labels: [],
      explain: true,
    });
    expect(await load("_extends: other-owner/repo:.github/kumo.yml\n")).toMatchObject({ ok: false, errors: [expect.stringMatching(/^_extends: not supported/)] });
  });

  test("no file: no runner specs; invalid YAML: a settings error, not an outage", async () => {
    expect(await load(null)).toEqual({ ok: true, settings: { runners: [], repositories: {}, explain: true } });
    expect(await load("runners: [unclosed\n")).toMatchObject({ ok: false, errors: [expect.stringMatching(/^\(file\): invalid YAML: /)] });
  });

  test("a valid file", async () => {
    expect(await load("runners:\n  - labels: [kumo]\n    job: j\n")).toEqual({
      ok: true,
      settings: { runners: [{ labels: ["kumo"], group: "Default", backend: "cloud-run", job: "j" }], repositories: {}, explain: true },
    });
  });
});
