import { ExecutionsClient, JobsClient } from "@google-cloud/run";
import { PassThroughClient } from "google-auth-library";
import { fromCloudRunError } from "../errors.js";
import { JIT_CONFIG_ENV, type ExecutionStatus, type Launcher } from "./launcher.js";

const NOT_FOUND = 5;
const FAILED_PRECONDITION = 9;

type ClientOptions = ConstructorParameters<typeof JobsClient>[0];

/**
 * Client options: Google's API with application default credentials, or, when
 * `endpoint` is an http(s)://host:port URL, REST to that endpoint without
 * credentials (local stand-ins and tests, like FIRESTORE_EMULATOR_HOST).
 */
export function cloudRunClientOptions(endpoint?: string): ClientOptions {
  if (!endpoint) return {};
  const url = new URL(endpoint);
  const protocol = url.protocol.replace(":", "");
  return {
    fallback: true,
    apiEndpoint: url.hostname,
    // apiEndpoint alone would be sent to port 443.
    port: Number(url.port || (protocol === "https" ? 443 : 80)),
    protocol,
    authClient: new PassThroughClient(),
  } as ClientOptions;
}

export class CloudRunLauncher implements Launcher {
  constructor(
    private readonly jobs: JobsClient,
    private readonly executions: ExecutionsClient,
  ) {}

  static fromEndpoint(endpoint?: string): CloudRunLauncher {
    const options = cloudRunClientOptions(endpoint);
    return new CloudRunLauncher(new JobsClient(options), new ExecutionsClient(options));
  }

  async launch(job: string, encodedJitConfig: string): Promise<{ execution: string }> {
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
      throw fromCloudRunError(`runJob ${job}`, error);
    }
  }

  async cancel(execution: string): Promise<void> {
    try {
      await this.executions.cancelExecution({ name: execution });
    } catch (error) {
      const code = (error as { code?: number }).code;
      if (code === NOT_FOUND || code === FAILED_PRECONDITION) return; // gone, or already finished
      throw fromCloudRunError(`cancel ${execution}`, error);
    }
  }

  async describe(execution: string): Promise<ExecutionStatus | undefined> {
    try {
      const [e] = await this.executions.getExecution({ name: execution });
      const done = Boolean(e.completionTime);
      return { running: (e.runningCount ?? 0) > 0, done, failed: (e.failedCount ?? 0) > 0 || (e.cancelledCount ?? 0) > 0 };
    } catch (error) {
      if ((error as { code?: number }).code === NOT_FOUND) return undefined;
      throw fromCloudRunError(`get ${execution}`, error);
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.jobs.close(), this.executions.close()]);
  }
}
