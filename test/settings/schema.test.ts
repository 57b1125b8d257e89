import { describe, expect, test } from "@jest/globals";
import { parseSettings } from "../../app/settings/schema.js";
import { matchRunnerSpec } from "../../app/labels.js";

describe("settings schema", () => {
  test("defaults: empty file, group Default", () => {
    expect(parseSettings(undefined)).toEqual({ ok: true, settings: { runners: [], repositories: {}, explain: true } });
    const parsed = parseSettings({ runners: [{ labels: ["kumo"], job: "gha-runner" }] });
    expect(parsed.ok && parsed.settings.runners[0]!.group).toBe("Default");
  });

  test("every problem is reported with its path", () => {
    const parsed = parseSettings({
      runners: [{ labels: [], job: "projects/p/jobs/j" }, { labels: ["a"], job: "ok", maxRunners: 0 }],
      repositories: { app: { runners: [{ labels: ["x"] }] } },
      extra: true,
    });
    expect(parsed.ok).toBe(false);
    const errors = parsed.ok ? [] : parsed.errors;
    expect(errors).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^runners\.0\.labels: /),
        expect.stringMatching(/^runners\.0\.job: must be a Cloud Run job name/),
        expect.stringMatching(/^runners\.1\.maxRunners: /),
        expect.stringMatching(/^repositories\.app\.runners\.0\.job: /),
        expect.stringMatching(/^\(file\): Unrecognized key: "extra"/),
      ]),
    );
  });

  test("accepts full Cloud Run resource names", () => {
    expect(parseSettings({ runners: [{ labels: ["a"], job: "projects/my-proj/locations/europe-west1/jobs/runner-x" }] }).ok).toBe(true);
  });
});

describe("label matching", () => {
  const parsed = parseSettings({
    runners: [
      { labels: ["kumo", "small", "linux"], job: "small" },
      { labels: ["kumo", "large"], job: "large" },
    ],
    repositories: { Special: { runners: [{ labels: ["kumo", "small"], job: "special" }] } },
  });
  if (!parsed.ok) throw new Error("fixture");
  const s = parsed.settings;

  test.each([
    [["kumo", "small"], "app", "small"],
    [["kumo"], "app", "small"],
    [["KUMO", "Large"], "app", "large"],
    [["kumo", "small"], "special", "special"],
    [["kumo", "large"], "SPECIAL", "large"],
    [["kumo", "small", "gpu"], "app", undefined],
    [["self-hosted", "kumo"], "app", undefined],
    [["ubuntu-latest"], "app", undefined],
    [[], "app", undefined],
  ])("%j in %s → %s", (labels, repo, job) => {
    expect(matchRunnerSpec(s, repo, labels)?.job).toBe(job);
  });
});

describe("an invalid file still tells which labels it meant to serve", () => {
  test("labels of every spec, org-wide and per repository, and explain", () => {
    const parsed = parseSettings({ explain: false, runners: [{ labels: ["kumo", 3], job: "Bad_Job" }], repositories: { app: { runners: [{ labels: ["gpu"] }] } } });
    expect(parsed).toMatchObject({ ok: false, labels: ["kumo", "gpu"], explain: false });
  });
});
