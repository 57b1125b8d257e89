import type { Call } from "./fakes/fake-server.js";
import type { Execution } from "./fakes/cloud-run.js";
import type { Rpc } from "./fakes/firestore-proxy.js";
import type { Registration } from "./fakes/github.js";
import type { Sent } from "./load.js";

export interface Percentiles {
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentiles, ms. */
export function percentiles(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]! : NaN);
  return { p50: at(50), p95: at(95), p99: at(99), max: sorted.length ? sorted[sorted.length - 1]! : NaN };
}

/** Endpoints a delivery may wait on without the job id in the request: one of each at most. */
const SHARED = ["token", "settings", "runnerGroups"];

export interface Overheads {
  /** Latency minus the fakes' configured latencies on the critical path (the issue's definition). */
  configured: number[];
  /** Minus what the fakes really held each call (their timer overshoot is then not charged to the app). */
  held: number[];
  /** Also minus the Firestore emulator's time on the critical path: the app's own time. */
  appOnly: number[];
}

/**
 * The app's own time per delivery. A job's own fake calls (JIT, runJob,
 * delete) belong to the delivery of that job in flight around them; when
 * several copies of one delivery are in flight (a storm), to the one answered
 * last, since the copy that claimed waits for the launch and the others stop
 * at the claim. Firestore RPCs name the job too; among copies they go to the
 * copy with the fewest so far (each copy makes its own claim), so storm
 * figures are approximate. Shared calls (token, settings, groups) count once
 * each when inside the delivery's window: concurrent deliveries wait on the same one.
 */
export function overheads(sent: Sent[], calls: Call[], rpcs: Rpc[], latencyOf: (endpoint: string) => number): Overheads {
  const byJob = new Map<number, Sent[]>();
  for (const s of sent) byJob.set(s.delivery.jobId, [...(byJob.get(s.delivery.jobId) ?? []), s]);
  const owed = new Map<Sent, { configured: number; held: number; firestore: number; rpcs: number }>(
    sent.map((s) => [s, { configured: 0, held: 0, firestore: 0, rpcs: 0 }]),
  );
  const around = (jobId: number, start: number, end: number) => (byJob.get(jobId) ?? []).filter((s) => s.start <= start && end <= s.end);
  const charge = (s: Sent, c: Call) => {
    const o = owed.get(s)!;
    o.configured += latencyOf(c.endpoint);
    o.held += c.end - c.start;
  };
  for (const c of calls) {
    if (c.jobId === undefined || SHARED.includes(c.endpoint)) continue;
    const owner = around(c.jobId, c.start, c.end).sort((a, b) => b.end - a.end)[0];
    if (owner) charge(owner, c);
  }
  for (const r of [...rpcs].sort((a, b) => a.start - b.start)) {
    if (r.jobId === undefined) continue;
    const owner = around(r.jobId, r.start, r.end).sort((a, b) => owed.get(a)!.rpcs - owed.get(b)!.rpcs || b.end - a.end)[0];
    if (!owner) continue;
    owed.get(owner)!.rpcs += 1;
    owed.get(owner)!.firestore += r.end - r.start;
  }
  const shared = calls.filter((c) => SHARED.includes(c.endpoint));
  for (const s of sent) {
    for (const endpoint of SHARED) {
      const c = shared.find((x) => x.endpoint === endpoint && s.start <= x.start && x.end <= s.end);
      if (c) charge(s, c);
    }
  }
  const answered = sent.filter((s) => s.status > 0);
  const latency = (s: Sent) => s.end - s.start;
  return {
    configured: answered.map((s) => latency(s) - owed.get(s)!.configured),
    held: answered.map((s) => latency(s) - owed.get(s)!.held),
    appOnly: answered.map((s) => latency(s) - owed.get(s)!.configured - owed.get(s)!.firestore),
  };
}

export interface Outcome {
  jobs: number;
  /** Cloud Run executions started for these jobs: one per runner container. */
  runnersCreated: number;
  jobsWithRunner: number;
  /** Jobs without a runner that the store holds as pending (left to reconcile). */
  pendingWithoutRunner: number;
  /** Jobs with neither a runner nor a pending record: lost. */
  unaccounted: number;
  /** Extra executions of a job or of one JIT config. */
  duplicates: number;
  registrations: number;
  registrationsDeleted: number;
  /** Registrations neither executed nor deleted: offline runners left behind. */
  orphanRegistrations: number;
  states: Record<string, number>;
}

export function outcome(jobIds: Set<number>, executions: Execution[], registrations: Iterable<Registration>, states: Map<number, string>): Outcome {
  const execsPerJob = new Map<number, number>();
  const execsPerRunner = new Map<number, number>();
  for (const e of executions) {
    if (e.jobId !== undefined) execsPerJob.set(e.jobId, (execsPerJob.get(e.jobId) ?? 0) + 1);
    if (e.runnerId !== undefined) execsPerRunner.set(e.runnerId, (execsPerRunner.get(e.runnerId) ?? 0) + 1);
  }
  let duplicates = 0;
  for (const n of execsPerJob.values()) duplicates += Math.max(0, n - 1);
  for (const n of execsPerRunner.values()) duplicates += Math.max(0, n - 1);
  const regs = [...registrations];
  const executed = new Set(executions.map((e) => e.runnerId));
  const stateTally: Record<string, number> = {};
  let jobsWithRunner = 0;
  let pendingWithoutRunner = 0;
  for (const id of jobIds) {
    const state = states.get(id) ?? "(no record)";
    stateTally[state] = (stateTally[state] ?? 0) + 1;
    if (execsPerJob.has(id)) jobsWithRunner++;
    else if (state === "pending") pendingWithoutRunner++;
  }
  return {
    jobs: jobIds.size,
    runnersCreated: executions.filter((e) => e.jobId !== undefined && jobIds.has(e.jobId)).length,
    jobsWithRunner,
    pendingWithoutRunner,
    unaccounted: jobIds.size - jobsWithRunner - pendingWithoutRunner,
    duplicates,
    registrations: regs.length,
    registrationsDeleted: regs.filter((r) => r.deleted).length,
    orphanRegistrations: regs.filter((r) => !r.deleted && !executed.has(r.runnerId)).length,
    states: stateTally,
  };
}

export const round = (n: number, digits = 1): number => (Number.isFinite(n) ? Math.round(n * 10 ** digits) / 10 ** digits : n);
