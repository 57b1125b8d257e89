import { describe, expect, test } from "@jest/globals";
import { readConfig } from "../app/config.js";
import { jobResourceName } from "../app/launcher/launcher.js";
import { googleClientOptions } from "../app/launcher/google-client-options.js";

describe("environment", () => {
  test("defaults", () => {
    expect(readConfig({})).toMatchObject({ runnerPrefix: "kumo", settingsTtlMs: 60_000, launchLeaseMs: 60_000, jitPerMinute: 180 });
  });

  test("a bad value names the variable", () => {
    expect(() => readConfig({ CLOUD_RUN_API_ENDPOINT: "localhost:8080", KUMO_RUNNER_PREFIX: "Bad_Prefix" })).toThrow(
      /CLOUD_RUN_API_ENDPOINT: must be an http\(s\):\/\/host:port URL.*KUMO_RUNNER_PREFIX/,
    );
  });

  test("Google's clients speak REST; CLOUD_RUN_API_ENDPOINT sends it to that port without credentials", () => {
    expect(googleClientOptions(undefined)).toEqual({ fallback: true });
    expect(googleClientOptions("http://127.0.0.1:9911")).toMatchObject({ fallback: true, apiEndpoint: "127.0.0.1", port: 9911, protocol: "http" });
  });

  test("short job names need a project and region", () => {
    expect(jobResourceName("j", { project: "p", region: "r" })).toBe("projects/p/locations/r/jobs/j");
    expect(jobResourceName("projects/a/locations/b/jobs/c", {})).toBe("projects/a/locations/b/jobs/c");
    expect(() => jobResourceName("j", {})).toThrow(/GOOGLE_CLOUD_PROJECT and CLOUD_RUN_REGION/);
  });
});
