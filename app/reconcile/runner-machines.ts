import { listKumoRunners } from "../github/jit-runners.js";
import type { RunnerMachine } from "../launcher/launcher.js";
import { outOfTime, type ReconcileContext, type StepSummary } from "./context.js";

/**
 * Step 5: runner machines that outlive their runner unless deleted (VMs).
 * Deleted: a stopped one (its runner exited and powered it off), and one past
 * the launch grace whose runner GitHub does not list online (its job is done
 * and the registration removed, or the runner never connected). A machine
 * whose runner is online, idle or busy, is stale-runners' business.
 */
export async function runnerMachines(ctx: ReconcileContext): Promise<StepSummary> {
  const counts = { machines: 0, running: 0, booting: 0, deleted: 0, unknown: 0, errors: 0 };
  const machines = await ctx.deps.launcher.machines();
  counts.machines = machines.length;
  // Nothing to judge: no GitHub call (Cloud Run-only deployments never pay for this step).
  if (machines.length === 0) return { step: "runner machines", counts };

  const { online, complete } = await onlineRunners(ctx);
  for (const machine of machines) {
    if (outOfTime(ctx)) break;
    const verdict = judge(ctx, machine, online, complete);
    if (verdict !== "delete") {
      counts[verdict]++;
      continue;
    }
    try {
      await ctx.deps.launcher.cancel(machine.execution);
      counts.deleted++;
      ctx.log.info({ runnerName: machine.name, execution: machine.execution, status: machine.status }, "reconcile: runner machine deleted");
    } catch (error) {
      counts.errors++;
      ctx.log.error({ runnerName: machine.name, execution: machine.execution, err: (error as Error).message }, "reconcile: runner machine not deleted");
    }
  }
  return { step: "runner machines", counts };
}

function judge(ctx: ReconcileContext, machine: RunnerMachine, online: Set<string>, complete: boolean): "delete" | "running" | "booting" | "unknown" {
  if (machine.stopped) return "delete";
  // Booting and connecting takes about a minute; a machine without a creation time is judged as old.
  const age = machine.createdAt ? ctx.now.getTime() - machine.createdAt.getTime() : Infinity;
  if (age < ctx.options.launchGraceMs) return "booting";
  if (online.has(machine.name)) return "running";
  // An organization whose runners could not be read: its machines may be serving jobs.
  return complete ? "delete" : "unknown";
}

/** Names of Kumo runners GitHub lists online or busy, and whether every organization was read. */
async function onlineRunners(ctx: ReconcileContext): Promise<{ online: Set<string>; complete: boolean }> {
  const online = new Set<string>();
  let complete = true;
  for (const installation of await ctx.installations()) {
    try {
      const octokit = await ctx.octokitFor(installation.id);
      for (const r of await listKumoRunners(octokit, installation.org, ctx.deps.config.runnerPrefix)) {
        if (r.busy || r.status === "online") online.add(r.name);
      }
    } catch (error) {
      complete = false;
      ctx.log.warn({ org: installation.org, err: (error as Error).message }, "reconcile: runners not read; their machines are kept this pass");
    }
  }
  return { online, complete };
}
