import { randomUUID } from "node:crypto";
import { describe, expect, test } from "@jest/globals";
import { compactError, createLogger, wantsJson } from "../app/logging.js";
import { mockCloudRun } from "./helpers/cloud-run.js";
import { ORG, REPO, SETTINGS_YAML, workflowJobPayload } from "./helpers/fixtures.js";
import { jitConfigFor, mockGitHub } from "./helpers/github.js";
import { createHarness, LogCapture, trackMocks, useNock } from "./helpers/harness.js";

useNock();

describe("logs for Cloud Logging", () => {
  const track = trackMocks();

  test("JSON on Cloud Run (service, job, function) or when asked; readable in a terminal", () => {
    expect(wantsJson({})).toBe(false);
    expect(wantsJson({ K_SERVICE: "kumo" })).toBe(true);
    expect(wantsJson({ CLOUD_RUN_JOB: "kumo-reconcile" })).toBe(true);
    expect(wantsJson({ FUNCTION_TARGET: "kumo" })).toBe(true);
    expect(wantsJson({ K_SERVICE: "kumo", LOG_FORMAT: "pretty" })).toBe(false);
    expect(wantsJson({ LOG_FORMAT: "json" })).toBe(true);
  });

  test("every level maps to a Cloud Logging severity, with `message`", () => {
    const capture = new LogCapture();
    const log = createLogger({ LOG_FORMAT: "json", LOG_LEVEL: "debug", K_SERVICE: "kumo", K_REVISION: "kumo-00007" }, capture.stream);
    log.debug("d");
    log.info({ jobId: 1 }, "i");
    log.warn("w");
    log.error("e");
    expect(capture.entries.map((e) => [e.severity, e.message])).toEqual([["DEBUG", "d"], ["INFO", "i"], ["WARNING", "w"], ["ERROR", "e"]]);
    expect(capture.entries[1]).toMatchObject({ jobId: 1, serviceContext: { service: "kumo", version: "kumo-00007" } });
    expect(capture.entries[0]).not.toHaveProperty("msg");
  });

  test("an error keeps its kind, message and status, and its stack for Error Reporting, but none of its other properties", () => {
    const capture = new LogCapture();
    const log = createLogger({ LOG_FORMAT: "json" }, capture.stream);
    const error = Object.assign(new Error("boom"), { status: 502, event: { payload: { secret: "x".repeat(10_000) } }, request: { headers: { authorization: "token ghs_x" } } });
    log.error({ err: error }, "failed");
    const [line] = capture.lines;
    expect(line!.length).toBeLessThan(2048);
    expect(line).not.toContain("xxxx");
    expect(line).not.toContain("ghs_x");
    expect(JSON.parse(line!)).toMatchObject({ severity: "ERROR", err: { type: "Error", message: "boom", status: 502 }, stack_trace: expect.stringMatching(/^Error: boom\n {4}at /) });
    expect(compactError("not an error", true)).toBe("not an error");
  });

  test("a failed launch: ERROR lines under 2 KB with job, run, repository, delivery, attempt and reason, and never the payload", async () => {
    const h = createHarness({ cloudLogging: true });
    const gh = track(mockGitHub().canGetToken().hasSettings(SETTINGS_YAML).hasRunnerGroups(REPO, [{ id: 7, name: "cloudrun" }]).generatesJitConfig().deletesRunner(1000).createsCheckRun(`${ORG}/${REPO}`));
    track(mockCloudRun().failsRunJob(403, "PERMISSION_DENIED", "caller lacks run.jobs.runWithOverrides"));
    const payload = workflowJobPayload("queued", { id: 990_001, labels: ["kumo", "small"] });
    const marker = `payload-marker-${randomUUID()}`;
    payload.repository.description = marker;

    await expect(h.deliver("workflow_job", payload, "delivery-990001")).rejects.toThrow(/PERMISSION_DENIED/);

    const errors = h.logs.entries.filter((e) => e.severity === "ERROR");
    // Kumo's own line, and Probot's for the failed delivery.
    expect(errors.length).toBeGreaterThanOrEqual(2);
    for (const line of h.logs.lines) {
      expect(line.length).toBeLessThan(2048);
      expect(line).not.toContain(marker);
      expect(line).not.toContain(jitConfigFor(gh.jitRequests[0]!.name));
      expect(line).not.toContain("ghs_test_installation_token");
      expect(line).not.toContain("BEGIN PRIVATE KEY");
    }
    expect(h.logs.find(/runner not launched/)).toMatchObject({
      severity: "ERROR",
      jobId: 990_001,
      runId: payload.workflow_job.run_id,
      repo: `${ORG}/${REPO}`,
      deliveryId: "delivery-990001",
      attempt: 1,
      state: "failed",
      reason: expect.stringMatching(/PERMISSION_DENIED: caller lacks run.jobs.runWithOverrides/),
    });
  });
});
