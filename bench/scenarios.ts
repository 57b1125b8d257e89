import { randomUUID } from "node:crypto";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import type { AppProcess } from "./app-process.js";
import { delivery, newJobId, send, sendAtRate, sendBounded, type Delivery } from "./load.js";
import { outcome, overheads, percentiles, round, type Outcome, type Percentiles } from "./metrics.js";
import { WEBHOOK_SECRET, type World } from "./world.js";

/** `github-limit`: Kumo's defaults (180 JIT/min, 3 s wait). `unpaced`: the pacer out of the way, to show the app's own throughput. */
export type PacerConfig = "github-limit" | "unpaced";

export interface Scenario {
  name: string;
  pacer: PacerConfig;
  instances: 1 | 2;
  jobs: number;
  /** Deliveries per job, same X-GitHub-Delivery (5 in a storm). */
  copies: number;
  send: { kind: "rate"; perSecond: number } | { kind: "bounded"; concurrency: number } | { kind: "at-once" };
  /**
   * Deliveries (distinct jobs) before the clock starts: token, settings, groups,
   * the gRPC channel and V8's JIT are then warm. One only under GitHub's limit,
   * so the JIT budget is still whole when the scenario starts.
   */
  warmup: number;
}

export interface ScenarioResult {
  scenario: Scenario;
  deliveries: number;
  concurrency: string;
  wallMs: number;
  /** After the last answer, until the app made no upstream call for 1 s (work left running after a 202). */
  settleMs: number;
  statuses: Record<string, number>;
  latency: Percentiles;
  overhead: Percentiles;
  /** Overhead when subtracting the time the fakes really held each call. */
  overheadHeld: Percentiles;
  /** Overhead minus the Firestore emulator's time on the critical path too: the app's own time. */
  overheadAppOnly: Percentiles;
  /** CPU used per delivery (user + system), ms: the app (all instances), the Firestore emulator, the bench (fakes, proxy, load). */
  cpuMsPerDelivery: { app: number; emulator: number; bench: number };
  /** Configured fake latency on a launched job's critical path (JIT + runJob), ms. */
  criticalPathMs: number;
  githubCalls: Record<string, number>;
  cloudRunCalls: Record<string, number>;
  firestoreRpcs: Record<string, { calls: number; ms: number }>;
  /** Non-JIT GitHub calls after the first answered delivery (0 = settings, groups, token cached). */
  githubNonJitAfterFirst: number;
  outcome: Outcome;
  peakRssMiB: number[];
  benchLoopDelayP99Ms: number;
  appLogs: Record<string, number>;
}

const UNPACED = { KUMO_JIT_PER_MINUTE: "10000" };

export function scenarios(quick: boolean): Scenario[] {
  const n = quick ? 100 : 500;
  const steady = quick ? { perSecond: 10, seconds: 5 } : { perSecond: 20, seconds: 30 };
  const list: Scenario[] = [];
  for (const pacer of ["unpaced", "github-limit"] as const) {
    const warmup = pacer === "unpaced" ? (quick ? 50 : 200) : 1;
    list.push(
      { name: "steady", pacer, instances: 1, jobs: steady.perSecond * steady.seconds, copies: 1, send: { kind: "rate", perSecond: steady.perSecond }, warmup },
      { name: "concurrency-50", pacer, instances: 1, jobs: n, copies: 1, send: { kind: "bounded", concurrency: 50 }, warmup },
      { name: "burst", pacer, instances: 1, jobs: n, copies: 1, send: { kind: "at-once" }, warmup },
    );
    // A new instance hit by a burst: every cache and V8's JIT cold.
    if (pacer === "unpaced") list.push({ name: "burst-cold", pacer, instances: 1, jobs: n, copies: 1, send: { kind: "at-once" }, warmup: 0 });
    list.push(
      { name: "storm", pacer, instances: 1, jobs: n, copies: 5, send: { kind: "at-once" }, warmup },
      { name: "two-instances", pacer, instances: 2, jobs: n, copies: 5, send: { kind: "at-once" }, warmup },
    );
  }
  return list;
}

export async function runScenario(world: World, s: Scenario): Promise<ScenarioResult> {
  const project = `kumo-bench-${s.name}-${s.pacer}-${randomUUID().slice(0, 6)}`;
  const apps: AppProcess[] = [];
  try {
    for (let i = 0; i < s.instances; i++) apps.push(await world.startApp(world.kumoServer, project, s.pacer === "unpaced" ? UNPACED : {}));
    await Promise.all(apps.map((a) => a.ready()));
    const ports = apps.map((a) => a.port);
    for (const [i, port] of ports.entries()) {
      if (s.warmup === 0) break;
      const first = await send(delivery(newJobId(), WEBHOOK_SECRET, i), port, false);
      if (first.status !== 200) throw new Error(`warm-up delivery answered ${first.status} ${first.error ?? ""}:\n${apps[i]!.output()}`);
      const rest = Array.from({ length: s.warmup - 1 }, () => delivery(newJobId(), WEBHOOK_SECRET, 0));
      await sendBounded(rest, [port], 10);
    }
    world.resetCounters();

    // Copies of a delivery are adjacent and alternate between instances, the worst case for the claim race.
    const deliveries: Delivery[] = [];
    for (let j = 0; j < s.jobs; j++) {
      const jobId = newJobId();
      const guid = randomUUID();
      for (let k = 0; k < s.copies; k++) deliveries.push(delivery(jobId, WEBHOOK_SECRET, (j + k) % s.instances, guid));
    }
    const cpuBefore = { app: apps.reduce((n, a) => n + a.cpuMs(), 0), emulator: world.emulatorCpuMs(), bench: process.cpuUsage() };
    const loop = monitorEventLoopDelay({ resolution: 5 });
    loop.enable();
    const started = performance.now();
    const sent =
      s.send.kind === "rate"
        ? await sendAtRate(deliveries, ports, s.send.perSecond)
        : await sendBounded(deliveries, ports, s.send.kind === "bounded" ? s.send.concurrency : deliveries.length);
    const wallMs = performance.now() - started;
    const benchCpu = process.cpuUsage(cpuBefore.bench);
    const cpu = {
      app: apps.reduce((n, a) => n + a.cpuMs(), 0) - cpuBefore.app,
      emulator: world.emulatorCpuMs() - cpuBefore.emulator,
      bench: (benchCpu.user + benchCpu.system) / 1000,
    };
    loop.disable();
    const settleMs = await settle(world);

    const jobIds = new Set(deliveries.map((d) => d.jobId));
    const statuses: Record<string, number> = {};
    for (const r of sent) {
      const key = r.status ? String(r.status) : `error ${r.error}`;
      statuses[key] = (statuses[key] ?? 0) + 1;
    }
    const latencyOf = (endpoint: string) => world.latencyOf(endpoint);
    const ovh = overheads(sent, [...world.github.calls, ...world.cloudRun.calls], world.firestore.rpcs, latencyOf);
    const firstAnswer = Math.min(...sent.map((r) => r.end));
    const states = await world.jobStates(project);
    return {
      scenario: s,
      deliveries: deliveries.length,
      concurrency: s.send.kind === "rate" ? `${s.send.perSecond}/s open` : s.send.kind === "bounded" ? String(s.send.concurrency) : `${deliveries.length} at once`,
      wallMs: round(wallMs),
      settleMs: round(settleMs),
      statuses,
      latency: percentiles(sent.filter((r) => r.status > 0).map((r) => r.end - r.start)),
      overhead: percentiles(ovh.configured),
      overheadHeld: percentiles(ovh.held),
      overheadAppOnly: percentiles(ovh.appOnly),
      cpuMsPerDelivery: { app: round(cpu.app / deliveries.length, 2), emulator: round(cpu.emulator / deliveries.length, 2), bench: round(cpu.bench / deliveries.length, 2) },
      criticalPathMs: latencyOf("jit") + latencyOf("runJob"),
      githubCalls: world.github.counts(),
      cloudRunCalls: world.cloudRun.counts(),
      firestoreRpcs: world.firestore.counts(),
      githubNonJitAfterFirst: world.github.calls.filter((c) => c.endpoint !== "jit" && c.start > firstAnswer).length,
      outcome: outcome(jobIds, world.cloudRun.executions, world.github.registrations.values(), states),
      peakRssMiB: apps.map((a) => round(a.peakRssMiB())),
      benchLoopDelayP99Ms: round(loop.percentile(99) / 1e6),
      appLogs: tally(apps.flatMap((a) => [...a.logTally])),
    };
  } finally {
    await Promise.all(apps.map((a) => a.stop()));
  }
}

/**
 * Waits until no fake or Firestore call happened for 1 s (30 s at most): a
 * delivery answered 202 "still processing" after 9 s goes on in the background,
 * and deleted registrations may land after the answer. Counted only then.
 */
async function settle(world: World): Promise<number> {
  const started = performance.now();
  const activity = () => world.github.calls.length + world.cloudRun.calls.length + world.firestore.rpcs.length;
  let last = activity();
  let quietSince = performance.now();
  while (performance.now() - started < 30_000) {
    await new Promise((r) => setTimeout(r, 250));
    const now = activity();
    if (now !== last) {
      last = now;
      quietSince = performance.now();
    } else if (performance.now() - quietSince >= 1000) {
      break;
    }
  }
  return Math.max(0, quietSince - started);
}

function tally(entries: Array<[string, number]>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, n] of entries) out[k] = (out[k] ?? 0) + n;
  return out;
}
