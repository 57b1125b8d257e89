import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { delivery, newJobId, send } from "./load.js";
import { percentiles, round } from "./metrics.js";
import { BARE_APP, WEBHOOK_SECRET, type World } from "./world.js";

export interface ColdStartSample {
  /** Spawn to the first connection accepted (the attempt that got through was sent within 5 ms of it). */
  listenMs: number;
  /** Spawn to the first webhook answered. */
  firstAnswerMs: number;
  peakRssMiB: number;
}

export interface ColdStartResult {
  runs: number;
  kumo: ColdStartSample[];
  bare: ColdStartSample[];
  kumoMedian: ColdStartSample;
  bareMedian: ColdStartSample;
  /** Median first answer, Kumo over the bare Probot app. */
  ratio: number;
}

/** Kumo starts as its image runs it: with Node's compile cache, which the image fills at build time (Dockerfile). */
const KUMO_COMPILE_CACHE = mkdtempSync(join(tmpdir(), "kumo-bench-compile-cache-"));

/** Spawns the server and sends one signed webhook until it is answered. */
async function once(world: World, script: string): Promise<ColdStartSample> {
  const app = await world.startApp(script, "kumo-bench-cold", script === BARE_APP ? {} : { NODE_COMPILE_CACHE: KUMO_COMPILE_CACHE });
  try {
    const d = delivery(newJobId(), WEBHOOK_SECRET);
    const deadline = performance.now() + 30_000;
    while (performance.now() < deadline) {
      if (app.child.exitCode !== null) throw new Error(`${script} exited (${app.child.exitCode}):\n${app.output()}`);
      const r = await send(d, app.port, false);
      if (r.status === 200) {
        return { listenMs: r.start - app.spawnedAt, firstAnswerMs: r.end - app.spawnedAt, peakRssMiB: app.peakRssMiB() };
      }
      if (r.status !== 0) throw new Error(`${script} answered the first webhook ${r.status}:\n${app.output()}`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    throw new Error(`${script} answered no webhook within 30 s:\n${app.output()}`);
  } finally {
    await app.stop();
  }
}

function median(samples: ColdStartSample[]): ColdStartSample {
  const pick = (k: keyof ColdStartSample) => round(percentiles(samples.map((s) => s[k])).p50);
  return { listenMs: pick("listenMs"), firstAnswerMs: pick("firstAnswerMs"), peakRssMiB: pick("peakRssMiB") };
}

/**
 * Cold start of Kumo against a bare Probot app, alternating so both see the
 * same machine state. Fakes answer at once here: the figure is the app's own
 * start-up (imports, clients, first token/settings/groups, first gRPC channel).
 */
export async function coldStart(world: World, runs: number): Promise<ColdStartResult> {
  // One unmeasured start each, so both find the files in the page cache (and Kumo's compile cache is filled, as in its image).
  await once(world, world.kumoServer);
  await once(world, BARE_APP);
  const kumo: ColdStartSample[] = [];
  const bare: ColdStartSample[] = [];
  for (let i = 0; i < runs; i++) {
    kumo.push(await once(world, world.kumoServer));
    bare.push(await once(world, BARE_APP));
  }
  const kumoMedian = median(kumo);
  const bareMedian = median(bare);
  const rounded = (s: ColdStartSample): ColdStartSample => ({ listenMs: round(s.listenMs), firstAnswerMs: round(s.firstAnswerMs), peakRssMiB: round(s.peakRssMiB) });
  return { runs, kumo: kumo.map(rounded), bare: bare.map(rounded), kumoMedian, bareMedian, ratio: round(kumoMedian.firstAnswerMs / bareMedian.firstAnswerMs, 2) };
}
