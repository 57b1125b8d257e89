import { ExecutionsClient, JobsClient } from "@google-cloud/run";
import { fromGoogleError } from "../errors.js";
import { googleClientOptions, type ClientOptions } from "./google-client-options.js";
import { JIT_CONFIG_ENV, type ExecutionStatus, type LaunchTarget, type Launcher, type RunnerMachine } from "./launcher.js";

const NOT_FOUND = 5;
const FAILED_PRECONDITION = 9;

export class CloudRunLauncher implements Launcher {
  // Made on first use, not at start: each costs tens of ms of CPU (it loads the
  // API's protos), and a queued webhook needs only the jobs client.
  private jobsClient: JobsClient | undefined;
  private executionsClient: ExecutionsClient | undefined;

  constructor(private readonly options: ClientOptions) {}

  static fromEndpoint(endpoint?: string): CloudRunLauncher {
    return new CloudRunLauncher(googleClientOptions(endpoint));
  }

  private get jobs(): JobsClient {
    return (this.jobsClient ??= new JobsClient(this.options));
  }

  private get executions(): ExecutionsClient {
    return (this.executionsClient ??= new ExecutionsClient(this.options));
  }

  async launch(target: LaunchTarget, encodedJitConfig: string): Promise<{ execution: string }> {
    const { job } = target;
    try {
      const [operation] = await this.jobs.runJob({
        name: job,
        // The only override: env merges with the job's own; the task count stays one runner.
        overrides: { containerOverrides: [{ env: [{ name: JIT_CONFIG_ENV, value: encodedJitConfig }] }], taskCount: 1 },
      });
      // The operation's metadata is the Execution; waiting on the operation would wait for the CI job itself.
      const execution = (operation.metadata as { name?: string } | null)?.name;
      if (!execution) throw new Error("runJob answered without an execution name");
      return { execution };
    } catch (error) {
      throw fromGoogleError(`runJob ${job}`, error);
    }
  }

  async cancel(execution: string): Promise<void> {
    try {
      await this.executions.cancelExecution({ name: execution });
    } catch (error) {
      const code = (error as { code?: number }).code;
      if (code === NOT_FOUND || code === FAILED_PRECONDITION) return; // gone, or already finished
      throw fromGoogleError(`cancel ${execution}`, error);
    }
  }

  async describe(execution: string): Promise<ExecutionStatus | undefined> {
    try {
      const [e] = await this.executions.getExecution({ name: execution });
      const done = Boolean(e.completionTime);
      return { running: (e.runningCount ?? 0) > 0, done, failed: (e.failedCount ?? 0) > 0 || (e.cancelledCount ?? 0) > 0 };
    } catch (error) {
      if ((error as { code?: number }).code === NOT_FOUND) return undefined;
      throw fromGoogleError(`get ${execution}`, error);
    }
  }

  async finished(): Promise<void> {
    // The execution ends with its runner: nothing outlives the job.
  }

  outlivesRunner(): boolean {
    return false;
  }

  failureVisibleAfterMs(): undefined {
    return undefined;
  }

  async machines(): Promise<RunnerMachine[]> {
    return [];
  }

  async close(): Promise<void> {
    await Promise.all([this.jobsClient?.close(), this.executionsClient?.close()]);
  }

  /** What `npm run doctor` checks of a runner job, or undefined when the job does not exist (needs run.jobs.get). */
  async job(name: string): Promise<CloudRunJobInfo | undefined> {
    try {
      const [job] = await this.jobs.getJob({ name });
      const execution = job.template;
      const task = execution?.template;
      return {
        name: job.name ?? name,
        images: (task?.containers ?? []).map((c) => c.image ?? ""),
        // Set explicitly or not at all (a oneof): unset means Cloud Run's default of 3 retries.
        maxRetries: typeof task?.maxRetries === "number" ? task.maxRetries : undefined,
        // 0 or unset: Cloud Run's default, 1.
        taskCount: execution?.taskCount || 1,
        // Unset: Cloud Run's default task timeout, 10 minutes.
        timeoutSeconds: task?.timeout?.seconds ? Number(task.timeout.seconds) : 600,
      };
    } catch (error) {
      if ((error as { code?: number }).code === NOT_FOUND) return undefined;
      throw fromGoogleError(`getJob ${name}`, error);
    }
  }

  /** Which of `permissions` the caller's credentials hold on the job (testIamPermissions). */
  async grantedOnJob(name: string, permissions: string[]): Promise<string[]> {
    try {
      const [answer] = await this.jobs.testIamPermissions({ resource: name, permissions });
      return answer.permissions ?? [];
    } catch (error) {
      throw fromGoogleError(`testIamPermissions ${name}`, error);
    }
  }
}

/** A Cloud Run job as `npm run doctor` sees it. */
export interface CloudRunJobInfo {
  name: string;
  /** The image of each container of its task. */
  images: string[];
  /** undefined when not set (Cloud Run then retries a failed task 3 times). */
  maxRetries: number | undefined;
  taskCount: number;
  /** The task timeout: a runner, and the job it runs, is stopped then. */
  timeoutSeconds: number;
}
