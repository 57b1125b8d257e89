import { createHash } from "node:crypto";
import { listKumoRunners, WARM_JOB_ID, type KumoRunner } from "../github/jit-runners.js";
import type { Octokit } from "../github/octokit.js";
import { launchWarmRunner } from "../launch/launch-warm.js";
import { retireRunner } from "../launch/retire-runner.js";
import { launchTarget } from "../launcher/launcher.js";
import type { RunnerSpec } from "../settings/schema.js";
import type { RunnerTarget, WarmLaunch } from "../store/job-store.js";
import { planPool, type PoolRunner } from "../warm-pool/plan.js";
import { warmTarget, type WarmPool } from "../warm-pool/schedule.js";
import { outOfTime, type ReconcileContext, type StepSummary } from "./context.js";

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
  const key = createHash("sha256").update(["warm", org, target.job, labelKey(spec.labels)].join("\n")).digest("hex").slice(0, 24);
  const name = readable(org, target);
  const want = warmTarget(spec.warm, ctx.now);
  const launches = await ctx.deps.store.listWarmLaunches(key);
  const mine = all.filter((r) => labelKey(r.labels) === labelKey(spec.labels));
  const seen = await Promise.all(mine.map((r) => look(ctx, r, launches)));

  const plan = planPool({
    want,
    runners: seen.map((s) => s.pool),
    now: ctx.now,
    maxIdleMs: spec.warm.maxIdleMinutes * 60_000,
    bootGraceMs: ctx.options.launchGraceMs,
  });
  let retired = 0;
  for (const { name: runnerName, why } of plan.retire) {
    const s = seen.find((x) => x.pool.name === runnerName)!;
    try {
      const outcome = await retireRunner(ctx.deps, octokit, ctx.log.child({ org }), { org, runnerId: s.runner.id, runnerName, ...(s.execution ? { execution: s.execution } : {}) }, why);
      if (outcome !== "busy") retired++;
    } catch (error) {
      counts.errors++;
      ctx.log.error({ org, runnerName, err: (error as Error).message }, "reconcile: warm runner not retired");
    }
  }
  // A place whose runner is online, or gone (reaped by GitHub, retired), has no launch under way: free at once.
  const listed = new Map(all.map((r) => [r.name, r]));
  const settled = new Map(
    launches.filter((l) => l.runnerName && (!listed.has(l.runnerName) || listed.get(l.runnerName)!.status === "online")).map((l) => [l.index, l.runnerName!]),
  );
  let launched = 0;
  for (let index = 0; index < want && launched < plan.deficit; index++) {
    if (outOfTime(ctx)) break;
    // A place taken within the start grace is a launch under way (this pass's twin, or the last pass's).
    if (!(await ctx.deps.store.claimWarmLaunch(key, index, { org, name }, ctx.options.launchGraceMs, ctx.now, settled.get(index)))) continue;
    const log = ctx.log.child({ org, pool: name });
    if (ctx.deps.queue.enqueues) {
      // The launch queue's rate is the one JIT budget: warm launches wait their turn like any other.
      try {
        await ctx.deps.queue.enqueueWarm({ warm: { key, index, org, installationId, claimedAt: ctx.now.getTime(), target } });
        launched++;
      } catch (error) {
        counts.errors++;
        await ctx.deps.store.dropWarmLaunch(key, index);
        log.error({ place: index, err: (error as Error).message }, "warm launch not enqueued");
      }
      continue;
    }
    const outcome = await launchWarmRunner(ctx.deps, octokit, log, { key, index, org }, target);
    if (outcome.launched) launched++;
    else counts.errors++;
  }
  counts.target += want;
  counts.warm += plan.warm.length;
  counts.booting += plan.booting.length;
  counts.launched += launched;
  counts.retired += retired;
  return `${name}: warm ${plan.warm.length}/${want}, booting ${plan.booting.length}, launched ${launched}, retired ${retired}`;
}

/** A runner of the pool's spec with what the store knows of it: whether a job waits for it, its age, its machine. */
async function look(ctx: ReconcileContext, runner: KumoRunner, launches: WarmLaunch[]): Promise<{ runner: KumoRunner; pool: PoolRunner; execution?: string }> {
  const base = { name: runner.name, online: runner.status === "online", busy: runner.busy };
  if (runner.jobId === WARM_JOB_ID) {
    // Its place, also while the launch is under way and the runner not yet recorded on it.
    const launch = launches.find((l) => l.runnerName === runner.name) ?? launches.find((l) => l.index === runner.attempt - 1 && !l.runnerName);
    return { runner, pool: { ...base, needed: false, launchedAt: launch?.launchedAt }, ...(launch?.execution ? { execution: launch.execution } : {}) };
  }
  const record = await ctx.deps.store.get(runner.jobId);
  const own = record?.runnerName === runner.name;
  const needed = Boolean(record && ((record.state === "launched" && own) || (record.state === "claimed" && record.attempts === runner.attempt)));
  const launchedAt = own ? (record!.launchedAt ?? record!.updatedAt) : record?.state === "claimed" ? record.updatedAt : undefined;
  return { runner, pool: { ...base, needed, launchedAt }, ...(own && record!.execution ? { execution: record!.execution } : {}) };
}
