import { afterAll, beforeAll, describe, expect, jest, test } from "@jest/globals";
import { FakeComputeEngine } from "../../bench/fakes/compute-engine.js";
import { BENCH_ORG, BENCH_REPO, RUNNER_GROUP } from "../../bench/fakes/github.js";
import {
  closeFirestores,
  freePort,
  notCloudLogging,
  postWebhook,
  processEnv,
  readJob,
  startScript,
  startStandIns,
  stopAll,
  uniqueProject,
  updateJob,
  waitFor,
  type Proc,
  type StandIns,
} from "../helpers/processes.js";
import { workflowJobPayload } from "../helpers/fixtures.js";

// The Compute Engine backend as deployed: `npm start` and `npm run reconcile`
// spawned with KUMO_COMPUTE_ENGINE=true against the Firestore emulator and the
// GitHub, Cloud Run and Compute Engine stand-ins (COMPUTE_API_ENDPOINT).
jest.setTimeout(40_000);

let nextJobId = 7_300_000;
const SETTINGS = `runners:
  - labels: [kumo, small]
    group: ${RUNNER_GROUP.name}
    job: gha-runner-small
  - labels: [kumo, docker]
    group: ${RUNNER_GROUP.name}
    backend: compute-engine
    instanceTemplate: kumo-runner-docker
    zones: [us-central1-a, us-central1-f]
`;

function dockerJob(action: "queued" | "in_progress" | "completed", jobId: number, runnerName?: string | null) {
  const payload = workflowJobPayload(action, { id: jobId, labels: ["kumo", "docker"], org: BENCH_ORG, repo: BENCH_REPO });
  if (runnerName !== undefined) Object.assign(payload.workflow_job, { runner_name: runnerName, runner_id: runnerName ? 1 : null });
  return payload;
}

let s: StandIns;
let ce: FakeComputeEngine;
let server: Proc;
let project: string;
let env: Record<string, string>;
let hook: string;

beforeAll(async () => {
  [s, ce] = await Promise.all([startStandIns(), new FakeComputeEngine().listen()]);
  ce.defineTemplate("kumo-runner-docker", { metadataItems: [{ key: "startup-script", value: "#!/bin/bash\n/opt/kumo/startup.sh" }] });
  s.github.settingsYaml = SETTINGS;
  project = uniqueProject();
  const port = await freePort();
  hook = `http://127.0.0.1:${port}/api/github/webhooks`;
  env = processEnv(s, { project, port, extra: { COMPUTE_API_ENDPOINT: `http://127.0.0.1:${ce.port}`, KUMO_COMPUTE_ENGINE: "true" } });
  server = startScript("start", env);
  await server.waitForHttp(port, "/ping");
});
afterAll(async () => {
  await server?.stop();
  await stopAll();
  await Promise.allSettled([s?.close(), ce?.close()]);
  await closeFirestores();
});

describe("npm start with a compute-engine spec", () => {
  test("queued → one VM from the template carrying its registration's JIT config; completed → the VM is deleted", async () => {
    const jobId = nextJobId++;
    const res = await postWebhook(hook, "workflow_job", dockerJob("queued", jobId));
    expect(res.status).toBe(200);

    const [registration] = s.github.liveRegistrations(jobId);
    expect(registration).toBeDefined();
    const vm = ce.instance(registration!.name);
    expect(vm).toMatchObject({ zone: "us-central1-a", sourceInstanceTemplate: `projects/${project}/global/instanceTemplates/kumo-runner-docker`, labels: { "kumo-runner": "kumo" } });
    expect(vm!.metadataItems.map((i) => i.key)).toEqual(["startup-script", "kumo-jit-config"]);
    expect(ce.jitConfigOf(registration!.name)).toBe(registration!.jitConfig);
    expect(s.cloudRun.executionsOf(jobId)).toHaveLength(0);
    expect(await readJob(project, jobId)).toMatchObject({ state: "launched", execution: `projects/${project}/zones/us-central1-a/instances/${registration!.name}` });

    expect((await postWebhook(hook, "workflow_job", dockerJob("in_progress", jobId, registration!.name))).status).toBe(200);
    expect((await postWebhook(hook, "workflow_job", dockerJob("completed", jobId, registration!.name))).status).toBe(200);
    expect(ce.deletes.map((d) => d.instance)).toEqual([registration!.name]);
    expect(ce.instances()).toEqual([]);
    // The JIT config never reaches a log line.
    expect(server.lines.some((l) => l.text.includes(registration!.jitConfig))).toBe(false);
    expect(notCloudLogging(server.lines)).toEqual([]);
  });
});

describe("npm run reconcile with VMs", () => {
  test("a stock-out found early is relaunched in the next zone; a stopped VM and an old VM without an online runner are deleted; one summary line per step, exit 0", async () => {
    // A stopped VM (its runner exited) and one whose runner never came online, created 10 minutes ago.
    const [stopped, silent, stocked] = [nextJobId++, nextJobId++, nextJobId++];
    for (const jobId of [stopped, silent]) expect((await postWebhook(hook, "workflow_job", dockerJob("queued", jobId))).status).toBe(200);
    const vmOf = (jobId: number) => ce.instances().find((vm) => vm.name.startsWith(`kumo-${jobId}-`))!;
    const stoppedVm = vmOf(stopped).name;
    const silentVm = vmOf(silent);
    ce.stop(stoppedVm);
    silentVm.creationTimestamp = new Date(Date.now() - 10 * 60_000).toISOString();

    // A job whose first zone runs out of stock after the insert answered.
    ce.stockOut("us-central1-a", 1);
    expect((await postWebhook(hook, "workflow_job", dockerJob("queued", stocked))).status).toBe(200);
    s.github.setJob(stocked, { status: "queued", repo: `${BENCH_ORG}/${BENCH_REPO}` });
    expect(ce.instances().filter((vm) => vm.name.startsWith(`kumo-${stocked}-`))).toEqual([]);
    // Reconcile looks at a VM launch once a minute has passed: the launch is made two minutes old.
    expect(await readJob(project, stocked)).toMatchObject({ state: "launched" });
    await updateJob(project, stocked, { launchedAt: new Date(Date.now() - 2 * 60_000) });

    const cli = startScript("reconcile", { ...env, PORT: String(await freePort()) });
    const { code } = await cli.waitForExit(30_000);
    expect(code).toBe(0);

    const summaries = cli.logEntries("stdout").filter((e) => typeof e.counts === "object" && e.counts !== null);
    const countsOf = (step: string) => summaries.find((e) => e.step === step)?.counts as Record<string, number>;
    expect(countsOf("launches that never came up")).toMatchObject({ relaunched: 1, errors: 0 });
    expect(countsOf("runner machines")).toMatchObject({ deleted: 2, errors: 0 });
    expect(ce.instance(stoppedVm)!.deleted).toBe(true);
    expect(ce.instance(silentVm.name)!.deleted).toBe(true);
    const relaunched = await waitFor("relaunched record", async () => {
      const r = await readJob(project, stocked);
      return r?.attempts === 2 ? r : undefined;
    });
    expect(relaunched.execution).toMatch(new RegExp(`^projects/${project}/zones/us-central1-f/instances/kumo-${stocked}-2-`));
    expect(notCloudLogging(cli.lines)).toEqual([]);
  });
});
