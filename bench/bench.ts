// `npm run bench [-- --quick] [--only=burst,storm] [--latency=jit=30,runJob=50] [--no-cold] [--server=path/to/server.js] [--node-options=…] [--warm=onlineS=55,…]`
// Drives dist/app/entry/server.js over HTTP with signed workflow_job deliveries;
// GitHub and Cloud Run are local fakes, Firestore the real emulator. Not part of npm test.
// Section `warm` is a model in virtual time (warm-pool.ts): `--only=warm` runs it alone, without the fakes.
import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { availableParallelism, loadavg } from "node:os";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { killAllChildren } from "./app-process.js";
import { coldStart, type ColdStartResult } from "./cold-start.js";
import { render, targets } from "./report.js";
import { runScenario, scenarios, type ScenarioResult } from "./scenarios.js";
import { parseAssumptions, WARM_SECTION, warmPoolSection } from "./warm-pool.js";
import { World } from "./world.js";

/** Roughly GitHub's and Cloud Run's answer times from a nearby region. */
const DEFAULT_LATENCY: Record<string, number> = { token: 50, settings: 40, runnerGroups: 40, jit: 30, deleteRunner: 30, runJob: 50 };

const { values: args } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    only: { type: "string" },
    latency: { type: "string" },
    "no-cold": { type: "boolean", default: false },
    // Another build of the server, to compare a change against the same fakes.
    server: { type: "string" },
    // NODE_OPTIONS of the app processes (Kumo and the bare app alike), e.g. a heap limit.
    "node-options": { type: "string" },
    // Assumptions of the warm pool model, e.g. onlineS=55,reconcileS=30,counting=warm-launches.
    warm: { type: "string" },
  },
});

/** Which code was measured: the commit, and whether app/ had uncommitted changes (read only). */
function gitState(): string {
  try {
    const git = (...a: string[]) => execFileSync("git", a, { cwd: new URL("../../", import.meta.url), encoding: "utf8" }).trim();
    const dirty = git("status", "--porcelain", "--", "app") !== "";
    return `${git("rev-parse", "--short", "HEAD")}${dirty ? " + uncommitted changes in app/" : ""}`;
  } catch {
    return "unknown";
  }
}

const latency = { ...DEFAULT_LATENCY };
for (const pair of args.latency?.split(",").filter(Boolean) ?? []) {
  const [k, v] = pair.split("=");
  if (!k || !(k in latency) || !Number.isFinite(Number(v))) throw new Error(`--latency: expected endpoint=ms with endpoint in ${Object.keys(latency).join(", ")}`);
  latency[k] = Number(v);
}

const only = args.only?.split(",");
const withWarm = !only || only.includes(WARM_SECTION);
const warmAssumptions = parseAssumptions(args.warm);
// The model alone needs no emulator, fakes or app: it prints its table and nothing is written.
const warmOnly = only !== undefined && only.every((name) => name === WARM_SECTION);
if (warmOnly) console.log(warmPoolSection(args.quick, warmAssumptions).text);

// Google's clients in this process (the Firestore reads of job states) must not look for a GCE metadata server.
process.env.METADATA_SERVER_DETECTION ??= "none";

if (!warmOnly) await fullBench();

async function fullBench(): Promise<void> {
  let world: World | undefined;
  const abort = (signal: string) => {
    killAllChildren();
    void world?.emulator.stop();
    console.error(`bench: ${signal}, child processes ended`);
    process.exit(130);
  };
  process.once("SIGINT", () => abort("SIGINT"));
  process.once("SIGTERM", () => abort("SIGTERM"));
  process.on("exit", killAllChildren);

  try {
    const started = Date.now();
    const loadBefore = loadavg().map((x) => Math.round(x * 100) / 100);
    console.log("starting the Firestore emulator and the fakes…");
    world = await World.start(args.server ? resolve(args.server) : undefined, args["node-options"]);
    let cold: ColdStartResult | undefined;
    if (!args["no-cold"]) {
      world.setLatency({});
      console.log("cold start…");
      cold = await coldStart(world, args.quick ? 2 : 5);
    }
    world.setLatency(latency);
    const results: ScenarioResult[] = [];
    for (const s of scenarios(args.quick).filter((x) => !only || only.includes(x.name))) {
      process.stdout.write(`${s.name} (${s.pacer}, ${s.instances} instance${s.instances > 1 ? "s" : ""}, ${s.jobs} jobs × ${s.copies})… `);
      const r = await runScenario(world, s);
      results.push(r);
      console.log(`p50 ${Math.round(r.latency.p50)} ms, p99 ${Math.round(r.latency.p99)} ms, runners ${r.outcome.runnersCreated}/${r.outcome.jobs}`);
    }
    const goals = targets(results, cold);
    const machine = { cpus: availableParallelism(), loadAvgBefore: loadBefore, loadAvgAfter: loadavg().map((x) => Math.round(x * 100) / 100) };
    const code = args.server ? `--server ${world.kumoServer}` : gitState();
    console.log(`\n${render(results, cold, latency, goals)}`);
    const warm = withWarm ? warmPoolSection(args.quick, warmAssumptions) : undefined;
    if (warm) console.log(`\n${warm.text}`);
    // Everything (app, emulator, fakes, load) shares these CPUs: a busy machine shows in every figure.
    console.log(`\nmachine: ${machine.cpus} CPUs, load average ${machine.loadAvgBefore.join(" ")} before, ${machine.loadAvgAfter.join(" ")} after; code: ${code}`);

    const dir = new URL("../../bench/results/", import.meta.url);
    mkdirSync(dir, { recursive: true });
    const report = { at: new Date().toISOString(), quick: args.quick, code, server: world.kumoServer, appNodeOptions: args["node-options"], node: process.version, latency, machine, coldStart: cold, scenarios: results, targets: goals, warmPool: warm && { assumptions: warm.options.a, days: warm.options.days, rows: warm.rows }, durationS: (Date.now() - started) / 1000 };
    const name = `bench-${report.at.replace(/[:.]/g, "-")}${args.quick ? "-quick" : ""}.json`;
    for (const file of [name, "latest.json"]) writeFileSync(new URL(file, dir), JSON.stringify(report, null, 2));
    console.log(`\nresults: bench/results/${name} (and latest.json), ${Math.round(report.durationS)} s`);
  } finally {
    killAllChildren();
    await world?.stop();
  }
}
