// Issue #2's figure: in-process time from a webhook received to runJob returned,
// with GitHub and Cloud Run answered instantly by nock and the real Firestore
// emulator as the store. `npm run build && node dist/bench/fast-path.js [deliveries] [concurrency]`
import { generateKeyPairSync } from "node:crypto";
import { createRequire } from "node:module";
import nock from "nock";
import { pino } from "pino";
import { Probot } from "probot";
import { readConfig } from "../app/config.js";
import { createDeps } from "../app/deps.js";
import { KumoOctokit } from "../app/github/octokit.js";
import { kumo } from "../app/index.js";
import type { Launcher } from "../app/launcher/launcher.js";

const deliveries = Number(process.argv[2] ?? 200);
const concurrency = Number(process.argv[3] ?? 1);
process.env.METADATA_SERVER_DETECTION ??= "none";

const { startFirestoreEmulator } = await import(new URL("../../test/setup/firestore-emulator.js", import.meta.url).href);
const emulator = process.env.FIRESTORE_EMULATOR_HOST ? undefined : await startFirestoreEmulator();
if (emulator) process.env.FIRESTORE_EMULATOR_HOST = emulator.host;

try {
  const endpoint = "http://127.0.0.1:9912";
  nock.disableNetConnect();
  const gh = nock("https://api.github.com").persist();
  gh.post(/\/app\/installations\/\d+\/access_tokens/).reply(201, { token: "ghs_bench", expires_at: new Date(Date.now() + 3_600_000).toISOString() });
  gh.get(/\/repos\/octo-org\/.github\/contents\//).reply(200, "runners:\n  - labels: [kumo, small]\n    group: cloudrun\n    job: gha-runner-small\n");
  gh.get(/\/orgs\/octo-org\/actions\/runner-groups/).query(true).reply(200, { total_count: 1, runner_groups: [{ id: 7, name: "cloudrun" }] });
  let runnerId = 1;
  gh.post("/orgs/octo-org/actions/runners/generate-jitconfig").reply(201, (_uri: string, body: any) => {
    const b = typeof body === "string" ? JSON.parse(body) : body;
    return { runner: { id: runnerId++, name: b.name, labels: b.labels }, encoded_jit_config: "eyJiZW5jaCI6dHJ1ZX0=" };
  });
  let execution = 1;
  nock(endpoint).persist().post(/:run/).reply(200, () => ({
    name: "op",
    metadata: { "@type": "type.googleapis.com/google.cloud.run.v2.Execution", name: `projects/b/locations/r/jobs/j/executions/e${execution++}` },
  }));

  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048, privateKeyEncoding: { type: "pkcs8", format: "pem" }, publicKeyEncoding: { type: "spki", format: "pem" } });
  const probot = new Probot({ appId: 1, privateKey, log: pino({ level: process.env.BENCH_LOG ? "info" : "silent" }, process.env.BENCH_LOG ? pino.destination(process.env.BENCH_LOG) : undefined), Octokit: KumoOctokit });
  const config = readConfig({ GOOGLE_CLOUD_PROJECT: `bench-${Date.now()}`, CLOUD_RUN_REGION: "r", CLOUD_RUN_API_ENDPOINT: endpoint, KUMO_JIT_PER_MINUTE: "100000" });
  const deps = createDeps(config);
  // Time stamps where runJob returns, keyed by job; the real launcher does the work.
  const returned = new Map<string, number>();
  const runJobMs: number[] = [];
  const real = deps.launcher;
  const launcher: Launcher = {
    cancel: (e) => real.cancel(e),
    describe: (e) => real.describe(e),
    finished: (e) => real.finished(e),
    outlivesRunner: (t) => real.outlivesRunner(t),
    failureVisibleAfterMs: (e) => real.failureVisibleAfterMs(e),
    machines: () => real.machines(),
    launch: async (target, jit, runner) => {
      const t = performance.now();
      const r = await real.launch(target, jit, runner);
      runJobMs.push(performance.now() - t);
      returned.set(r.execution, performance.now());
      return r;
    },
  };
  await probot.load(kumo({ ...deps, launcher }));

  const require = createRequire(import.meta.url);
  const examples = require("@octokit/webhooks-examples") as Array<{ name: string; examples: any[] }>;
  const queued = examples.find((e) => e.name === "workflow_job")!.examples.find((e) => e.action === "queued")!;
  const payload = (id: number) => ({
    ...queued,
    installation: { id: 1 },
    organization: { login: "octo-org" },
    repository: { ...queued.repository, name: "app", full_name: "octo-org/app", owner: { ...queued.repository.owner, login: "octo-org" } },
    workflow_job: { ...queued.workflow_job, id, labels: ["kumo", "small"] },
  });

  async function deliver(id: number): Promise<{ toRunJob: number; total: number }> {
    const before = new Set(returned.keys());
    const t0 = performance.now();
    await probot.receive({ id: `d-${id}`, name: "workflow_job", payload: payload(id) } as any);
    const total = performance.now() - t0;
    const record = await deps.store.get(id);
    const at = record?.execution ? returned.get(record.execution) : undefined;
    if (!at || before.has(record!.execution!)) throw new Error(`job ${id} was not launched`);
    return { toRunJob: at - t0, total };
  }

  // Warm-up: token, settings and group caches, connections (not measured).
  for (let i = 0; i < 20; i++) await deliver(1_000_000 + i);

  const results: Array<{ toRunJob: number; total: number }> = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < deliveries) results.push(await deliver(2_000_000 + next++));
    }),
  );
  const pct = (xs: number[], p: number) => xs.sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
  const fmt = (n: number) => n.toFixed(1).padStart(7);
  const a = results.map((r) => r.toRunJob);
  const b = results.map((r) => r.total);
  console.log(`fast path, ${deliveries} deliveries, concurrency ${concurrency}, Node ${process.version}, nock answering instantly, Firestore emulator`);
  console.log(`                              p50      p99      max   (ms)`);
  console.log(`webhook received → runJob  ${fmt(pct(a, 50))}  ${fmt(pct(a, 99))}  ${fmt(Math.max(...a))}`);
  console.log(`whole handler (+ record)   ${fmt(pct(b, 50))}  ${fmt(pct(b, 99))}  ${fmt(Math.max(...b))}`);
  const c = runJobMs.slice(20);
  console.log(`of which runJob (gax+nock) ${fmt(pct(c, 50))}  ${fmt(pct(c, 99))}  ${fmt(Math.max(...c))}`);
} finally {
  nock.cleanAll();
  await emulator?.stop();
}
process.exit(0);
