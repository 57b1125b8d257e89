// The runner's Cloud Run job files and image are deployment artifacts no unit test exercises
// otherwise: these checks pin the properties Kumo relies on (one task, never retried, the JIT
// config only per execution, the runner SA, a pinned runner version).
import { describe, expect, test } from "@jest/globals";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";

const read = (path: string): string => readFileSync(join(process.cwd(), path), "utf8");

// The placeholders deploy/deploy.sh fills; any other one would reach Cloud Run unfilled.
const PLACEHOLDERS = ["${CPU}", "${MEMORY}", "${RUNNER_IMAGE}", "${RUNNER_SA}"];

interface EnvVar {
  name: string;
  value?: string;
}
interface CloudRunJob {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: {
    template: {
      metadata?: { annotations?: Record<string, string> };
      spec: {
        taskCount: number;
        parallelism: number;
        template: {
          spec: {
            maxRetries: number;
            timeoutSeconds: number;
            serviceAccountName: string;
            containers: Array<{
              image: string;
              env?: EnvVar[];
              resources?: { limits?: Record<string, string> };
            }>;
          };
        };
      };
    };
  };
}

/** The exact x.y.z tag of the actions-runner base image, or null when FROM is not pinned so. */
function runnerBaseVersion(dockerfile: string): string | null {
  const from = dockerfile
    .split("\n")
    .map((line) => line.trim())
    .find((line) => /^FROM\s/i.test(line));
  const match = from?.match(
    /^FROM\s+ghcr\.io\/actions\/actions-runner:(\d+\.\d+\.\d+)(@sha256:[0-9a-f]{64})?(\s+AS\s+\S+)?$/i,
  );
  return match?.[1] ?? null;
}

describe.each([
  ["runner/job.yaml", "gha-runner-small"],
  ["runner/job-large.yaml", "gha-runner-large"],
])("%s", (path, name) => {
  const text = read(path);
  const job = parse(text) as CloudRunJob;
  const execution = job.spec.template;
  const task = execution.spec.template.spec;

  test("is a Cloud Run v1 Job with its name", () => {
    expect(job.apiVersion).toBe("run.googleapis.com/v1");
    expect(job.kind).toBe("Job");
    expect(job.metadata.name).toBe(name);
  });

  test("runs one task that is never retried (a JIT config is single-use)", () => {
    expect(execution.spec.taskCount).toBe(1);
    expect(execution.spec.parallelism).toBe(1);
    expect(task.maxRetries).toBe(0);
  });

  test("sets a task timeout longer than the 10 min default and within 168 h", () => {
    expect(Number.isInteger(task.timeoutSeconds)).toBe(true);
    expect(task.timeoutSeconds).toBeGreaterThan(600);
    expect(task.timeoutSeconds).toBeLessThanOrEqual(168 * 3600);
  });

  test("runs as the runner service account, one container of the runner image", () => {
    expect(task.serviceAccountName).toBe("${RUNNER_SA}");
    expect(task.containers).toHaveLength(1);
    expect(task.containers[0]?.image).toBe("${RUNNER_IMAGE}");
    expect(task.containers[0]?.resources?.limits).toEqual({ cpu: "${CPU}", memory: "${MEMORY}" });
  });

  test("uses the gen2 execution environment", () => {
    expect(execution.metadata?.annotations?.["run.googleapis.com/execution-environment"]).toBe("gen2");
  });

  test("makes a deprecated runner fail the execution", () => {
    const env = task.containers[0]?.env ?? [];
    const deprecated = env.filter((v) => v.name === "ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE");
    expect(deprecated).toEqual([{ name: "ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE", value: "1" }]);
  });

  test("never holds the JIT config: it is given per execution", () => {
    expect(text).not.toContain("ACTIONS_RUNNER_INPUT_JITCONFIG");
    expect(text).not.toMatch(/JITCONFIG/i);
  });

  test("uses only placeholders deploy/deploy.sh fills", () => {
    const used = [...new Set(text.match(/\$\{[A-Za-z_]+\}/g) ?? [])].sort();
    expect(used).toEqual([...PLACEHOLDERS].sort());
    const deploy = read("deploy/deploy.sh");
    for (const placeholder of PLACEHOLDERS) {
      expect(deploy).toContain(`[{]${placeholder.slice(2, -1)}[}]`);
    }
  });
});

describe("runner/Dockerfile", () => {
  const dockerfile = read("runner/Dockerfile");

  test("builds on the actions-runner image pinned to an exact x.y.z version", () => {
    expect(runnerBaseVersion(dockerfile)).toMatch(/^\d+\.\d+\.\d+$/);
  });

  test("the version check rejects floating tags", () => {
    expect(runnerBaseVersion("FROM ghcr.io/actions/actions-runner:latest\n")).toBeNull();
    expect(runnerBaseVersion("FROM ghcr.io/actions/actions-runner:2.330\n")).toBeNull();
    expect(runnerBaseVersion("FROM ghcr.io/actions/actions-runner\n")).toBeNull();
    expect(runnerBaseVersion("FROM ubuntu:24.04\n")).toBeNull();
    expect(runnerBaseVersion("FROM ghcr.io/actions/actions-runner:2.330.0\n")).toBe("2.330.0");
  });

  test("starts the runner directly, without a registration step or a baked-in JIT config", () => {
    expect(dockerfile).not.toContain("config.sh");
    expect(dockerfile).not.toMatch(/JITCONFIG/i);
    expect(dockerfile).toMatch(/^CMD \["\.\/run\.sh"\]$/m);
    expect(dockerfile).toMatch(/^WORKDIR \/home\/runner$/m);
  });

  test("ends as the unprivileged runner user", () => {
    const users = dockerfile.match(/^USER\s+(\S+)$/gm) ?? [];
    expect(users.at(-1)).toBe("USER runner");
  });
});
