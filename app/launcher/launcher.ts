/** Starts and stops the container a JIT runner lives in. */
export interface Launcher {
  /**
   * Starts one execution of `job` (a full Cloud Run job resource name) whose
   * only override is the encoded JIT config. Returns the execution's name
   * without waiting for it to run.
   */
  launch(job: string, encodedJitConfig: string): Promise<{ execution: string }>;
  /** Cancels an execution; one that already ended or is gone is fine. */
  cancel(execution: string): Promise<void>;
  /** The execution's state, or undefined when it does not exist. */
  describe(execution: string): Promise<ExecutionStatus | undefined>;
}

export interface ExecutionStatus {
  running: boolean;
  /** Ended, with or without success. */
  done: boolean;
  failed: boolean;
}

/** The variable the official runner image reads its JIT config from. */
export const JIT_CONFIG_ENV = "ACTIONS_RUNNER_INPUT_JITCONFIG";

/** A settings `job` to a full resource name: short names live in the configured project and region. */
export function jobResourceName(job: string, defaults: { project?: string; region?: string }): string {
  if (job.startsWith("projects/")) return job;
  if (!defaults.project || !defaults.region) {
    throw new Error(`Cloud Run job "${job}" is a short name: set GOOGLE_CLOUD_PROJECT and CLOUD_RUN_REGION, or use projects/P/locations/R/jobs/J`);
  }
  return `projects/${defaults.project}/locations/${defaults.region}/jobs/${job}`;
}
