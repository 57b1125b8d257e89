import { FakeServer, type Answer } from "./fake-server.js";
import { decodeJitConfig, jobIdOfRunnerName } from "./github.js";

const JIT_CONFIG_ENV = "ACTIONS_RUNNER_INPUT_JITCONFIG";
const EXECUTION_TYPE = "type.googleapis.com/google.cloud.run.v2.Execution";

export interface Execution {
  name: string;
  job: string;
  jitConfig: string | undefined;
  runnerId: number | undefined;
  jobId: number | undefined;
  /** The runner container: running from runJob until it ends or is cancelled. */
  runningCount: number;
  succeededCount: number;
  failedCount: number;
  cancelledCount: number;
  /** Set once the execution has ended (ISO 8601). */
  completionTime: string | undefined;
  /** Cloud Run no longer knows it (GET answers 404). */
  gone: boolean;
}

/** A Cloud Run job as defined (gcloud run jobs replace), and what the caller may do with it. */
export interface RunnerJob {
  image: string;
  /** Not set: Cloud Run's default (3). */
  maxRetries?: number;
  taskCount?: number;
  /** What testIamPermissions answers as granted to the caller. */
  granted?: string[];
}

/** What roles/run.jobsExecutorWithOverrides and roles/run.viewer on the job give. */
export const RUNNER_JOB_PERMISSIONS: readonly string[] = [
  "run.jobs.get",
  "run.jobs.run",
  "run.jobs.runWithOverrides",
  "run.executions.get",
  "run.executions.list",
  "run.executions.cancel",
];

type RunJobBody = { overrides?: { containerOverrides?: Array<{ env?: Array<{ name: string; value?: string }> }>; taskCount?: number } };

function notFound(endpoint: string, what: string): Answer {
  return { endpoint, status: 404, body: { error: { code: 404, message: `${what} not found`, status: "NOT_FOUND" } } };
}

/**
 * The Cloud Run Admin API v2 in REST mode (`@google-cloud/run` with
 * `fallback: true`): `POST /v2/{job}:run` answers an Operation whose metadata
 * is the Execution; `GET /v2/{execution}` answers the Execution;
 * `POST /v2/{execution}:cancel` answers an Operation and cancels it. Jobs
 * defined with defineJob() answer `GET /v2/{job}` and `POST /v2/{job}:testIamPermissions`
 * (runJob does not need them to be defined). Each
 * execution is one runner container; the JIT config it carries says which
 * registration, hence which job, it serves. Anything else answers 404,
 * counted as `other …`.
 */
export class FakeCloudRun extends FakeServer {
  readonly executions: Execution[] = [];
  /** Jobs by resource name (projects/P/locations/R/jobs/J), for getJob and testIamPermissions. */
  readonly jobs = new Map<string, RunnerJob>();
  private nextExecution = 1;

  constructor() {
    super((method, path, body) => this.answer(method, path, body));
  }

  override reset(): void {
    super.reset();
    this.executions.length = 0;
  }

  /** A job exists, with its container image and task settings; granted all RUNNER_JOB_PERMISSIONS unless said otherwise. */
  defineJob(name: string, job: RunnerJob): void {
    this.jobs.set(name, job);
  }

  execution(name: string): Execution | undefined {
    return this.executions.find((e) => e.name === name);
  }

  /** Executions carrying a runner of this job. */
  executionsOf(jobId: number): Execution[] {
    return this.executions.filter((e) => e.jobId === jobId);
  }

  /** The runner container ended (it ran its one job, or failed to start). */
  finish(name: string, outcome: "succeeded" | "failed" = "succeeded"): void {
    const execution = this.mustFind(name);
    execution.runningCount = 0;
    if (outcome === "succeeded") execution.succeededCount = 1;
    else execution.failedCount = 1;
    execution.completionTime = new Date().toISOString();
  }

  /** Cloud Run forgot the execution (deleted, or past its retention). */
  forget(name: string): void {
    this.mustFind(name).gone = true;
  }

  private mustFind(name: string): Execution {
    const execution = this.execution(name);
    if (!execution) throw new Error(`no execution ${name}`);
    return execution;
  }

  private answer(method: string, rawPath: string, body: Buffer): Answer {
    const path = decodeURIComponent(rawPath.split("?")[0] ?? "");
    let m: RegExpExecArray | null;
    if (method === "POST" && (m = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/jobs\/[^/:]+):run$/.exec(path))) return this.runJob(m[1]!, body);
    if (method === "GET" && (m = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/jobs\/[^/:]+)$/.exec(path))) {
      const job = this.jobs.get(m[1]!);
      return job ? { endpoint: "getJob", status: 200, body: describeJob(m[1]!, job) } : notFound("getJob", `job ${m[1]}`);
    }
    if (method === "POST" && (m = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/jobs\/[^/:]+):testIamPermissions$/.exec(path))) {
      const job = this.jobs.get(m[1]!);
      if (!job) return notFound("testIamPermissions", `job ${m[1]}`);
      const asked = (JSON.parse(body.toString("utf8") || "{}") as { permissions?: string[] }).permissions ?? [];
      const granted = job.granted ?? RUNNER_JOB_PERMISSIONS;
      return { endpoint: "testIamPermissions", status: 200, body: { permissions: asked.filter((p) => granted.includes(p)) } };
    }
    if ((m = /^\/v2\/(projects\/[^/]+\/locations\/[^/]+\/jobs\/[^/]+\/executions\/[^/:]+)(:cancel)?$/.exec(path))) {
      const [, name, cancel] = m;
      const execution = this.execution(name!);
      const tag = execution?.jobId !== undefined ? { jobId: execution.jobId } : {};
      if (method === "GET" && !cancel) {
        const fault = this.takeFault("getExecution", execution?.jobId);
        if (fault) return fault;
        if (!execution || execution.gone) return notFound("getExecution", `execution ${name}`);
        return { endpoint: "getExecution", status: 200, ...tag, body: describe(execution) };
      }
      if (method === "POST" && cancel) {
        const fault = this.takeFault("cancelExecution", execution?.jobId);
        if (fault) return fault;
        if (!execution || execution.gone) return notFound("cancelExecution", `execution ${name}`);
        if (execution.completionTime) {
          return { endpoint: "cancelExecution", status: 400, ...tag, body: { error: { code: 400, message: "execution already finished", status: "FAILED_PRECONDITION" } } };
        }
        execution.runningCount = 0;
        execution.cancelledCount = 1;
        execution.completionTime = new Date().toISOString();
        return { endpoint: "cancelExecution", status: 200, ...tag, body: operation(execution, "cancel") };
      }
    }
    return { endpoint: `other ${method} ${path}`, status: 404, body: { error: { code: 404, message: "Not Found (bench fake)", status: "NOT_FOUND" } } };
  }

  private runJob(job: string, body: Buffer): Answer {
    const request = JSON.parse(body.toString("utf8") || "{}") as RunJobBody;
    const jitConfig = request.overrides?.containerOverrides?.[0]?.env?.find((e) => e.name === JIT_CONFIG_ENV)?.value;
    const registration = jitConfig ? decodeJitConfig(jitConfig) : undefined;
    const jobId = registration ? jobIdOfRunnerName(registration.name) : undefined;
    const fault = this.takeFault("runJob", jobId);
    if (fault) return fault;
    const name = `${job}/executions/${job.split("/").pop()}-${String(this.nextExecution++).padStart(6, "0")}`;
    const execution: Execution = {
      name,
      job,
      jitConfig,
      runnerId: registration?.runnerId,
      jobId,
      runningCount: 1,
      succeededCount: 0,
      failedCount: 0,
      cancelledCount: 0,
      completionTime: undefined,
      gone: false,
    };
    this.executions.push(execution);
    return { endpoint: "runJob", status: 200, ...(jobId !== undefined ? { jobId } : {}), body: operation(execution, "run") };
  }
}

/** The Job resource as the REST API answers it (proto3 JSON: maxRetries, a oneof, only when set). */
function describeJob(name: string, job: RunnerJob): Record<string, unknown> {
  return {
    name,
    uid: `uid-${name.split("/").pop()}`,
    template: {
      taskCount: job.taskCount ?? 1,
      parallelism: 1,
      template: {
        containers: [{ image: job.image, env: [{ name: "ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE", value: "1" }] }],
        ...(job.maxRetries !== undefined ? { maxRetries: job.maxRetries } : {}),
        timeout: "3600s",
        serviceAccount: "kumo-runner@bench.iam.gserviceaccount.com",
      },
    },
  };
}

/** The Execution resource as the REST API answers it (proto3 JSON). */
function describe(e: Execution): Record<string, unknown> {
  return {
    name: e.name,
    job: e.job.split("/").pop(),
    taskCount: 1,
    runningCount: e.runningCount,
    succeededCount: e.succeededCount,
    failedCount: e.failedCount,
    cancelledCount: e.cancelledCount,
    ...(e.completionTime ? { completionTime: e.completionTime } : {}),
  };
}

/** A long-running Operation whose metadata is the Execution; the app never waits on it. */
function operation(e: Execution, verb: string): Record<string, unknown> {
  return {
    name: `${e.job.split("/jobs/")[0]}/operations/${verb}-${e.name.split("/").pop()}`,
    metadata: { "@type": EXECUTION_TYPE, ...describe(e) },
    done: false,
  };
}
