import { describe, expect, test } from "@jest/globals";
import { launchTarget, templateResourceName } from "../../app/launcher/launcher.js";
import { parseSettings, type RunnerSpec } from "../../app/settings/schema.js";

const errorsOf = (raw: unknown) => {
  const parsed = parseSettings(raw);
  return parsed.ok ? [] : parsed.errors;
};

describe("a runner spec chooses its backend", () => {
  test("cloud-run is the default and needs a job; compute-engine needs a template and zones", () => {
    const parsed = parseSettings({
      runners: [
        { labels: ["kumo"], job: "gha-runner" },
        { labels: ["kumo-docker"], backend: "compute-engine", instanceTemplate: "kumo-runner-docker", zones: ["us-central1-a", "us-central1-b"], maxRunners: 4 },
      ],
    });
    expect(parsed).toEqual({
      ok: true,
      settings: {
        runners: [
          { labels: ["kumo"], group: "Default", backend: "cloud-run", job: "gha-runner" },
          { labels: ["kumo-docker"], group: "Default", backend: "compute-engine", instanceTemplate: "kumo-runner-docker", zones: ["us-central1-a", "us-central1-b"], maxRunners: 4 },
        ],
        repositories: {},
        explain: true,
      },
    });
  });

  test.each([
    [{ labels: ["a"] }, "runners.0.job: required with backend cloud-run"],
    [{ labels: ["a"], job: "j", zones: ["us-central1-a"] }, "runners.0.zones: not used with backend cloud-run"],
    [{ labels: ["a"], job: "j", instanceTemplate: "t" }, "runners.0.instanceTemplate: not used with backend cloud-run"],
    [{ labels: ["a"], job: "j", maxRunMinutes: 60 }, "runners.0.maxRunMinutes: not used with backend cloud-run"],
    [{ labels: ["a"], backend: "compute-engine", zones: ["us-central1-a"] }, "runners.0.instanceTemplate: required with backend compute-engine"],
    [{ labels: ["a"], backend: "compute-engine", instanceTemplate: "t" }, "runners.0.zones: required with backend compute-engine"],
    [{ labels: ["a"], backend: "compute-engine", instanceTemplate: "t", zones: ["us-central1-a"], job: "j" }, "runners.0.job: not used with backend compute-engine"],
    [{ labels: ["a"], backend: "compute-engine", instanceTemplate: "t", zones: [] }, "runners.0.zones: "],
    [{ labels: ["a"], backend: "compute-engine", instanceTemplate: "t", zones: ["us-central1"] }, "runners.0.zones.0: must be a zone such as us-central1-a"],
    [{ labels: ["a"], backend: "compute-engine", instanceTemplate: "t", zones: ["us-central1-a", "us-central1-a"] }, "runners.0.zones: lists a zone twice"],
    [{ labels: ["a"], backend: "compute-engine", instanceTemplate: "Bad_Name", zones: ["us-central1-a"] }, "runners.0.instanceTemplate: must be an instance template name"],
    [{ labels: ["a"], backend: "compute-engine", instanceTemplate: "t", zones: ["us-central1-a"], maxRunMinutes: 5 }, "runners.0.maxRunMinutes: "],
    [{ labels: ["a"], backend: "vm", job: "j" }, "runners.0.backend: "],
  ])("%j is rejected: %s", (spec, message) => {
    expect(errorsOf({ runners: [spec] })).toEqual([expect.stringContaining(message)]);
  });

  test("full template names: global and regional", () => {
    for (const instanceTemplate of ["projects/p/global/instanceTemplates/t", "projects/p/regions/europe-west1/instanceTemplates/t"]) {
      expect(errorsOf({ runners: [{ labels: ["a"], backend: "compute-engine", instanceTemplate, zones: ["europe-west1-b"] }] })).toEqual([]);
    }
  });
});

describe("launch targets", () => {
  const vmSpec: RunnerSpec = { labels: ["d"], group: "Default", backend: "compute-engine", instanceTemplate: "tpl", zones: ["us-central1-a"] };

  test("a VM spec: the template's full name, its zones, and its run limit when it sets one (else the template's)", () => {
    expect(launchTarget(vmSpec, { project: "p" })).toEqual({ job: "projects/p/global/instanceTemplates/tpl", backend: "compute-engine", zones: ["us-central1-a"] });
    expect(launchTarget({ ...vmSpec, maxRunMinutes: 90 }, { project: "p" }).maxRunMinutes).toBe(90);
  });

  test("a Cloud Run spec: only the job, as before", () => {
    expect(launchTarget({ labels: ["k"], group: "Default", backend: "cloud-run", job: "j" }, { project: "p", region: "r" })).toEqual({ job: "projects/p/locations/r/jobs/j" });
  });

  test("a short template name without a project is a clear error; a full one needs none", () => {
    expect(() => launchTarget(vmSpec, {})).toThrow('instance template "tpl" is a short name: set GOOGLE_CLOUD_PROJECT');
    expect(templateResourceName("projects/q/regions/r/instanceTemplates/t", {})).toBe("projects/q/regions/r/instanceTemplates/t");
  });
});
