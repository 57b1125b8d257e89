// The launch queue against GitHub's JIT limit: a 256-job matrix fan-out delivered at once to
// three server processes sharing one Firestore project, with a reconcile pass started during
// it, once through the Cloud Tasks launch queue and once inline (no queue variables).
// GitHub's fake answers generate-jitconfig 403 + retry-after past 180 registrations in 60 s.
// `npm run build && node dist/bench/launch-queue.js [--jobs=256] [--only=queue,inline]`
import { createHmac, randomUUID } from "node:crypto";
import { Agent, createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { availableParallelism, loadavg } from "node:os";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { killAllChildren, type AppProcess } from "./app-process.js";
import { FakeCloudTasks } from "./fakes/cloud-tasks.js";
import { queuedPayload, send, type Delivery, type Sent } from "./load.js";
import { percentiles, round } from "./metrics.js";
import { WEBHOOK_SECRET, World } from "./world.js";

const { values: args } = parseArgs({
  options: {
    jobs: { type: "string", default: "256" },
    instances: { type: "string", default: "3" },
    /** GitHub's secondary limit on JIT registrations per window, and the app's KUMO_JIT_PER_MINUTE. */
    budget: { type: "string", default: "180" },
    /** The queue's maxDispatchesPerSecond (deploy/deploy.sh: 2.5); burst ceil(rate). */
    rate: { type: "string", default: "2.5" },
    /** Inline: reconcile passes every this many seconds, until every job is launched or --inline-deadline. */
    "reconcile-every": { type: "string", default: "10" },
    "inline-deadline": { type: "string", default: "150" },
    "queue-deadline": { type: "string", default: "200" },
    only: { type: "string" },
  },
});
const JOBS = Number(args.jobs);
const INSTANCES = Number(args.instances);
const BUDGET = Number(args.budget);
const WINDOW_MS = 60_000;
const RATE = Number(args.rate);
const BURST = Math.ceil(RATE);
const RECONCILE_EVERY_MS = Number(args["reconcile-every"]) * 1000;
const INLINE_DEADLINE_MS = Number(args["inline-deadline"]) * 1000;
const QUEUE_DEADLINE_MS = Number(args["queue-deadline"]) * 1000;
/** The first reconcile pass starts this long after the first webhook: while the burst is still being answered. */
const FIRST_PASS_AFTER_MS = 500;
const PATHS = (args.only?.split(",") ?? ["queue", "inline"]) as Array<"queue" | "inline">;

const QUEUE = "projects/kumo-bench/locations/us-central1/queues/kumo-launch";
const ACCOUNT = "kumo-app@kumo-bench.iam.gserviceaccount.com";
const RECONCILE = new URL("../app/entry/reconcile-cli.js", import.meta.url).pathname;
/** Roughly GitHub's and Cloud Run's answer times from a nearby region, as `npm run bench` uses. */
const LATENCY = { token: 50, settings: 40, runnerGroups: 40, jit: 30, deleteRunner: 30, runJob: 50 };

process.env.METADATA_SERVER_DETECTION ??= "none";

interface Pass {
  at: number;
  code: number | null;
  ms: number;
  launched: number;
  summary: string[];
}

interface PathResult {
  path: "queue" | "inline";
  sent: Sent[];
  t0: number;
  jitOk: number[];
  jitLimited: number;
  jitOther: Record<string, number>;
  runJobEnds: Map<number, number>;
  executionsPerJob: Map<number, number>;
  registrationsWithoutExecution: number;
  states: Map<string, number>;
  passes: Pass[];
  redeliveries: number;
  tasks?: ReturnType<FakeCloudTasks["counts"]> & { routeAnswers: Record<string, number>; perInstance: number[] };
  logTally: Map<string, number>;
  otherCalls: Record<string, number>;
  endedBy: string;
}

/** Cloud Run's front end for the service: spreads requests (task dispatches, redeliveries) over the instances in turn. */
class RoundRobin {
  ports: number[] = [];
  readonly perInstance: number[] = [];
  private next = 0;
  private readonly agent = new Agent({ keepAlive: true });
  private readonly server: Server;
  port = 0;

  constructor() {
    this.server = createServer((req, res) => {
      const i = this.next++ % this.ports.length;
      this.perInstance[i] = (this.perInstance[i] ?? 0) + 1;
      const { connection: _c, ...headers } = req.headers;
      const upstream = request({ host: "127.0.0.1", port: this.ports[i], method: req.method, path: req.url, headers, agent: this.agent }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on("error", (e) => (res.headersSent ? res.destroy() : res.writeHead(502).end(String(e))));
      req.pipe(upstream);
    });
    this.server.keepAliveTimeout = 60_000;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async close(): Promise<void> {
    this.agent.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Warn and error lines of a process logging JSON (LOG_FORMAT=json: Cloud Logging's `severity`, `message`), by message without ids. */
function tallyLogs(proc: AppProcess): Map<string, number> {
  const tally = new Map<string, number>();
  let pending = "";
  const onData = (chunk: Buffer) => {
    pending += chunk.toString("utf8");
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      let key: string | undefined;
      try {
        const entry = JSON.parse(line) as { severity?: string; level?: number; message?: string; msg?: string };
        const severity = entry.severity ?? (entry.level === undefined ? "" : entry.level >= 50 ? "ERROR" : entry.level >= 40 ? "WARNING" : "INFO");
        if (severity === "WARNING" || severity === "ERROR" || severity === "CRITICAL") {
          key = `${severity.toLowerCase()}: ${String(entry.message ?? entry.msg).split("\n")[0]!.replace(/\d{3,}/g, "N").slice(0, 140)}`;
        }
      } catch {
        if (line.trim()) key = `raw: ${line.slice(0, 140)}`;
      }
      if (key) tally.set(key, (tally.get(key) ?? 0) + 1);
    }
  };
  proc.child.stdout!.on("data", onData);
  proc.child.stderr!.on("data", onData);
  return tally;
}

/** A queued delivery of job `jobId`, created now (so the app's "waited long" explanations do not fire). */
function queuedDelivery(jobId: number, instance: number, labels = ["kumo", "small"]): Delivery {
  const payload = queuedPayload(jobId);
  Object.assign(payload.workflow_job as Record<string, unknown>, { labels, created_at: new Date().toISOString() });
  const body = Buffer.from(JSON.stringify(payload));
  return { guid: randomUUID(), jobId, body, signature: `sha256=${createHmac("sha256", WEBHOOK_SECRET).update(body).digest("hex")}`, instance };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reconcile processes running now. */
const passesRunning = new Set<AppProcess>();

/** One reconcile pass as a process (reconcile-cli.js), its summary lines kept. */
async function reconcilePass(world: World, project: string, extra: Record<string, string>, t0: number): Promise<Pass> {
  const at = performance.now() - t0;
  const proc: AppProcess = await world.startApp(RECONCILE, project, { ...extra, LOG_LEVEL: "info" });
  passesRunning.add(proc);
  proc.child.once("exit", () => passesRunning.delete(proc));
  const summary: string[] = [];
  let pending = "";
  proc.child.stdout!.on("data", (chunk: Buffer) => {
    pending += chunk.toString("utf8");
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      try {
        const entry = JSON.parse(line) as { msg?: string; message?: string };
        const msg = String(entry.message ?? entry.msg ?? "");
        if (/^(capacity|unfinished launches|launches that never came up|stale runners|lost webhooks): /.test(msg) || /^reconcile pass|ERROR/.test(msg)) summary.push(msg);
      } catch {
        // not a log line
      }
    }
  });
  const code = await new Promise<number | null>((resolve) => {
    if (proc.child.exitCode !== null) resolve(proc.child.exitCode);
    proc.child.once("exit", (c) => resolve(c));
  });
  const launched = Number(/launched=(\d+)/.exec(summary.find((s) => s.startsWith("unfinished launches")) ?? "")?.[1] ?? 0);
  if (code !== 0) summary.push(...proc.output().split("\n").filter((l) => /error/i.test(l)).slice(-3));
  return { at, code, ms: performance.now() - t0 - at, launched, summary };
}

/** Most timestamps (ms) in any window of `windowMs`. */
function maxInWindow(times: number[], windowMs: number): number {
  const t = [...times].sort((a, b) => a - b);
  let best = 0;
  for (let i = 0, j = 0; i < t.length; i++) {
    while (t[i]! - t[j]! >= windowMs) j++;
    best = Math.max(best, i - j + 1);
  }
  return best;
}

async function runPath(world: World, path: "queue" | "inline", tasks: FakeCloudTasks | undefined, firstJobId: number): Promise<PathResult> {
  const project = `kumo-bench-lq-${path}-${randomUUID().slice(0, 8)}`;
  const front = await new RoundRobin().listen();
  const extra: Record<string, string> =
    path === "queue"
      ? {
          KUMO_LAUNCH_QUEUE: QUEUE,
          KUMO_TASKS_URL: `http://127.0.0.1:${front.port}/api/kumo/launch`,
          KUMO_TASKS_SERVICE_ACCOUNT: ACCOUNT,
          KUMO_OIDC_CERTS_URL: tasks!.certsUrl,
          CLOUD_TASKS_API_ENDPOINT: tasks!.url,
          KUMO_JIT_PER_MINUTE: String(BUDGET),
          LOG_FORMAT: "json",
        }
      : { KUMO_JIT_PER_MINUTE: String(BUDGET), LOG_FORMAT: "json" };
  const apps: AppProcess[] = [];
  try {
    for (let i = 0; i < INSTANCES; i++) apps.push(await world.startApp(world.kumoServer, project, extra));
    await Promise.all(apps.map((a) => a.ready()));
    front.ports = apps.map((a) => a.port);
    world.github.webhook = { url: `http://127.0.0.1:${front.port}/api/github/webhooks`, secret: WEBHOOK_SECRET };

    const tallies = apps.map(tallyLogs);
    // Warm-up, as `npm run bench` does: one job per instance, launched (through the queue on that path:
    // the Cloud Tasks client, the OIDC certs and the launch route are warm too). Then the counters, the
    // queue and GitHub's JIT window start afresh, so the burst meets the whole budget.
    const warm = apps.map((_, i) => firstJobId - 1 - i);
    for (const id of warm) world.github.setJob(id, { status: "queued" });
    await Promise.all(apps.map((a, i) => send(queuedDelivery(warm[i]!, i), a.port, false)));
    if (tasks) await tasks.settled(30_000);
    await world.github.settled();
    world.resetCounters();
    tasks?.reset();
    for (const t of tallies) t.clear();
    front.perInstance.length = 0;

    const ids = Array.from({ length: JOBS }, (_, i) => firstJobId + i);
    for (const id of ids) world.github.setJob(id, { status: "queued" });
    const deliveries = ids.map((id, i) => queuedDelivery(id, i % INSTANCES));
    const launchedJobs = () => new Set(world.cloudRun.executions.filter((e) => e.jobId !== undefined && ids.includes(e.jobId)).map((e) => e.jobId)).size;

    // The fan-out: every delivery at once; GitHub records each attempt as it was answered.
    const t0 = performance.now();
    const passes: Array<Promise<Pass>> = [];
    const burst = Promise.all(
      deliveries.map(async (d) => {
        const r = await send(d, apps[d.instance]!.port, false, 30_000);
        const ok = r.status >= 200 && r.status < 300;
        world.github.recordDelivery({
          event: "workflow_job",
          payload: d.body.toString("utf8"),
          guid: d.guid,
          status: ok ? "OK" : r.status ? `Invalid HTTP Response: ${r.status}` : r.error === "timeout" ? "timed out" : "failed to connect to host",
          statusCode: r.status,
        });
        return r;
      }),
    );
    await sleep(FIRST_PASS_AFTER_MS);
    passes.push(reconcilePass(world, project, extra, t0));
    const sent = await burst;

    let endedBy: string;
    if (path === "queue") {
      // The queue alone launches everything, at its rate.
      for (;;) {
        const c = tasks!.counts();
        if (launchedJobs() === JOBS && c.pending === 0 && c.dispatched === 0) {
          endedBy = "every job launched, queue empty";
          break;
        }
        if (c.created > 0 && c.pending === 0 && c.dispatched === 0 && launchedJobs() < JOBS) {
          endedBy = "queue empty, jobs left";
          break;
        }
        if (performance.now() - t0 > QUEUE_DEADLINE_MS) {
          endedBy = `deadline ${QUEUE_DEADLINE_MS / 1000} s`;
          break;
        }
        await sleep(250);
      }
    } else {
      // Inline: what the webhooks could not launch waits for reconcile passes, every RECONCILE_EVERY_MS.
      let nextPass = RECONCILE_EVERY_MS;
      for (;;) {
        if (launchedJobs() === JOBS) {
          endedBy = "every job launched";
          break;
        }
        const now = performance.now() - t0;
        if (now > INLINE_DEADLINE_MS) {
          endedBy = `deadline ${INLINE_DEADLINE_MS / 1000} s`;
          break;
        }
        if (now >= nextPass) {
          passes.push(reconcilePass(world, project, extra, t0));
          nextPass += RECONCILE_EVERY_MS;
        }
        await sleep(100);
      }
    }
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([Promise.all(passes), new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), 60_000)))]);
    clearTimeout(timer);
    if (!finished) {
      console.error(`launch-queue: ${passesRunning.size} reconcile pass(es) still running after 60 s; ended`);
      for (const p of passesRunning) p.child.kill("SIGKILL");
    }
    const passResults = finished ?? (await Promise.all(passes));
    await sleep(1000); // settle: work answered 202 may still go on
    await world.github.settled();

    const jit = world.github.callsTo("jit").filter((c) => c.jobId !== undefined && ids.includes(c.jobId));
    const jitOther: Record<string, number> = {};
    for (const c of jit) if (c.status !== 201 && c.status !== 403 && c.status !== 429) jitOther[c.status] = (jitOther[c.status] ?? 0) + 1;
    const runJobEnds = new Map<number, number>();
    for (const c of world.cloudRun.callsTo("runJob", 200)) if (c.jobId !== undefined) runJobEnds.set(c.jobId, Math.max(runJobEnds.get(c.jobId) ?? 0, c.end - t0));
    const executionsPerJob = new Map<number, number>();
    for (const e of world.cloudRun.executions) if (e.jobId !== undefined) executionsPerJob.set(e.jobId, (executionsPerJob.get(e.jobId) ?? 0) + 1);
    const executed = new Set(world.cloudRun.executions.map((e) => e.runnerId));
    const stateOf = await world.jobStates(project);
    const states = new Map<string, number>();
    for (const id of ids) {
      const s = stateOf.get(id) ?? "no record";
      states.set(s, (states.get(s) ?? 0) + 1);
    }
    const logTally = new Map<string, number>();
    for (const t of tallies) for (const [k, v] of t) logTally.set(k, (logTally.get(k) ?? 0) + v);
    const otherCalls = Object.fromEntries(
      [...Object.entries(world.github.counts()), ...Object.entries(world.cloudRun.counts())].filter(([k]) => k.startsWith("other") || k.startsWith("unauthorized") || k === "fake-error"),
    );
    const routeAnswers: Record<string, number> = {};
    for (const d of tasks?.dispatches ?? []) routeAnswers[String(d.status ?? d.error)] = (routeAnswers[String(d.status ?? d.error)] ?? 0) + 1;
    return {
      path,
      sent,
      t0,
      jitOk: jit.filter((c) => c.status === 201).map((c) => c.start),
      jitLimited: jit.filter((c) => c.status === 403 || c.status === 429).length,
      jitOther,
      runJobEnds,
      executionsPerJob,
      registrationsWithoutExecution: world.github.liveRegistrations().filter((r) => !executed.has(r.runnerId)).length,
      states,
      passes: passResults,
      redeliveries: world.github.redeliveryRequests.length,
      ...(tasks ? { tasks: { ...tasks.counts(), routeAnswers, perInstance: [...front.perInstance] } } : {}),
      logTally,
      otherCalls,
      endedBy,
    };
  } finally {
    await Promise.all(apps.map((a) => a.stop()));
    await front.close();
  }
}

function render(results: PathResult[]): string {
  const limitS = JOBS / (BUDGET / 60) + 5;
  const col = (f: (r: PathResult) => string | number) => results.map((r) => String(f(r)));
  const rows: Array<[string, string[]]> = [];
  const lat = (r: PathResult) => percentiles(r.sent.map((s) => s.end - s.start));
  const statuses = (r: PathResult) => {
    const n = new Map<string, number>();
    for (const s of r.sent) {
      const k = s.status ? String(s.status) : (s.error ?? "error");
      n.set(k, (n.get(k) ?? 0) + 1);
    }
    return [...n].map(([k, v]) => `${k}×${v}`).join(" ");
  };
  const lastLaunch = (r: PathResult) => (r.runJobEnds.size ? Math.max(...r.runJobEnds.values()) : NaN);
  const launchedBy = (r: PathResult, s: number) => [...r.runJobEnds.values()].filter((t) => t <= s * 1000).length;
  rows.push([`JIT registrations, most in any 60 s window (budget ${BUDGET})`, col((r) => maxInWindow(r.jitOk, WINDOW_MS))]);
  rows.push(["JIT calls answered 403/429 by GitHub", col((r) => r.jitLimited)]);
  rows.push(["JIT calls in all (201 + limited + other)", col((r) => `${r.jitOk.length} + ${r.jitLimited}${Object.keys(r.jitOther).length ? ` + ${JSON.stringify(r.jitOther)}` : ""}`)]);
  rows.push(["webhook latency p50 / p99 / max, ms", col((r) => `${round(lat(r).p50, 0)} / ${round(lat(r).p99, 0)} / ${round(lat(r).max, 0)}`)]);
  rows.push(["webhook answers", col(statuses)]);
  rows.push([
    `first webhook → last runner launched, s (physical limit ${JOBS}/${round(BUDGET / 60, 2)} + 5 = ${round(limitS)} s)`,
    col((r) => `${round(lastLaunch(r) / 1000)}${lastLaunch(r) / 1000 <= limitS ? " (within)" : ` (${round(lastLaunch(r) / 1000 - limitS)} s over)`}`),
  ]);
  const marks = [5, 10, 20, 30, 45, 60, 70, 80, 90, 100, 110, 120, 150];
  rows.push([`jobs launched by ${marks.map((m) => `${m}`).join("/")} s`, col((r) => marks.map((m) => launchedBy(r, m)).join("/"))]);
  rows.push(["runners (executions) / jobs", col((r) => `${[...r.executionsPerJob.values()].reduce((a, b) => a + b, 0)} / ${JOBS}`)]);
  rows.push(["duplicates (jobs with > 1 execution)", col((r) => [...r.executionsPerJob.values()].filter((n) => n > 1).length)]);
  rows.push(["registrations never executed nor deleted", col((r) => r.registrationsWithoutExecution)]);
  rows.push(["jobs not launched (Firestore state)", col((r) => JOBS - (r.states.get("launched") ?? 0))]);
  rows.push(["Firestore states", col((r) => [...r.states].map(([k, v]) => `${k}=${v}`).join(" "))]);
  rows.push([
    "reconcile passes (start s: exit code, launched)",
    col((r) => r.passes.map((p) => `${round(p.at / 1000)}: ${p.code}, ${p.launched}`).join("; ") || "none"),
  ]);
  rows.push(["webhooks redelivered by reconcile", col((r) => r.redeliveries)]);
  rows.push([
    "queue: tasks created / dispatches / route answers / refused duplicates / failed",
    col((r) => (r.tasks ? `${r.tasks.created} / ${r.tasks.attempts} / ${JSON.stringify(r.tasks.routeAnswers)} / ${r.tasks.duplicates} / ${r.tasks.failed}` : "–")),
  ]);
  rows.push(["requests to the service's front end per instance (dispatches, redeliveries)", col((r) => (r.tasks ? r.tasks.perInstance.join(" / ") : "–"))]);
  rows.push(["run ended by", col((r) => r.endedBy)]);
  const header = `| figure | ${results.map((r) => (r.path === "queue" ? `queue (${RATE}/s, burst ${BURST})` : `inline (${BUDGET}/min per process)`)).join(" | ")} |`;
  const lines = [header, `| --- | ${results.map(() => "---").join(" | ")} |`, ...rows.map(([name, cells]) => `| ${name} | ${cells.join(" | ")} |`)];
  for (const r of results) {
    lines.push("", `${r.path}: app warn/error log lines (all instances):`);
    for (const [k, v] of [...r.logTally].sort((a, b) => b[1] - a[1]).slice(0, 8)) lines.push(`  ${v}× ${k}`);
    if (Object.keys(r.otherCalls).length) lines.push(`  unexpected upstream calls: ${JSON.stringify(r.otherCalls)}`);
    for (const p of r.passes) lines.push(`  reconcile @${round(p.at / 1000)} s (${round(p.ms / 1000)} s): ${p.summary.map((s) => s.replace(/ [\w-]+=0\b/g, "")).join(" | ")}`);
  }
  return lines.join("\n");
}

let world: World | undefined;
let tasks: FakeCloudTasks | undefined;
const abort = (signal: string) => {
  killAllChildren();
  void world?.emulator.stop();
  console.error(`launch-queue: ${signal}, child processes ended`);
  process.exit(130);
};
process.once("SIGINT", () => abort("SIGINT"));
process.once("SIGTERM", () => abort("SIGTERM"));
process.on("exit", killAllChildren);

const started = Date.now();
const loadBefore = loadavg().map((x) => round(x, 2));
try {
  console.log("starting the Firestore emulator and the fakes…");
  world = await World.start();
  world.setLatency(LATENCY);
  world.github.jitRateLimit = { max: BUDGET, windowMs: WINDOW_MS };
  tasks = await new FakeCloudTasks({
    queue: QUEUE,
    maxDispatchesPerSecond: RATE,
    maxBurstSize: BURST,
    // deploy/deploy.sh's queue settings.
    maxConcurrentDispatches: 20,
    maxAttempts: 20,
    minBackoffMs: 2_000,
    maxBackoffMs: 60_000,
  }).listen();
  const results: PathResult[] = [];
  for (const [i, path] of PATHS.entries()) {
    console.log(`${path}: ${JOBS} jobs at once on ${INSTANCES} instances…`);
    const r = await runPath(world, path, path === "queue" ? tasks : undefined, 70_000_000 + i * 100_000);
    console.log(`${path}: ${r.endedBy}, last runner at ${round(Math.max(0, ...r.runJobEnds.values()) / 1000)} s`);
    results.push(r);
  }
  console.log(
    `\nlaunch queue vs inline: ${JOBS} jobs at once on ${INSTANCES} instances, one Firestore project; GitHub allows ${BUDGET} JIT registrations per ${WINDOW_MS / 1000} s ` +
      `(403 + retry-after past it); fake latencies ${JSON.stringify(LATENCY)} ms; real time, not scaled\n`,
  );
  console.log(render(results));
  console.log(`\nmachine: ${availableParallelism()} CPUs, load average ${loadBefore.join(" ")} before, ${loadavg().map((x) => round(x, 2)).join(" ")} after; ${round((Date.now() - started) / 1000, 0)} s in all`);
} finally {
  killAllChildren();
  await tasks?.close();
  await world?.stop();
}
