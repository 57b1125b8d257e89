import { createHash } from "node:crypto";

// What Kumo remembers of each workflow job: one record per job id, the single
// source of truth that makes duplicate and out-of-order webhooks harmless.

/**
 * claimed   a launch is under way, protected by a lease (a crash leaves it to be re-claimed)
 * launched  a JIT runner exists and its Cloud Run execution was started
 * waiting   the spec's maxRunners was reached; launched when capacity frees
 * pending   the launch failed for a reason that may pass (rate limit, 5xx); reconcile retries
 * failed    the launch failed for a reason a person must fix (settings, permissions)
 * running   GitHub reports the job in progress
 * completed GitHub reports the job completed (any conclusion, cancelled included)
 */
export type JobState = "claimed" | "launched" | "waiting" | "pending" | "failed" | "running" | "completed";

/** States from which a new launch may start once the lease (if any) has expired. */
export const LAUNCHABLE_STATES: readonly JobState[] = ["claimed", "pending", "waiting"];

/** A launch under way, or a retry-after, still holds the record. */
export function leaseActive(record: Pick<JobRecord, "leaseUntil">, now: Date): boolean {
  return Boolean(record.leaseUntil && record.leaseUntil.getTime() > now.getTime());
}

export function isLaunchable(record: Pick<JobRecord, "state" | "leaseUntil">, now: Date): boolean {
  return LAUNCHABLE_STATES.includes(record.state) && !leaseActive(record, now);
}

/**
 * The capacity a job counts against: its org's runner spec (Cloud Run job and
 * labels), when the spec has a maxRunners cap.
 */
export function capacityOf(org: string, target: RunnerTarget): { key: string; max: number; name: string } | undefined {
  if (!target.maxRunners) return undefined;
  const key = createHash("sha256").update([org, target.job, ...target.labels].join("\n")).digest("hex").slice(0, 24);
  return { key, max: target.maxRunners, name: `${org} [${target.labels.join(", ")}] → ${target.job.split("/").pop()}` };
}

/** One live runner of a capped spec: held by a job from before its launch until it is done. */
export interface CapacitySlot {
  id: string;
  key: string;
  /** 0 … maxRunners-1: two holders can never share one. */
  index: number;
  jobId: number;
  org: string;
  /** The spec's cap when the slot was taken, and a readable name of the spec, for reports. */
  max: number;
  name: string;
  takenAt: Date;
  /** When reconcile last asked GitHub whether the holder's job is still alive. */
  checkedAt?: Date;
}

/** One launch of a warm pool: under way (no runner yet), or the runner it made. */
export interface WarmLaunch {
  id: string;
  /** When it was decided. */
  at: Date;
  /** The pool's launch count when it was decided: VMs start in the zone of that turn. */
  turn: number;
  /** The launch route took it (with a launch queue). */
  taken?: boolean;
  runnerName?: string;
  runnerId?: number;
  execution?: string;
}

/** Where a job's runner goes: resolved from the settings when the job was first seen. */
export interface RunnerTarget {
  labels: string[];
  group: string;
  groupId: number;
  /** Full resource name of what runners are made from: the Cloud Run job, or (compute-engine) the instance template. */
  job: string;
  /** Absent: cloud-run. */
  backend?: "compute-engine";
  /** compute-engine: zones tried in order, and the VM's run-duration limit. */
  zones?: string[];
  maxRunMinutes?: number;
  maxRunners?: number;
  /** false when the org's settings turned check-run explanations off. */
  explain?: false;
}

export interface NewJob {
  jobId: number;
  runId: number;
  runAttempt: number;
  installationId: number;
  org: string;
  /** owner/name */
  repo: string;
  labels: string[];
  target: RunnerTarget;
  deliveryId?: string;
  /** GitHub's created_at of the job. */
  createdAt?: Date;
  /** The job's name and commit, for a check run that explains a wait. */
  name?: string;
  headSha?: string;
}

export interface JobRecord extends Omit<NewJob, "target"> {
  /** Absent when GitHub's in_progress/completed arrived before queued. */
  target?: RunnerTarget;
  state: JobState;
  /** Launch attempts so far (each claim is one). */
  attempts: number;
  /** Of those, claims that found the spec's capacity full: they started nothing. */
  waits?: number;
  receivedAt: Date;
  updatedAt: Date;
  claimedAt?: Date;
  leaseUntil?: Date;
  launchedAt?: Date;
  startedAt?: Date;
  completedAt?: Date;
  /** Firestore TTL field: the record is deleted after this. */
  expireAt: Date;
  runnerId?: number;
  runnerName?: string;
  execution?: string;
  lastError?: string;
  conclusion?: string;
  /** A check run on the job's commit says why it waits (kumo-explained/<job id>). */
  explained?: boolean;
  /** The claim's launch waits in the launch queue as a task (its lease is the queue's). */
  enqueued?: boolean;
  /** The launch route took this attempt's task: another delivery of it is refused. */
  taskTaken?: boolean;
  /** The runner GitHub gave the job to (any runner with matching labels may take it). */
  assignedRunnerName?: string;
  assignedRunnerId?: number;
}

export type ClaimResult = { claimed: true; record: JobRecord } | { claimed: false; record: JobRecord };

export interface LaunchedRunner {
  runnerId: number;
  runnerName: string;
  execution: string;
}

export interface NotLaunched {
  state: "pending" | "failed" | "waiting";
  reason: string;
  /** Nobody retries before this (a rate limit's retry-after). */
  retryAfterMs?: number;
}

export interface JobProgress {
  jobId: number;
  status: "in_progress" | "completed";
  installationId: number;
  org: string;
  repo: string;
  runId: number;
  runAttempt: number;
  labels: string[];
  runnerId?: number;
  runnerName?: string;
  startedAt?: Date;
  completedAt?: Date;
  conclusion?: string;
}

/** A check run that explains why a job waits: one per job, whatever the redeliveries and reconcile passes. */
export interface Explanation {
  jobId: number;
  repo: string;
  headSha: string;
  /** The reason it states now (a WaitReason's kind), or "resolved" once a runner took the job. */
  reason: string;
  checkRunId?: number;
}

export interface JobStore {
  /** Creates the record, or re-claims a launchable one whose lease expired; else reports the existing record. */
  claim(job: NewJob, now?: Date): Promise<ClaimResult>;
  /** Records the runner and execution of the launch made under claim `attempt`. */
  markLaunched(jobId: number, attempt: number, runner: LaunchedRunner, now?: Date): Promise<void>;
  /** The launch of claim `attempt` is a task of the launch queue now: the claim holds for `leaseMs`. */
  markEnqueued(jobId: number, attempt: number, leaseMs: number, now?: Date): Promise<void>;
  /**
   * The launch route's claim: takes the record for the task of `attempt` only if
   * that attempt is still the record's and its launch is still to make (claimed
   * and its task not taken yet, or pending a retry whose wait is over). A task
   * delivered twice, or enqueued again later, gets it once.
   */
  takeTask(jobId: number, attempt: number, now?: Date): Promise<ClaimResult>;
  /** Records why the launch made under claim `attempt` did not happen, and releases the claim. */
  markNotLaunched(jobId: number, attempt: number, outcome: NotLaunched, now?: Date): Promise<void>;
  /** Applies GitHub's in_progress/completed; never moves a job backwards. Returns the record after the change. */
  recordProgress(progress: JobProgress, now?: Date): Promise<JobRecord>;
  get(jobId: number): Promise<JobRecord | undefined>;
  /**
   * Reconcile's claim: takes the record for a new launch attempt only if it is
   * still as reconcile saw it (same state and attempt count), so two passes
   * running at once never launch the same job twice.
   */
  reclaim(seen: Pick<JobRecord, "jobId" | "state" | "attempts">, now?: Date): Promise<ClaimResult>;
  /** Records in these states, oldest update first, at most `limit`. */
  list(states: readonly JobState[], limit: number): Promise<JobRecord[]>;
  /** Waiting jobs of this org's spec, oldest first. */
  listWaiting(org: string, target: RunnerTarget, limit: number): Promise<JobRecord[]>;
  /**
   * Takes one of the `max` capacity slots of `key` for the job, or confirms it
   * holds one already; false when all are held.
   */
  takeSlot(key: string, max: number, holder: { jobId: number; org: string; name: string }, now?: Date): Promise<boolean>;
  /** Gives back the job's slot; true when it held one. */
  releaseSlot(jobId: number): Promise<boolean>;
  /** Slots held, of one capacity or of all. */
  listSlots(key?: string): Promise<CapacitySlot[]>;
  /** Notes that reconcile found the slot's holder alive. */
  touchSlot(id: string, now?: Date): Promise<void>;
  /**
   * A warm pool's launches, changed in one transaction: `decide` sees them as
   * they are (it may run more than once: no side effects) and says which to
   * keep and how many to add. Concurrent passes queue up, so together they
   * never add more than one of them would. Returns the launches added.
   */
  updateWarmPool(key: string, holder: { org: string; name: string }, decide: (launches: WarmLaunch[]) => { keep: WarmLaunch[]; add: number }, now?: Date): Promise<WarmLaunch[]>;
  /** The runner a warm launch made; false when the launch is no longer the pool's (its runner must go). */
  recordWarmLaunch(key: string, id: string, runner: LaunchedRunner): Promise<boolean>;
  /** A warm pool's launches as they are. */
  listWarmLaunches(key: string): Promise<WarmLaunch[]>;
  /** Forgets a launch (it failed, or its runner was retired). */
  dropWarmLaunch(key: string, id: string): Promise<void>;
  /** Takes a launch for the launch route: once, and only while it has no runner. */
  takeWarmLaunch(key: string, id: string): Promise<WarmLaunch | undefined>;
  /** The warm launch that made this runner, if it is one. */
  findWarmLaunch(runnerName: string): Promise<WarmLaunch | undefined>;
  /** Whether GitHub gave a job to this runner (an in_progress webhook said so) and the job is not done. */
  runsJob(runnerName: string): Promise<boolean>;
  /** The job's explanation; `create` makes it if there is none (of concurrent creators one wins: `created`). */
  explanation(jobId: number, create?: Omit<Explanation, "checkRunId">, now?: Date): Promise<{ created: boolean; explanation?: Explanation }>;
  /** Records the check run and the reason it states now (also marks the job record, if any, as explained). */
  setExplanation(jobId: number, fields: Partial<Pick<Explanation, "reason" | "checkRunId">>): Promise<void>;
  /** Forgets an explanation whose check run could not be made, so that a later event tries again. */
  dropExplanation(jobId: number): Promise<void>;
  /** A small named value shared by all instances (reconcile's watermarks). */
  getMark(name: string): Promise<Date | undefined>;
  setMark(name: string, value: Date): Promise<void>;
  /** Counts one redelivery of a webhook guid; false (and nothing counted) once `max` were made. */
  takeRedelivery(guid: string, max: number, now?: Date): Promise<boolean>;
  /**
   * Records received at or after `since`, newest first, at most `limit`, with
   * only `fields` read (reports: `npm run status`).
   */
  listReceivedSince<K extends keyof JobRecord>(since: Date, limit: number, fields: readonly K[]): Promise<Array<Pick<JobRecord, K>>>;
}
