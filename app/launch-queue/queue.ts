/** A launch to make: the job and the claim attempt it belongs to. */
export interface QueuedLaunch {
  jobId: number;
  attempt: number;
}

/** A warm pool's launch: the pool, the launch it decided (once taken, a repeat does nothing) and where to launch. */
export interface QueuedWarmLaunch {
  warm: {
    key: string;
    id: string;
    turn: number;
    org: string;
    installationId: number;
    target: { labels: string[]; group: string; groupId: number; job: string; backend?: "compute-engine"; zones?: string[]; maxRunMinutes?: number };
  };
}

/**
 * When a launch runs. Inline (the embedded default: laptop, tests, a single
 * instance): now, in the process that decided it. With a Cloud Tasks queue:
 * as a task of that queue, whose rate is the one JIT budget of the whole
 * deployment, delivered to the launch route of the service.
 */
export interface LaunchQueue {
  /** false: launches run inline. */
  readonly enqueues: boolean;
  /** Adds the launch to the queue; one already there (same job and attempt) counts as added. */
  enqueue(launch: QueuedLaunch): Promise<void>;
  /** Adds a warm pool's launch, under the same budget. */
  enqueueWarm(launch: QueuedWarmLaunch): Promise<void>;
}

export const INLINE: LaunchQueue = {
  enqueues: false,
  enqueue: () => Promise.reject(new Error("inline launches are not enqueued")),
  enqueueWarm: () => Promise.reject(new Error("inline launches are not enqueued")),
};

/** The task id of a launch: the same job and attempt always make the same task, so duplicates are refused by Cloud Tasks. */
export function taskId(launch: QueuedLaunch, prefix: string): string {
  return `${prefix}-${launch.jobId}-${launch.attempt}`;
}
