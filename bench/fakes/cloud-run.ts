import { FakeServer, type Answer } from "./fake-server.js";
import { decodeJitConfig, jobIdOfRunnerName } from "./github.js";

const JIT_CONFIG_ENV = "ACTIONS_RUNNER_INPUT_JITCONFIG";

export interface Execution {
  name: string;
  job: string;
  jitConfig: string | undefined;
  runnerId: number | undefined;
  jobId: number | undefined;
}

type RunJobBody = { overrides?: { containerOverrides?: Array<{ env?: Array<{ name: string; value?: string }> }>; taskCount?: number } };

/**
 * The Cloud Run Admin API v2 in REST mode (`@google-cloud/run` with
 * `fallback: true`): `POST /v2/{job}:run` answers an Operation whose metadata
 * is the Execution. Each execution is one runner container; the JIT config it
 * carries says which registration, hence which job, it serves.
 */
export class FakeCloudRun extends FakeServer {
  readonly executions: Execution[] = [];
  private nextExecution = 1;

  constructor() {
    super((method, path, body) => this.answer(method, path, body));
  }

  override reset(): void {
    super.reset();
    this.executions.length = 0;
  }

  private answer(method: string, rawPath: string, body: Buffer): Answer {
    const path = decodeURIComponent(rawPath.split("?")[0] ?? "");
    const m = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/jobs\/[^/:]+):run$/.exec(path);
    if (method !== "POST" || !m) return { endpoint: `other ${method} ${path}`, status: 404, body: { error: { code: 404, message: "Not Found (bench fake)", status: "NOT_FOUND" } } };
    const job = m[1]!;
    const request = JSON.parse(body.toString("utf8") || "{}") as RunJobBody;
    const jitConfig = request.overrides?.containerOverrides?.[0]?.env?.find((e) => e.name === JIT_CONFIG_ENV)?.value;
    const registration = jitConfig ? decodeJitConfig(jitConfig) : undefined;
    const jobId = registration ? jobIdOfRunnerName(registration.name) : undefined;
    const name = `${job}/executions/${job.split("/").pop()}-${String(this.nextExecution++).padStart(6, "0")}`;
    this.executions.push({ name, job, jitConfig, runnerId: registration?.runnerId, jobId });
    return {
      endpoint: "runJob",
      status: 200,
      ...(jobId !== undefined ? { jobId } : {}),
      body: {
        name: `${job.split("/jobs/")[0]}/operations/${name.split("/").pop()}`,
        metadata: { "@type": "type.googleapis.com/google.cloud.run.v2.Execution", name },
        done: false,
      },
    };
  }
}
