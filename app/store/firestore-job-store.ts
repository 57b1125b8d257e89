import { randomUUID } from "node:crypto";
import { FieldValue, Firestore, Timestamp, type DocumentData, type DocumentSnapshot } from "@google-cloud/firestore";
import {
  isLaunchable,
  leaseActive,
  type JobState,
  type CapacitySlot,
  type Explanation,
  type RunnerTarget,
  type ClaimResult,
  type JobProgress,
  type JobRecord,
  type JobStore,
  type LaunchedRunner,
  type NewJob,
  type NotLaunched,
  type WarmLaunch,
} from "./job-store.js";

export const JOBS_COLLECTION = "kumo-jobs";
export const STATE_COLLECTION = "kumo-state";
export const REDELIVERIES_COLLECTION = "kumo-redeliveries";
export const SLOTS_COLLECTION = "kumo-slots";
/** One document per launch place of each warm pool (at most its size): no TTL needed. */
export const WARM_COLLECTION = "kumo-warm";
export const EXPLAINED_COLLECTION = "kumo-explained";

const DAY_MS = 24 * 60 * 60 * 1000;
/** GitHub fails a job queued for 24 h; a record nobody completed is useless well before this. */
const OPEN_RECORD_TTL_MS = 30 * DAY_MS;
/** Kept after completion for queue-time reports and late duplicate deliveries. */
const DONE_RECORD_TTL_MS = 7 * DAY_MS;
const ALREADY_EXISTS = 6;
const FAILED_PRECONDITION = 9;
const NOT_FOUND = 5;

const ORDER = { claimed: 0, waiting: 0, pending: 0, failed: 0, launched: 1, running: 2, completed: 3 } as const;

export class FirestoreJobStore implements JobStore {
  private readonly jobs;
  private readonly slots;
  /**
   * Claims this instance made, with the write time Firestore gave them: the
   * launch outcome is then one conditional update instead of a transaction
   * (three round trips), falling back to the transaction when the record changed.
   */
  private readonly ownClaims = new Map<number, { attempt: number; writeTime: Timestamp; record: JobRecord }>();

  constructor(
    readonly db: Firestore,
    private readonly leaseMs: number,
  ) {
    this.jobs = db.collection(JOBS_COLLECTION);
    this.slots = db.collection(SLOTS_COLLECTION);
  }

  static fromEnv(options: { projectId?: string; databaseId?: string; leaseMs: number }): FirestoreJobStore {
    const db = new Firestore({ projectId: options.projectId, databaseId: options.databaseId, ignoreUndefinedProperties: true });
    return new FirestoreJobStore(db, options.leaseMs);
  }

  async claim(job: NewJob, now = new Date()): Promise<ClaimResult> {
    const ref = this.jobs.doc(String(job.jobId));
    const fresh: JobRecord = {
      ...job,
      state: "claimed",
      attempts: 1,
      receivedAt: now,
      updatedAt: now,
      claimedAt: now,
      leaseUntil: new Date(now.getTime() + this.leaseMs),
      expireAt: new Date(now.getTime() + OPEN_RECORD_TTL_MS),
    };
    // create() is atomic: of N concurrent deliveries exactly one succeeds, with no transaction contention.
    try {
      const { writeTime } = await ref.create(fresh);
      this.remember(fresh, writeTime);
      return { claimed: true, record: fresh };
    } catch (error) {
      if ((error as { code?: number }).code !== ALREADY_EXISTS) throw error;
    }
    const existing = toRecord(await ref.get());
    if (!existing || !isLaunchable(existing, now)) return { claimed: false, record: existing ?? fresh };
    return this.claimAgain(job.jobId, now, (current) => isLaunchable(current, now), job.deliveryId ? { deliveryId: job.deliveryId } : {});
  }

  async markLaunched(jobId: number, attempt: number, runner: LaunchedRunner, now = new Date()): Promise<void> {
    await this.updateClaim(jobId, attempt, now, (current) => ({
      ...runner,
      launchedAt: now,
      lastError: null,
      // GitHub's in_progress may already have arrived: never move the job backwards.
      ...(ORDER[current.state] < ORDER.launched ? { state: "launched", leaseUntil: null } : {}),
    }));
  }

  async markEnqueued(jobId: number, attempt: number, leaseMs: number, now = new Date()): Promise<void> {
    // Only while its task is still to come: a queue that dispatched it already has moved the record on.
    await this.updateClaim(jobId, attempt, now, (current) =>
      current.state === "claimed" && !current.taskTaken ? { enqueued: true, leaseUntil: new Date(now.getTime() + leaseMs) } : {},
    );
  }

  async takeTask(jobId: number, attempt: number, now = new Date()): Promise<ClaimResult> {
    const ref = this.jobs.doc(String(jobId));
    const result = await this.db.runTransaction(async (tx) => {
      const current = toRecord(await tx.get(ref));
      if (!current) throw new Error(`job ${jobId} has no record`);
      // No enqueued flag is needed to take it: a crash between createTask and markEnqueued loses nothing.
      const due = (current.state === "claimed" && !current.taskTaken) || (current.state === "pending" && !leaseActive(current, now));
      if (current.attempts !== attempt || !due || !current.target) return { claimed: false as const, record: current };
      const next: JobRecord = { ...current, state: "claimed", taskTaken: true, claimedAt: now, leaseUntil: new Date(now.getTime() + this.leaseMs), updatedAt: now };
      delete next.enqueued;
      tx.set(ref, next);
      return { claimed: true as const, record: next };
    });
    this.ownClaims.delete(jobId);
    return result;
  }

  async markNotLaunched(jobId: number, attempt: number, outcome: NotLaunched, now = new Date()): Promise<void> {
    await this.updateClaim(jobId, attempt, now, (current) =>
      ORDER[current.state] > ORDER.claimed
        ? { lastError: outcome.reason }
        : {
            state: outcome.state,
            lastError: outcome.reason,
            leaseUntil: outcome.retryAfterMs ? new Date(now.getTime() + outcome.retryAfterMs) : null,
            // A claim that found no capacity started nothing: it does not use up a launch attempt.
            ...(outcome.state === "waiting" ? { waits: (current.waits ?? 0) + 1 } : {}),
          },
    );
  }

  async recordProgress(progress: JobProgress, now = new Date()): Promise<JobRecord> {
    const ref = this.jobs.doc(String(progress.jobId));
    const state = progress.status === "completed" ? "completed" : "running";
    return this.db.runTransaction(async (tx) => {
      const current = toRecord(await tx.get(ref));
      const facts = {
        ...(progress.runnerName ? { assignedRunnerName: progress.runnerName } : {}),
        ...(progress.runnerId ? { assignedRunnerId: progress.runnerId } : {}),
        ...(progress.startedAt ? { startedAt: progress.startedAt } : {}),
        ...(progress.completedAt ? { completedAt: progress.completedAt } : {}),
        ...(progress.conclusion ? { conclusion: progress.conclusion } : {}),
        ...(state === "completed" ? { expireAt: new Date(now.getTime() + DONE_RECORD_TTL_MS) } : {}),
      };
      const next: JobRecord = current
        ? { ...current, ...facts, ...(ORDER[current.state] < ORDER[state] ? { state, leaseUntil: undefined } : {}), updatedAt: now }
        : {
            // Out of order: this arrived before queued. The record stops a late queued from launching.
            jobId: progress.jobId,
            runId: progress.runId,
            runAttempt: progress.runAttempt,
            installationId: progress.installationId,
            org: progress.org,
            repo: progress.repo,
            labels: progress.labels,
            state,
            attempts: 0,
            receivedAt: now,
            updatedAt: now,
            expireAt: new Date(now.getTime() + (state === "completed" ? DONE_RECORD_TTL_MS : OPEN_RECORD_TTL_MS)),
            ...facts,
          };
      tx.set(ref, next);
      return next;
    });
  }

  async get(jobId: number): Promise<JobRecord | undefined> {
    return toRecord(await this.jobs.doc(String(jobId)).get());
  }

  async reclaim(seen: Pick<JobRecord, "jobId" | "state" | "attempts">, now = new Date()): Promise<ClaimResult> {
    return this.claimAgain(
      seen.jobId,
      now,
      (current) => current.state === seen.state && current.attempts === seen.attempts && !leaseActive(current, now) && Boolean(current.target),
    );
  }

  /** A new launch attempt on an existing record, in a transaction, if `allowed` still holds for it. */
  private async claimAgain(jobId: number, now: Date, allowed: (current: JobRecord) => boolean, fill: Partial<JobRecord> = {}): Promise<ClaimResult> {
    const ref = this.jobs.doc(String(jobId));
    const result = await this.db.runTransaction(async (tx) => {
      const current = toRecord(await tx.get(ref));
      if (!current) throw new Error(`job ${jobId} has no record`);
      if (!allowed(current)) return { claimed: false as const, record: current };
      const next: JobRecord = {
        ...current,
        ...fill,
        state: "claimed",
        attempts: current.attempts + 1,
        claimedAt: now,
        leaseUntil: new Date(now.getTime() + this.leaseMs),
        updatedAt: now,
      };
      // A new attempt: its task (if any) is yet to come.
      delete next.enqueued;
      delete next.taskTaken;
      tx.set(ref, next);
      return { claimed: true as const, record: next };
    });
    this.ownClaims.delete(jobId);
    return result;
  }

  async list(states: readonly JobState[], limit: number): Promise<JobRecord[]> {
    // One equality-style filter and an order on another field would need a composite
    // index; sorting the bounded result here keeps the deployment index-free.
    const snapshot = await this.jobs.where("state", "in", [...states]).limit(limit).get();
    return snapshot.docs
      .map((d) => toRecord(d)!)
      .sort((a, b) => a.updatedAt.getTime() - b.updatedAt.getTime());
  }

  async listWaiting(org: string, target: RunnerTarget, limit: number): Promise<JobRecord[]> {
    // Equality filters only: served by single-field indexes, no composite index to deploy.
    const snapshot = await this.jobs.where("state", "==", "waiting").where("target.job", "==", target.job).where("org", "==", org).get();
    const labels = target.labels.join("\n");
    return snapshot.docs
      .map((d) => toRecord(d)!)
      .filter((r) => r.target?.labels.join("\n") === labels)
      .sort((a, b) => (a.createdAt ?? a.receivedAt).getTime() - (b.createdAt ?? b.receivedAt).getTime() || a.jobId - b.jobId)
      .slice(0, limit);
  }

  /**
   * Exact under any concurrency, across instances: slot documents are named
   * `<key>-<index>` with index < max and taken with create(), which Firestore
   * lets exactly one writer win. So at most `max` holders exist, whatever the
   * races between the look and the take; a lost race tries another free index.
   */
  async takeSlot(key: string, max: number, holder: { jobId: number; org: string; name: string }, now = new Date()): Promise<boolean> {
    for (let round = 0; round < 3; round++) {
      const held = await this.listSlots(key);
      if (held.some((s) => s.jobId === holder.jobId)) return true;
      // A lowered cap: holders above it keep their runners, new ones wait until fewer than max remain.
      if (held.length >= max) return false;
      const used = new Set(held.map((s) => s.index));
      const free = Array.from({ length: max }, (_, i) => i).filter((i) => !used.has(i));
      // Racing takers start at different free indexes.
      const start = Math.floor(Math.random() * free.length);
      for (const index of [...free.slice(start), ...free.slice(0, start)]) {
        try {
          await this.slots.doc(`${key}-${index}`).create({ key, index, max, takenAt: now, ...holder });
          return true;
        } catch (error) {
          if ((error as { code?: number }).code !== ALREADY_EXISTS) throw error;
        }
      }
    }
    return false;
  }

  async releaseSlot(jobId: number): Promise<boolean> {
    const held = await this.slots.where("jobId", "==", jobId).get();
    await Promise.all(held.docs.map((d) => d.ref.delete()));
    return !held.empty;
  }

  async listSlots(key?: string): Promise<CapacitySlot[]> {
    const snapshot = await (key ? this.slots.where("key", "==", key) : this.slots).get();
    return snapshot.docs.map((d) => ({ ...(convertTimestamps(d.data()) as Omit<CapacitySlot, "id">), id: d.id }));
  }

  async touchSlot(id: string, now = new Date()): Promise<void> {
    try {
      await this.slots.doc(id).update({ checkedAt: now });
    } catch (error) {
      // Released meanwhile: nothing to note.
      if ((error as { code?: number }).code !== NOT_FOUND) throw error;
    }
  }

  async updateWarmPool(
    key: string,
    holder: { org: string; name: string },
    decide: (launches: WarmLaunch[]) => { keep: WarmLaunch[]; add: number },
    now = new Date(),
  ): Promise<WarmLaunch[]> {
    const ref = this.db.collection(WARM_COLLECTION).doc(key);
    return this.db.runTransaction(async (tx) => {
      const data = (await tx.get(ref)).data();
      const { keep, add } = decide(warmLaunchesOf(data));
      const turns = Number(data?.turns ?? 0);
      const added: WarmLaunch[] = Array.from({ length: Math.max(0, add) }, (_, i) => ({ id: randomUUID().slice(0, 8), at: now, turn: turns + i + 1 }));
      const all = [...keep, ...added];
      tx.set(ref, {
        key,
        ...holder,
        turns: turns + added.length,
        launches: Object.fromEntries(all.map(({ id, ...launch }) => [id, launch])),
        // Queried by findWarmLaunch (array-contains): Firestore cannot query map values.
        runnerNames: all.flatMap((l) => (l.runnerName ? [l.runnerName] : [])),
      });
      return added;
    });
  }

  async listWarmLaunches(key: string): Promise<WarmLaunch[]> {
    return warmLaunchesOf((await this.db.collection(WARM_COLLECTION).doc(key).get()).data());
  }

  async recordWarmLaunch(key: string, id: string, runner: LaunchedRunner): Promise<boolean> {
    const ref = this.db.collection(WARM_COLLECTION).doc(key);
    return this.db.runTransaction(async (tx) => {
      const data = (await tx.get(ref)).data();
      if (!data?.launches?.[id]) return false;
      tx.update(ref, { [`launches.${id}`]: { ...data.launches[id], ...runner }, runnerNames: FieldValue.arrayUnion(runner.runnerName) });
      return true;
    });
  }

  async dropWarmLaunch(key: string, id: string): Promise<void> {
    const ref = this.db.collection(WARM_COLLECTION).doc(key);
    await this.db.runTransaction(async (tx) => {
      const data = (await tx.get(ref)).data();
      const launch = data?.launches?.[id];
      if (!launch) return;
      tx.update(ref, { [`launches.${id}`]: FieldValue.delete(), ...(launch.runnerName ? { runnerNames: FieldValue.arrayRemove(launch.runnerName) } : {}) });
    });
  }

  async takeWarmLaunch(key: string, id: string): Promise<WarmLaunch | undefined> {
    const ref = this.db.collection(WARM_COLLECTION).doc(key);
    return this.db.runTransaction(async (tx) => {
      const launch = warmLaunchesOf((await tx.get(ref)).data()).find((l) => l.id === id);
      if (!launch || launch.taken || launch.runnerName) return undefined;
      tx.update(ref, { [`launches.${id}.taken`]: true });
      return launch;
    });
  }

  async findWarmLaunch(runnerName: string): Promise<WarmLaunch | undefined> {
    const snapshot = await this.db.collection(WARM_COLLECTION).where("runnerNames", "array-contains", runnerName).limit(1).get();
    return snapshot.empty ? undefined : warmLaunchesOf(snapshot.docs[0]!.data()).find((l) => l.runnerName === runnerName);
  }

  async runsJob(runnerName: string): Promise<boolean> {
    const snapshot = await this.jobs.where("assignedRunnerName", "==", runnerName).where("state", "==", "running").limit(1).get();
    return !snapshot.empty;
  }

  async explanation(jobId: number, create?: Omit<Explanation, "checkRunId">, now = new Date()): Promise<{ created: boolean; explanation?: Explanation }> {
    const ref = this.db.collection(EXPLAINED_COLLECTION).doc(String(jobId));
    if (create) {
      try {
        // create() is atomic: of every delivery and pass explaining this job, one makes the check run.
        await ref.create({ ...create, at: now, expireAt: new Date(now.getTime() + DONE_RECORD_TTL_MS) });
        return { created: true, explanation: create };
      } catch (error) {
        if ((error as { code?: number }).code !== ALREADY_EXISTS) throw error;
      }
    }
    const data = (await ref.get()).data() as (Explanation & { at?: unknown; expireAt?: unknown }) | undefined;
    if (!data) return { created: false };
    const { at: _at, expireAt: _expireAt, ...explanation } = data;
    return { created: false, explanation };
  }

  async setExplanation(jobId: number, fields: Partial<Pick<Explanation, "reason" | "checkRunId">>): Promise<void> {
    await this.db.collection(EXPLAINED_COLLECTION).doc(String(jobId)).update(fields);
    // The job record (when Kumo made one) learns it has a check run, so its in_progress updates it.
    await this.jobs.doc(String(jobId)).update({ explained: true }).catch((error: { code?: number }) => {
      if (error.code !== NOT_FOUND) throw error;
    });
  }

  async dropExplanation(jobId: number): Promise<void> {
    await this.db.collection(EXPLAINED_COLLECTION).doc(String(jobId)).delete();
  }

  async getMark(name: string): Promise<Date | undefined> {
    const value = (await this.db.collection(STATE_COLLECTION).doc(name).get()).get("at");
    return value instanceof Timestamp ? value.toDate() : undefined;
  }

  async setMark(name: string, value: Date): Promise<void> {
    await this.db.collection(STATE_COLLECTION).doc(name).set({ at: value });
  }

  async takeRedelivery(guid: string, max: number, now = new Date()): Promise<boolean> {
    const ref = this.db.collection(REDELIVERIES_COLLECTION).doc(guid);
    return this.db.runTransaction(async (tx) => {
      const count = ((await tx.get(ref)).get("count") as number | undefined) ?? 0;
      if (count >= max) return false;
      // GitHub keeps deliveries 3 days; so does this counter (TTL on expireAt).
      tx.set(ref, { count: count + 1, at: now, expireAt: new Date(now.getTime() + 3 * DAY_MS) });
      return true;
    });
  }

  /** Applies `change` if claim `attempt` is still the record's latest; a later claim owns the record otherwise. */
  private async updateClaim(
    jobId: number,
    attempt: number,
    now: Date,
    change: (current: JobRecord) => Record<string, unknown>,
  ): Promise<void> {
    const ref = this.jobs.doc(String(jobId));
    // null deletes a field.
    const asUpdate = (fields: Record<string, unknown>) =>
      Object.fromEntries(Object.entries({ ...fields, updatedAt: now }).map(([k, v]) => [k, v === null ? FieldValue.delete() : v]));
    const own = this.ownClaims.get(jobId);
    this.ownClaims.delete(jobId);
    if (own && own.attempt === attempt) {
      try {
        // Unchanged since our claim: the record is exactly what we wrote.
        await ref.update(asUpdate(change(own.record)), { lastUpdateTime: own.writeTime });
        return;
      } catch (error) {
        if ((error as { code?: number }).code !== FAILED_PRECONDITION) throw error;
      }
    }
    await this.db.runTransaction(async (tx) => {
      const current = toRecord(await tx.get(ref));
      if (!current) throw new Error(`job ${jobId} has no record`);
      if (current.attempts !== attempt) return;
      tx.update(ref, asUpdate(change(current)));
    });
  }

  private remember(record: JobRecord, writeTime: Timestamp): void {
    // Bounded: an entry lives from a claim to its outcome, milliseconds apart, unless the launch crashed.
    if (this.ownClaims.size >= 10_000) this.ownClaims.delete(this.ownClaims.keys().next().value!);
    this.ownClaims.set(record.jobId, { attempt: record.attempts, writeTime, record });
  }

  async listReceivedSince<K extends keyof JobRecord>(since: Date, limit: number, fields: readonly K[]): Promise<Array<Pick<JobRecord, K>>> {
    // A range on one field, ordered by that field: served by the automatic single-field index, no composite index to deploy.
    const snapshot = await this.jobs.where("receivedAt", ">=", since).orderBy("receivedAt", "desc").select(...fields).limit(limit).get();
    return snapshot.docs.map((d) => convertTimestamps(d.data()) as Pick<JobRecord, K>);
  }
}

/** Firestore gives Timestamps back; the rest of Kumo speaks Date. */
export function toRecord(snapshot: DocumentSnapshot): JobRecord | undefined {
  const data = snapshot.data();
  return data ? (convertTimestamps(data) as JobRecord) : undefined;
}

function warmLaunchesOf(data: DocumentData | undefined): WarmLaunch[] {
  return Object.entries((data?.launches ?? {}) as Record<string, DocumentData>).map(([id, l]) => ({ id, ...(convertTimestamps(l) as Omit<WarmLaunch, "id">) }));
}

function convertTimestamps(data: DocumentData): DocumentData {
  return Object.fromEntries(
    Object.entries(data).map(([k, v]) => [k, v instanceof Timestamp ? v.toDate() : v]),
  );
}
