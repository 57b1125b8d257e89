// Issue 9's figures: a capped spec (maxRunners 3) under a burst of 12 jobs on two
// instances, and each completion's hand-over to the next waiting job. Real server
// processes, the fakes and the Firestore emulator, as `npm run bench` runs them.
// `npm run build && node dist/bench/capacity.js [jobs] [cap]`
import { createHmac, randomUUID } from "node:crypto";
import { performance } from "node:perf_hooks";
import { killAllChildren } from "./app-process.js";
import { queuedPayload, send, type Delivery } from "./load.js";
import { percentiles, round } from "./metrics.js";
import { WEBHOOK_SECRET, World } from "./world.js";

const jobs = Number(process.argv[2] ?? 12);
const cap = Number(process.argv[3] ?? 3);
const LABELS = ["kumo", "capped"];
process.env.METADATA_SERVER_DETECTION ??= "none";

function signed(payload: Record<string, unknown>, instance: number, jobId: number): Delivery {
  const body = Buffer.from(JSON.stringify(payload));
  return { guid: randomUUID(), jobId, body, signature: `sha256=${createHmac("sha256", WEBHOOK_SECRET).update(body).digest("hex")}`, instance };
}
const queued = (jobId: number, instance: number) => {
  const p = queuedPayload(jobId);
  (p.workflow_job as Record<string, unknown>).labels = LABELS;
  return signed(p, instance, jobId);
};
const completed = (jobId: number, instance: number) => {
  const p = queuedPayload(jobId);
  p.action = "completed";
  Object.assign(p.workflow_job as Record<string, unknown>, { labels: LABELS, status: "completed", conclusion: "success", runner_name: `kumo-${jobId}-1-aaaaaa`, runner_id: 1, completed_at: new Date().toISOString() });
  return signed(p, instance, jobId);
};

const world = await World.start();
try {
  world.github.settingsYaml = `runners:\n  - labels: [${LABELS.join(", ")}]\n    group: cloudrun\n    job: gha-runner-small\n    maxRunners: ${cap}\n`;
  // Roughly GitHub's and Cloud Run's answer times from a nearby region, as `npm run bench` uses.
  world.setLatency({ token: 50, settings: 40, runnerGroups: 40, jit: 30, deleteRunner: 30, runJob: 50 });
  const project = `kumo-bench-capacity-${randomUUID().slice(0, 8)}`;
  const apps = await Promise.all([world.startApp(world.kumoServer, project), world.startApp(world.kumoServer, project)]);
  await Promise.all(apps.map((a) => a.ready()));
  const ports = apps.map((a) => a.port);
  const ids = Array.from({ length: jobs }, (_, i) => 60_000_000 + i);
  const executions = () => world.cloudRun.executions.length;

  // The burst: every job at once, alternating instances; the cap is used when `cap` executions exist.
  const start = performance.now();
  let capUsedAt: number | undefined;
  const watch = setInterval(() => {
    if (capUsedAt === undefined && executions() >= Math.min(cap, jobs)) capUsedAt = performance.now();
  }, 1);
  const answers = await Promise.all(ids.map((id, i) => send(queued(id, i % 2), ports[i % 2]!, false)));
  clearInterval(watch);
  capUsedAt ??= performance.now();
  const afterBurst = executions();
  const burstAnswered = Math.max(...answers.map((a) => a.end)) - start;

  // Hand-overs: each completion's webhook launches the next waiting job before it answers.
  const handover: number[] = [];
  let peak = afterBurst;
  for (let round = 0; round < jobs; round++) {
    const running = world.cloudRun.executions.filter((e) => !e.completionTime && e.jobId !== undefined);
    const done = running[0];
    if (!done) break;
    world.cloudRun.finish(done.name);
    const before = executions();
    const r = await send(completed(done.jobId!, round % 2), ports[round % 2]!, false);
    if (executions() > before) handover.push(r.end - r.start);
    peak = Math.max(peak, world.cloudRun.executions.filter((e) => !e.completionTime).length);
  }
  const p = percentiles(handover);
  console.log(`capacity: ${jobs} jobs at once on 2 instances, maxRunners ${cap}`);
  console.log(`| figure | value |\n| --- | --- |`);
  console.log(`| runners after the burst | ${afterBurst} (cap ${cap}) |`);
  console.log(`| burst → cap used (${cap} executions started) | ${round(capUsedAt - start)} ms |`);
  console.log(`| burst → every webhook answered | ${round(burstAnswered)} ms (statuses ${[...new Set(answers.map((a) => a.status))].join(", ")}) |`);
  console.log(`| completion webhook → next job's execution started (answered), n=${handover.length} | p50 ${round(p.p50)} ms, p99 ${round(p.p99)} ms, max ${round(p.max)} ms |`);
  console.log(`| most executions running at once | ${peak} |`);
  console.log(`| executions in all | ${executions()} for ${jobs} jobs |`);
  await Promise.all(apps.map((a) => a.stop()));
} finally {
  killAllChildren();
  await world.stop();
}
