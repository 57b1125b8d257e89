import type { RunnerSpec } from "../settings/schema.js";

/**
 * Starts and stops the machine a JIT runner lives in: a Cloud Run job
 * execution or a Compute Engine VM. Handlers and reconcile see only this.
 */
export interface Launcher {
  /**
   * Starts one runner machine for `target` whose only job-specific input is
   * the encoded JIT config. Returns its name (an execution or an instance)
   * without waiting for it to run.
   */
  launch(target: LaunchTarget, encodedJitConfig: string, runner: { name: string; attempt: number }): Promise<{ execution: string }>;
  /** Stops and removes the machine; one that already ended or is gone is fine. */
  cancel(execution: string): Promise<void>;
  /** The machine's state, or undefined when it does not exist. */
  describe(execution: string): Promise<ExecutionStatus | undefined>;
  /** Its runner's job is done: remove what would outlive it (a VM; a Cloud Run execution ends by itself). */
  finished(execution: string): Promise<void>;
  /** Whether this target's machines outlive their runner (so finished() has work to do). */
  outlivesRunner(target: LaunchTarget): boolean;
  /**
   * How soon after launch a machine that will never run shows as ended or
   * missing (a VM whose zone had no stock), so reconcile may look before the
   * usual grace; undefined: only after the grace.
   */
  failureVisibleAfterMs(execution: string): number | undefined;
  /** Machines that live until deleted (VMs), for the reaper; Cloud Run executions end by themselves. */
  machines(): Promise<RunnerMachine[]>;
}

/** A runner machine as the reaper sees it. */
export interface RunnerMachine {
  execution: string;
  /** The runner's name (a VM is named like its runner). */
  name: string;
  /** The backend's status word (RUNNING, TERMINATED, …). */
  status: string;
  /** Ended and waiting only to be deleted. */
  stopped: boolean;
  createdAt: Date | undefined;
}

/** Where a job's runner is made, resolved from its runner spec when the job was first seen. */
export interface LaunchTarget {
  /** Cloud Run: the job's full resource name. compute-engine: the instance template's. */
  job: string;
  /** Absent: cloud-run (records written before there was a choice have none). */
  backend?: "compute-engine";
  /** compute-engine: zones tried in order. */
  zones?: string[];
  /** compute-engine: Compute Engine deletes the VM after this whatever happens; absent: the template's limit. */
  maxRunMinutes?: number;
}

export interface ExecutionStatus {
  running: boolean;
  /** Ended, with or without success. */
  done: boolean;
  failed: boolean;
  /** Why it failed, when the backend says (a zone's stock-out). */
  reason?: string;
}

/** The variable the official runner image reads its JIT config from. */
export const JIT_CONFIG_ENV = "ACTIONS_RUNNER_INPUT_JITCONFIG";

/** GitHub's default job timeout: a VM outliving it serves no job (when neither spec nor template says). */
export const DEFAULT_MAX_RUN_MINUTES = 360;

/** A settings `job` to a full resource name: short names live in the configured project and region. */
export function jobResourceName(job: string, defaults: { project?: string; region?: string }): string {
  if (job.startsWith("projects/")) return job;
  if (!defaults.project || !defaults.region) {
    throw new Error(`Cloud Run job "${job}" is a short name: set GOOGLE_CLOUD_PROJECT and CLOUD_RUN_REGION, or use projects/P/locations/R/jobs/J`);
  }
  return `projects/${defaults.project}/locations/${defaults.region}/jobs/${job}`;
}

/** A settings `instanceTemplate` to a full resource name: short names are global templates of the configured project. */
export function templateResourceName(template: string, defaults: { project?: string }): string {
  if (template.startsWith("projects/")) return template;
  if (!defaults.project) {
    throw new Error(`instance template "${template}" is a short name: set GOOGLE_CLOUD_PROJECT, or use projects/P/global/instanceTemplates/T`);
  }
  return `projects/${defaults.project}/global/instanceTemplates/${template}`;
}

/** The launch target of a runner spec; throws when a short name cannot be resolved. */
export function launchTarget(spec: RunnerSpec, defaults: { project?: string; region?: string }): LaunchTarget {
  if (spec.backend === "compute-engine") {
    return {
      job: templateResourceName(spec.instanceTemplate, defaults),
      backend: "compute-engine",
      zones: spec.zones,
      ...(spec.maxRunMinutes ? { maxRunMinutes: spec.maxRunMinutes } : {}),
    };
  }
  return { job: jobResourceName(spec.job, defaults) };
}

/** `projects/P/zones/Z/instances/N`: a VM; anything else is a Cloud Run execution. */
export const INSTANCE_NAME = /^projects\/([^/]+)\/zones\/([^/]+)\/instances\/([^/]+)$/;
