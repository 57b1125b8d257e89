// Warm pool pickup-latency model (issue 14): a deterministic discrete-event simulation in
// virtual time, seeded. No process, no clock, no network: a MODEL of GitHub, Cloud Run and
// Kumo's reconcile pass, whose delays are stated assumptions (bench/README.md gives their
// sources). `npm run bench -- --only=warm [--quick] [--warm=onlineS=55,reconcileS=30,…]`
import { WarmPoolSchema, warmTarget, type WarmPool } from "../app/warm-pool/schedule.js";
import { percentiles, round } from "./metrics.js";

export interface Assumptions {
  /** Queued → the job's execution started: webhook delivery + Kumo's fast path (JIT config, runJob), s. */
  launchS: number;
  /** Execution started → runner online and listening: Cloud Run start (image pull) + runner boot, s. */
  onlineS: number;
  /** GitHub: a queued job and an idle runner with its labels → assigned, s. */
  dispatchS: number;
  /** How long each job runs; its runner then exits. */
  jobMinutes: number;
  /** Reconcile period, s. */
  reconcileS: number;
  /** A launch not yet online counts toward the pool this long, s. */
  startGraceS: number;
  /** Reconcile retires an idle runner whose execution is this old. */
  maxIdleMinutes: number;
  /** GitHub's runner list shows a runner that just took a job as idle for this long, s. */
  busyLagS: number;
  /** What reconcile counts toward the target besides idle online runners (see `Counting`). */
  counting: Counting;
}

/**
 * `booting`, as app/warm-pool/plan.ts does: every runner not yet online, younger than the start
 * grace, that no waiting job needs (its own job is waiting) — so the runner launched for a job a
 * warm runner took counts at once. `warm-launches`: only the pool's own launches not yet online.
 */
export type Counting = "booting" | "warm-launches";

export const ASSUMPTIONS: Assumptions = {
  launchS: 2,
  onlineS: 40,
  dispatchS: 1,
  jobMinutes: 5,
  reconcileS: 60,
  startGraceS: 300,
  maxIdleMinutes: 20,
  busyLagS: 30,
  counting: "booting",
};

/** mulberry32: a small seeded generator, so every run prints the same table. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Workload {
  name: string;
  /** Queue times, s after the window opens, ascending. */
  arrivals(random: () => number, windowS: number): number[];
}

/** `size` jobs queued at once (a matrix), once an hour at a random minute. */
export const bursts = (size: number): Workload => ({
  name: `bursts of ${size}, 1/h`,
  arrivals: (random, windowS) => Array.from({ length: Math.floor(windowS / 3600) }, (_, h) => Array<number>(size).fill(h * 3600 + Math.floor(random() * 3600))).flat(),
});

/** A Poisson stream, one job every `meanS` on average. */
export const trickle = (meanS: number): Workload => ({
  name: `trickle, 1 per ${meanS / 60} min`,
  arrivals: (random, windowS) => {
    const out: number[] = [];
    for (let t = -Math.log(1 - random()) * meanS; t < windowS; t += -Math.log(1 - random()) * meanS) out.push(t);
    return out;
  },
});

type State = "starting" | "idle" | "busy" | "gone";
interface Job {
  queuedAt: number;
  assigned: boolean;
}
interface Runner {
  /** The job it was launched for; undefined: a warm launch. */
  job: Job | undefined;
  launchedAt: number;
  onlineAt: number;
  busyAt: number;
  state: State;
}

export interface RunInput {
  pool: WarmPool | undefined;
  /** Virtual time 0, a Date: warmTarget reads the schedule at start + t. */
  start: Date;
  /** Jobs' queue times, s. */
  arrivals: number[];
  endS: number;
  /** GitHub removes a runner idle this long; undefined: never. */
  reapAfterS: number | undefined;
  /** First reconcile pass, s (0 ≤ phase < reconcileS). */
  phaseS: number;
  /** Where the window opens and closes, s, for the at-target share. */
  window: [number, number];
  a: Assumptions;
}

export interface RunResult {
  /** Queued → assigned, s, per job. */
  waits: number[];
  /** Jobs given to a runner that was online before they were queued. */
  warmHits: number;
  idleS: number;
  registrations: number;
  reaped: number;
  retired: number;
  /** Samples (every 10 s inside the window) with at least the target idle online, of all. */
  atTarget: [number, number];
}

// warmTarget formats the time in the pool's zone (Intl): read once per pool and minute.
const targets = new WeakMap<WarmPool, Map<number, number>>();
function targetAt(pool: WarmPool | undefined, ms: number): number {
  if (!pool) return 0;
  const minute = Math.floor(ms / 60_000);
  let byMinute = targets.get(pool);
  if (!byMinute) targets.set(pool, (byMinute = new Map()));
  let n = byMinute.get(minute);
  if (n === undefined) byMinute.set(minute, (n = warmTarget(pool, new Date(minute * 60_000))));
  return n;
}

/** One simulated day: events in virtual time, ties in scheduling order. */
export function run(input: RunInput): RunResult {
  const { a, pool } = input;
  // Pending events, sorted by time; ties run in the order they were scheduled.
  const events: Array<{ t: number; fn: () => void }> = [];
  let now = 0;
  const at = (t: number, fn: () => void) => {
    let lo = 0;
    for (let hi = events.length; lo < hi; ) {
      const mid = (lo + hi) >> 1;
      if (events[mid]!.t <= t) lo = mid + 1;
      else hi = mid;
    }
    events.splice(lo, 0, { t, fn });
  };

  const out: RunResult = { waits: [], warmHits: 0, idleS: 0, registrations: 0, reaped: 0, retired: 0, atTarget: [0, 0] };
  const live = new Set<Runner>();
  const waiting: Job[] = []; // jobs without a runner, FIFO
  const target = (t: number) => targetAt(pool, input.start.getTime() + t * 1000);
  const leaveIdle = (r: Runner) => (out.idleS += now - r.onlineAt);
  const remove = (r: Runner) => {
    if (r.state === "idle") leaveIdle(r);
    r.state = "gone";
    live.delete(r);
  };

  const launch = (job: Job | undefined) => {
    const r: Runner = { job, launchedAt: now, onlineAt: NaN, busyAt: NaN, state: "starting" };
    live.add(r);
    out.registrations++;
    at(now + a.onlineS, () => online(r));
    return r;
  };
  const online = (r: Runner) => {
    if (r.state !== "starting") return;
    r.state = "idle";
    r.onlineAt = now;
    if (input.reapAfterS !== undefined)
      at(now + input.reapAfterS, () => {
        if (r.state !== "idle") return;
        remove(r);
        out.reaped++;
      });
    match();
  };
  // GitHub: FIFO jobs, the longest-idle runner first.
  const match = () => {
    while (waiting.length) {
      let r: Runner | undefined;
      for (const x of live) if (x.state === "idle" && (!r || x.onlineAt < r.onlineAt)) r = x;
      if (!r) return;
      const job = waiting.shift()!;
      job.assigned = true;
      const { queuedAt } = job;
      leaveIdle(r);
      r.state = "busy";
      r.busyAt = now;
      out.waits.push(now + a.dispatchS - queuedAt);
      if (r.onlineAt <= queuedAt) out.warmHits++;
      const busy = r;
      at(now + a.dispatchS + a.jobMinutes * 60, () => remove(busy));
    }
  };

  // Kumo's reconcile pass for this spec, as GitHub's runner list and Kumo's records show it.
  const reconcile = () => {
    const want = target(now);
    const listedIdle = [...live].filter((r) => r.state === "idle" || (r.state === "busy" && now - r.busyAt < a.busyLagS));
    // DELETE of a busy runner fails (422): it is then known busy and not counted.
    const retire = (r: Runner) => {
      if (r.state !== "idle") return false;
      remove(r);
      out.retired++;
      return true;
    };
    // Too old to still finish the longest job inside the task timeout: retired (or found busy).
    const aged = listedIdle.filter((r) => now - r.launchedAt >= a.maxIdleMinutes * 60);
    for (const r of aged) retire(r);
    let idle = listedIdle.filter((r) => !aged.includes(r));
    if (idle.length > want) {
      const surplus = [...idle].sort((x, y) => x.launchedAt - y.launchedAt).slice(0, idle.length - want);
      for (const r of surplus) retire(r);
      idle = idle.filter((r) => !surplus.includes(r));
    }
    const young = (r: Runner) => r.state === "starting" && now - r.launchedAt < a.startGraceS;
    const starting = [...live].filter(young);
    const booting = starting.filter((r) => (a.counting === "booting" ? !(r.job && !r.job.assigned) : !r.job)).length;
    // Renewed one pass ahead (app/warm-pool/plan.ts): a kept runner within a period of maxIdleMinutes is replaced now.
    const expiring = idle.filter((r) => now - r.launchedAt >= a.maxIdleMinutes * 60 - a.reconcileS).length;
    let deficit = want - idle.length + expiring - booting;
    // The app counts its own launches under way (the pool's document) as booting: the deficit is all it adds.
    for (; deficit > 0; deficit--) launch(undefined);
    if (now + a.reconcileS <= input.endS) at(now + a.reconcileS, reconcile);
  };

  for (const q of input.arrivals)
    at(q, () => {
      const job: Job = { queuedAt: now, assigned: false };
      waiting.push(job);
      at(now + a.launchS, () => launch(job));
      match();
    });
  at(input.phaseS, reconcile);
  for (let t = input.window[0]; t < input.window[1]; t += 10)
    at(t, () => {
      const want = target(now);
      if (want === 0) return;
      out.atTarget[1]++;
      if ([...live].filter((r) => r.state === "idle").length >= want) out.atTarget[0]++;
    });

  while (events.length && events[0]!.t <= input.endS) {
    const e = events.shift()!;
    now = e.t;
    e.fn();
  }
  for (const r of live) if (r.state === "idle") leaveIdle(r);
  return out;
}

/** The modelled schedule: a pool of `size` on weekdays 09:00–17:00 Asia/Tokyo (undefined for 0). */
export const poolOf = (size: number, maxIdleMinutes: number): WarmPool | undefined =>
  size === 0 ? undefined : WarmPoolSchema.parse({ size, maxIdleMinutes, timeZone: "Asia/Tokyo", windows: [{ days: ["mon", "tue", "wed", "thu", "fri"], from: "09:00", to: "17:00" }] });

export interface Row {
  workload: string;
  reaping: string;
  pool: number;
  jobs: number;
  p50: number;
  p95: number;
  max: number;
  warmHitPct: number;
  idleMinPerH: number;
  regPerH: number;
  churnPerH: number;
  reapedPerH: number;
  atTargetPct: number;
}

export interface ModelOptions {
  a: Assumptions;
  days: number;
  pools: number[];
  workloads: Workload[];
  /** Minutes; undefined: GitHub never reaps an idle runner. */
  reaping: Array<number | undefined>;
}

// Monday 2026-12-07, 08:50 in Tokyo: the window opens 10 minutes in; it closes 8 h later; 30 minutes after.
const DAY_START = new Date("2026-12-06T23:50:00Z");
const OPEN_S = 600;
const WINDOW_S = 8 * 3600;

/** Every combination over `days` simulated days (seeds 1…days); the same arrivals and reconcile phase for every pool size. */
export function model(o: ModelOptions): Row[] {
  const rows: Row[] = [];
  for (const w of o.workloads)
    for (const reap of o.reaping)
      for (const size of o.pools) {
        const pool = poolOf(size, o.a.maxIdleMinutes);
        const all: RunResult[] = [];
        for (let day = 1; day <= o.days; day++) {
          const random = rng(day * 7919 + o.workloads.indexOf(w));
          const phaseS = Math.floor(random() * o.a.reconcileS);
          const arrivals = w.arrivals(random, WINDOW_S).map((t) => OPEN_S + t);
          all.push(
            run({ pool, start: DAY_START, arrivals, endS: OPEN_S + WINDOW_S + 1800, reapAfterS: reap === undefined ? undefined : reap * 60, phaseS, window: [OPEN_S, OPEN_S + WINDOW_S], a: o.a }),
          );
        }
        const hours = (o.days * WINDOW_S) / 3600;
        const sum = (f: (r: RunResult) => number) => all.reduce((n, r) => n + f(r), 0);
        const waits = all.flatMap((r) => r.waits);
        const p = percentiles(waits);
        const samples = sum((r) => r.atTarget[1]);
        rows.push({
          workload: w.name,
          reaping: reap === undefined ? "never" : `after ${reap} min`,
          pool: size,
          jobs: waits.length,
          p50: p.p50,
          p95: p.p95,
          max: p.max,
          warmHitPct: (100 * sum((r) => r.warmHits)) / waits.length,
          idleMinPerH: sum((r) => r.idleS) / 60 / hours,
          regPerH: sum((r) => r.registrations) / hours,
          churnPerH: sum((r) => r.reaped + r.retired) / hours,
          reapedPerH: sum((r) => r.reaped) / hours,
          atTargetPct: samples ? (100 * sum((r) => r.atTarget[0])) / samples : NaN,
        });
      }
  return rows;
}

/** Churn the formula expects of an otherwise idle pool: size × 60 / min(maxIdleMinutes, reaping). */
export const churnFormula = (size: number, maxIdleMinutes: number, reapMinutes: number | undefined) => (size * 60) / Math.min(maxIdleMinutes, reapMinutes ?? Infinity);

/** Overrides from `--warm=onlineS=55,reconcileS=30,counting=warm-launches`. */
export function parseAssumptions(spec: string | undefined, base: Assumptions = ASSUMPTIONS): Assumptions {
  const a = { ...base };
  for (const pair of spec?.split(",").filter(Boolean) ?? []) {
    const [k, v] = pair.split("=");
    if (k === "counting" && (v === "booting" || v === "warm-launches")) a.counting = v;
    else if (k && k !== "counting" && k in a && v !== undefined && Number.isFinite(Number(v))) (a as unknown as Record<string, number>)[k] = Number(v);
    else throw new Error(`--warm: expected key=value with key in ${Object.keys(a).join(", ")} (counting=booting|warm-launches)`);
  }
  return a;
}

export function render(rows: Row[], o: ModelOptions): string {
  const a = o.a;
  const head = ["workload", "GitHub reaps idle", "pool", "queued → assigned p50 / p95 / max s", "on a warm runner", "idle runner-min/h", "JIT registrations/h", "churn/h (reaped)", "pool at target"];
  const cells = rows.map((r) => [
    r.workload,
    r.reaping,
    String(r.pool),
    `${round(r.p50)} / ${round(r.p95)} / ${round(r.max)}`,
    `${round(r.warmHitPct)} %`,
    String(round(r.idleMinPerH)),
    String(round(r.regPerH)),
    `${round(r.churnPerH)} (${round(r.reapedPerH)})`,
    Number.isNaN(r.atTargetPct) ? "–" : `${round(r.atTargetPct)} %`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: string[]) => `| ${c.map((x, i) => (i < 2 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join(" | ")} |`;
  const table = [line(head), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...cells.map(line)].join("\n");
  return [
    "Warm pool: pickup latency — a MODEL (virtual time, seeded), not a measurement. It assumes:",
    `- queued → the job's execution started ${a.launchS} s (webhook + Kumo's launch); execution started → runner online ${a.onlineS} s`,
    `  (Cloud Run start + runner boot; bench/README.md gives the sources); GitHub assigns ${a.dispatchS} s after a matching idle runner and job meet;`,
    `  each job runs ${a.jobMinutes} min; one spec, labels always match; FIFO jobs, longest-idle runner first.`,
    `- reconcile every ${a.reconcileS} s: retire idle runners whose execution is ≥ ${a.maxIdleMinutes} min old (maxIdleMinutes) or beyond the target,`,
    `  then launch target − idle online − ${a.counting === "booting" ? "runners booting (not yet online) that no waiting job needs" : "the pool's own launches not yet online"}, younger than ${a.startGraceS} s`,
    `  (start grace), as app/warm-pool/plan.ts and`,
    `  app/reconcile/warm-pool.ts do; GitHub lists a runner that just took a job as idle for ${a.busyLagS} s (its DELETE then fails).`,
    `- pool on weekdays 09:00–17:00 Asia/Tokyo (warmTarget of app/warm-pool/schedule.ts); jobs only inside it; ${o.days} simulated days of 8 h per row.`,
    "- churn = runners gone without a job (retired by reconcile, or reaped by GitHub); pool at target = share of 10 s samples in the window",
    "  with at least the target idle online. Per hour = per hour of window.",
    "",
    table,
  ].join("\n");
}

export const WARM_SECTION = "warm";

/** The table `npm run bench -- --only=warm` prints. */
export function warmPoolSection(quick: boolean, a: Assumptions = ASSUMPTIONS): { text: string; rows: Row[]; options: ModelOptions } {
  const options: ModelOptions = { a, days: quick ? 5 : 30, pools: [0, 2, 5], workloads: [bursts(20), trickle(120)], reaping: [undefined, 5] };
  const rows = model(options);
  return { text: render(rows, options), rows, options };
}
