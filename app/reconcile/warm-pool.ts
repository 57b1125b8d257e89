import { createHash } from "node:crypto";
import { listKumoRunners, WARM_JOB_ID, type KumoRunner } from "../github/jit-runners.js";
import type { Octokit } from "../github/octokit.js";
import { launchWarmRunner } from "../launch/launch-warm.js";
import { retireRunner } from "../launch/retire-runner.js";
import { launchTarget } from "../launcher/launcher.js";
import type { RunnerSpec } from "../settings/schema.js";
import type { RunnerTarget, WarmLaunch } from "../store/job-store.js";
import { planPool, type PoolPlan, type PoolRunner } from "../warm-pool/plan.js";
import { warmTarget, type WarmPool } from "../warm-pool/schedule.js";
import { outOfTime, waitsFor, type ReconcileContext, type StepSummary } from "./context.js";

type PooledSpec = RunnerSpec & { warm: WarmPool };

/** The org's runner specs with a warm pool, one per label set (a per-repository copy of a spec is the same pool). */
export async function pooledSpecs(ctx: ReconcileContext, installation: { id: number; org: string }, octokit: Octokit): Promise<PooledSpec[]> {
  const parsed = await ctx.deps.settings.get(octokit, installation.id, installation.org);
  if (!parsed.ok) return [];
  const all = [...parsed.settings.runners, ...Object.values(parsed.settings.repositories).flatMap((r) => r.runners)];
  const byLabels = new Map<string, PooledSpec>();
  for (const spec of all) if (spec.warm && !byLabels.has(labelKey(spec.labels))) byLabels.set(labelKey(spec.labels), spec as PooledSpec);
  return [...byLabels.values()];
}

/** A JIT runner has exactly its spec's labels: the label set says which pool a runner is in. */
export function labelKey(labels: readonly string[]): string {
  return [...new Set(labels.map((l) => l.toLowerCase()))].sort().join("\n");
}

/** The pool's document id: one pool per org, runner job (or template) and label set. */
export function warmPoolKey(org: string, job: string, labels: readonly string[]): string {
  return createHash("sha256").update(["warm", org, job, labelKey(labels)].join("\n")).digest("hex").slice(0, 24);
}

const readable = (org: string, target: RunnerTarget) => `${org} [${target.labels.join(", ")}] → ${target.job.split("/").pop()}`;

/**
 * Step 5: warm pools. Inside a spec's windows, its idle online runners (plus
 * those still booting) are topped up to the pool's size; idle runners beyond
 * it, past maxIdleMinutes, or that never came online are retired. Busy runners
 * and runners a queued job waits for are never the pool's. Launch places in
 * the store keep two passes at once from overfilling a pool.
 */
export async function warmPools(ctx: ReconcileContext): Promise<StepSummary> {
  const counts = { pools: 0, target: 0, warm: 0, booting: 0, launched: 0, retired: 0, errors: 0 };
  const details: string[] = [];
  for (const installation of await ctx.installations()) {
    if (outOfTime(ctx)) break;
    const log = ctx.log.child({ org: installation.org });
    try {
      const octokit = await ctx.octokitFor(installation.id);
      const specs = await pooledSpecs(ctx, installation, octokit);
      if (specs.length === 0) continue;
      const runners = await listKumoRunners(octokit, installation.org, ctx.deps.config.runnerPrefix);
      for (const spec of specs) {
        if (outOfTime(ctx)) break;
        counts.pools++;
        try {
          const line = await keepPool(ctx, octokit, installation, spec, runners, counts);
          details.push(line);
        } catch (error) {
          counts.errors++;
          log.error({ labels: spec.labels, err: (error as Error).message }, "reconcile: warm pool not kept");
        }
      }
    } catch (error) {
      counts.errors++;
      log.error({ err: (error as Error).message }, "reconcile: warm pools of this org not kept");
    }
  }
  return { step: "warm pools", counts, ...(details.length ? { details } : {}) };
}

/** How often reconcile runs (deploy.sh's scheduler). */
const RECONCILE_PERIOD_MS = 60_000;

/** A runner just registered may not be listed yet: a launch whose runner is not listed is gone only after this. */
const LIST_SETTLE_MS = 30_000;

async function keepPool(
  ctx: ReconcileContext,
  octokit: Octokit,
  { org, id: installationId }: { org: string; id: number },
  spec: PooledSpec,
  all: KumoRunner[],
  counts: Record<"target" | "warm" | "booting" | "launched" | "retired" | "errors", number>,
): Promise<string> {
  const groupId = await ctx.deps.groups.resolveInOrg(octokit, org, spec.group);
  if (groupId === undefined) throw new Error(`runner group "${spec.group}" does not exist`);
  const target: RunnerTarget = { labels: spec.labels, group: spec.group, groupId, ...launchTarget(spec, ctx.deps.config) };
  const key = warmPoolKey(org, target.job, spec.labels);
  const name = readable(org, target);
  const want = warmTarget(spec.warm, ctx.now);
  const now = ctx.now.getTime();
  const mine = all.filter((r) => labelKey(r.labels) === labelKey(spec.labels));
  const listed = new Map(mine.map((r) => [r.name, r]));
  // Runners made for jobs: the store says whether a job waits for them, and their age.
  const jobRunners = await Promise.all(mine.filter((r) => r.jobId !== WARM_JOB_ID).map((r) => lookJobRunner(ctx, r)));
  // Warm VMs whose zone had no stock show it after a minute, long before the start grace: replaced then.
  const failed = new Set<string>();
  for (const launch of await ctx.deps.store.listWarmLaunches(key)) {
    const runner = launch.runnerName ? listed.get(launch.runnerName) : undefined;
    const after = launch.execution ? ctx.deps.launcher.failureVisibleAfterMs(launch.execution) : undefined;
    if (!runner || runner.status === "online" || after === undefined || now - launch.at.getTime() < after) continue;
    const machine = await ctx.deps.launcher.describe(launch.execution!);
    if (!machine?.running) failed.add(runner.name);
  }

  let plan: PoolPlan | undefined;
  let launches: WarmLaunch[] = [];
  const added = await ctx.deps.store.updateWarmPool(key, { org, name }, (current) => {
    // Forget launches whose runner is gone (reaped by GitHub, retired, done) and launches that never registered one.
    const live = current.filter((l) =>
      l.runnerName ? listed.has(l.runnerName) || now - l.at.getTime() < LIST_SETTLE_MS : now - l.at.getTime() < ctx.options.launchGraceMs,
    );
    const byName = new Map(live.flatMap((l) => (l.runnerName ? [[l.runnerName, l] as const] : [])));
    // A runner registered but not yet recorded on its launch is found by its turn (in its name).
    const entryOf = (r: KumoRunner) => byName.get(r.name) ?? live.find((l) => !l.runnerName && l.turn === r.attempt);
    const matched = new Set<string>();
    const warmRunners: PoolRunner[] = mine
      .filter((r) => r.jobId === WARM_JOB_ID)
      .map((r) => {
        const entry = entryOf(r);
        if (entry) matched.add(entry.id);
        return {
          name: r.name,
          online: r.status === "online" && !failed.has(r.name),
          busy: r.busy,
          needed: false,
          // Not the pool's (another deployment's, or forgotten): judged old.
          launchedAt: failed.has(r.name) ? new Date(0) : entry?.at,
        };
      });
    plan = planPool({
      want,
      runners: [...jobRunners.map((j) => j.pool), ...warmRunners],
      // Launches whose runner this pass's list does not show yet (another pass's, made since): booting too.
      inflight: live.filter((l) => !matched.has(l.id) && (!l.runnerName || !listed.has(l.runnerName))).length,
      now: ctx.now,
      maxIdleMs: spec.warm.maxIdleMinutes * 60_000,
      bootGraceMs: ctx.options.launchGraceMs,
      // One pass ahead: a replacement is online by the time its predecessor is retired.
      renewAheadMs: RECONCILE_PERIOD_MS,
    });
    const retiring = new Set(plan.retire.map((r) => r.name));
    launches = live;
    return { keep: live.filter((l) => !l.runnerName || !retiring.has(l.runnerName)), add: plan.deficit };
  }, ctx.now);
  const { warm, booting, retire } = plan!;

  let retired = 0;
  for (const { name: runnerName, why } of retire) {
    const runner = listed.get(runnerName)!;
    try {
      // GitHub's busy flag lags up to a minute; the in_progress webhook is faster: never retire a runner a job has.
      if (await ctx.deps.store.runsJob(runnerName)) continue;
      const execution = runner.jobId === WARM_JOB_ID ? launches.find((l) => l.runnerName === runnerName)?.execution : jobRunners.find((j) => j.pool.name === runnerName)?.execution;
      const outcome = await retireRunner(ctx.deps, octokit, ctx.log.child({ org }), { org, runnerId: runner.id, runnerName, ...(execution ? { execution } : {}) }, why);
      if (outcome !== "busy") retired++;
    } catch (error) {
      counts.errors++;
      ctx.log.error({ org, runnerName, err: (error as Error).message }, "reconcile: warm runner not retired");
    }
  }

  let launched = 0;
  for (const launch of added) {
    const place = { key, id: launch.id, turn: launch.turn, org };
    const log = ctx.log.child({ org, pool: name });
    if (ctx.deps.queue.enqueues) {
      // The launch queue's rate is the one JIT budget: warm launches wait their turn like any other.
      try {
        await ctx.deps.queue.enqueueWarm({ warm: { ...place, installationId, target } });
        launched++;
      } catch (error) {
        counts.errors++;
        await ctx.deps.store.dropWarmLaunch(key, launch.id);
        log.error({ turn: launch.turn, err: (error as Error).message }, "warm launch not enqueued");
      }
      continue;
    }
    const outcome = await launchWarmRunner(ctx.deps, octokit, log, place, target);
    if (outcome.launched) launched++;
    else counts.errors++;
  }
  counts.target += want;
  counts.warm += warm.length;
  counts.booting += booting.length;
  counts.launched += launched;
  counts.retired += retired;
  return `${name}: warm ${warm.length}/${want}, booting ${booting.length}, launched ${launched}, retired ${retired}`;
}

/** A runner made for a job, with what the store knows: whether its job waits for it, its age, its machine. */
async function lookJobRunner(ctx: ReconcileContext, runner: KumoRunner): Promise<{ pool: PoolRunner; execution?: string }> {
  const record = await ctx.deps.store.get(runner.jobId);
  const own = record?.runnerName === runner.name;
  const needed = waitsFor(record, runner);
  const launchedAt = own ? (record!.launchedAt ?? record!.updatedAt) : record?.state === "claimed" ? record.updatedAt : undefined;
  const pool: PoolRunner = { name: runner.name, online: runner.status === "online", busy: runner.busy, needed, launchedAt };
  return { pool, ...(own && record!.execution ? { execution: record!.execution } : {}) };
}
