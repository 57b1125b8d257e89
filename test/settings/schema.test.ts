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
    const spec = matchRunnerSpec(s, repo, labels);
    expect(spec?.backend === "cloud-run" ? spec.job : spec).toBe(job);
  });
});

describe("an invalid file still tells which labels it meant to serve", () => {
  test("labels of every spec, org-wide and per repository, and explain", () => {
    const parsed = parseSettings({ explain: false, runners: [{ labels: ["kumo", 3], job: "Bad_Job" }], repositories: { app: { runners: [{ labels: ["gpu"] }] } } });
    expect(parsed).toMatchObject({ ok: false, labels: ["kumo", "gpu"], explain: false });
  });
});

describe("settings as Kumo uses them", () => {
  const jobOf = (spec: ReturnType<typeof matchRunnerSpec>) => (spec?.backend === "cloud-run" ? spec.job : spec);

  test("repository names are case-insensitive: keys are lowercased, and a job's repository matches whatever its case", () => {
    const parsed = parseSettings({
      runners: [{ labels: ["kumo"], job: "org-wide" }],
      repositories: { "My-App": { runners: [{ labels: ["kumo"], job: "mine" }] }, other: { runners: [] } },
    });
    if (!parsed.ok) throw new Error(parsed.errors.join("; "));
    expect(Object.keys(parsed.settings.repositories).sort()).toEqual(["my-app", "other"]);
    expect(jobOf(matchRunnerSpec(parsed.settings, "my-app", ["kumo"]))).toBe("mine");
    expect(jobOf(matchRunnerSpec(parsed.settings, "MY-APP", ["kumo"]))).toBe("mine");
    expect(jobOf(matchRunnerSpec(parsed.settings, "other", ["kumo"]))).toBe("org-wide");
  });

  test("labels and group names are trimmed; the group defaults to Default", () => {
    const parsed = parseSettings({ runners: [{ labels: [" kumo ", "small"], group: " cloudrun ", job: "j" }, { labels: ["x"], job: "k" }] });
    expect(parsed).toMatchObject({ ok: true, settings: { runners: [{ labels: ["kumo", "small"], group: "cloudrun" }, { labels: ["x"], group: "Default" }] } });
  });

  test.each([
    ["an empty label", { labels: ["kumo", " "], job: "j" }, /^runners\.0\.labels\.1: /],
    ["a label of 257 characters", { labels: ["k".repeat(257)], job: "j" }, /^runners\.0\.labels\.0: /],
    ["101 labels", { labels: Array.from({ length: 101 }, (_, i) => `l${i}`), job: "j" }, /^runners\.0\.labels: /],
    ["an empty group", { labels: ["kumo"], group: "  ", job: "j" }, /^runners\.0\.group: /],
    ["a fractional maxRunners", { labels: ["kumo"], job: "j", maxRunners: 1.5 }, /^runners\.0\.maxRunners: /],
    ["a negative maxRunners", { labels: ["kumo"], job: "j", maxRunners: -1 }, /^runners\.0\.maxRunners: /],
    ["a job name with capitals", { labels: ["kumo"], job: "Runner" }, /^runners\.0\.job: /],
    ["a job name ending in a dash", { labels: ["kumo"], job: "runner-" }, /^runners\.0\.job: /],
    ["a job name of 64 characters", { labels: ["kumo"], job: `r${"a".repeat(63)}` }, /^runners\.0\.job: /],
    ["a resource name with a space", { labels: ["kumo"], job: "projects/p p/locations/r/jobs/j" }, /^runners\.0\.job: /],
  ])("refused: %s", (_name, spec, error) => {
    const parsed = parseSettings({ runners: [spec] });
    expect(parsed.ok).toBe(false);
    expect(parsed.ok ? [] : parsed.errors).toEqual(expect.arrayContaining([expect.stringMatching(error)]));
  });

  test.each([
    ["a label of 256 characters", { labels: ["k".repeat(256)], job: "j" }],
    ["100 labels", { labels: Array.from({ length: 100 }, (_, i) => `l${i}`), job: "j" }],
    ["a job name of 63 characters", { labels: ["kumo"], job: `r${"a".repeat(62)}` }],
    ["a one-letter job name", { labels: ["kumo"], job: "r" }],
    ["maxRunners 1", { labels: ["kumo"], job: "j", maxRunners: 1 }],
  ])("accepted: %s", (_name, spec) => {
    expect(parseSettings({ runners: [spec] }).ok).toBe(true);
  });

  test("explain can be turned off, and must be a boolean", () => {
    expect(parseSettings({ explain: false })).toMatchObject({ ok: true, settings: { explain: false } });
    expect(parseSettings({ explain: "no" })).toMatchObject({ ok: false, errors: [expect.stringMatching(/^explain: /)], explain: true });
  });

  test("an unreadable file: whatever labels can be read, and explaining stays on unless turned off", () => {
    expect(parseSettings({ runners: "kumo", explain: 1 })).toMatchObject({ ok: false, labels: [], explain: true });
    expect(parseSettings({ runners: [null, { labels: "kumo" }, { labels: ["a", 1, "b"] }], repositories: "app" })).toMatchObject({ ok: false, labels: ["a", "b"] });
    expect(parseSettings({ runners: [{ labels: ["a"], job: 1 }], repositories: { app: null, lib: { runners: [{ labels: ["c"], job: 2 }] } } })).toMatchObject({
      ok: false,
      labels: ["a", "c"],
    });
    expect(parseSettings([{ labels: ["a"] }])).toMatchObject({ ok: false, labels: [], explain: true });
    expect(parseSettings({ runners: [{ labels: ["a"] }], repositories: null })).toMatchObject({ ok: false, labels: ["a"] });
  });
});
