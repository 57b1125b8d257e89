import { afterAll, beforeAll, beforeEach, describe, expect, test } from "@jest/globals";
import nock from "nock";
import { FakeComputeEngine } from "../../bench/fakes/compute-engine.js";
import { ComputeEngineLauncher, requestIdOf, zonesFor } from "../../app/launcher/compute-engine-launcher.js";
import { runnerMachines } from "../../app/reconcile/runner-machines.js";
import { stalledLaunches } from "../../app/reconcile/stalled-launches.js";
import { createHarness, emulatorStore, reconcileWith, useNock, type Harness } from "../helpers/harness.js";
import { workflowJobPayload } from "../helpers/fixtures.js";
import { jitConfigFor } from "../helpers/github.js";
import { World } from "../helpers/world.js";

const TEMPLATE = "projects/kumo-test/global/instanceTemplates/kumo-runner-docker";
const SETTINGS = `runners:
  - labels: [kumo, small]
    group: cloudrun
    job: gha-runner-small
  - labels: [kumo-docker]
    group: cloudrun
    backend: compute-engine
    instanceTemplate: kumo-runner-docker
    zones: [us-central1-a, us-central1-b]
    maxRunMinutes: 120
`;
const DOCKER = ["kumo-docker"];
let nextJobId = 710_000_000;
const newJobId = () => nextJobId++;
type Delivered = { action: string; workflow_job: { id: number } };
const TEMPLATE_ITEMS = [
  { key: "startup-script", value: "#!/bin/bash\nexec /opt/kumo/startup.sh" },
  { key: "enable-oslogin", value: "TRUE" },
  // A template that (wrongly) carries the key must not give a VM two configs.
  { key: "kumo-jit-config", value: "stale" },
];

let ce: FakeComputeEngine;
useNock();
beforeAll(async () => {
  ce = await new FakeComputeEngine().listen();
  // The stand-in is local; GitHub stays behind nock.
  nock.enableNetConnect((host) => host.startsWith("127.0.0.1"));
});
afterAll(() => ce.close());
beforeEach(() => {
  ce.reset();
  ce.defineTemplate("kumo-runner-docker", {
    metadataItems: TEMPLATE_ITEMS,
    scheduling: { provisioningModel: "STANDARD", onHostMaintenance: "MIGRATE" },
    labels: { team: "ci" },
  });
});

const vmEnv = () => ({ COMPUTE_API_ENDPOINT: `http://127.0.0.1:${ce.port}`, KUMO_COMPUTE_ENGINE: "true" });

function setUp(options: { env?: Record<string, string> } = {}): { world: World; h: Harness } {
  const world = new World(SETTINGS);
  world.install();
  return { world, h: createHarness({ env: options.env ?? vmEnv() }) };
}

const queued = (id: number, labels = DOCKER) => workflowJobPayload("queued", { id, labels }) as Delivered;
function progress(action: "in_progress" | "completed", id: number, runnerName: string | null, labels = DOCKER) {
  const payload = workflowJobPayload(action, { id, labels });
  Object.assign(payload.workflow_job, { runner_name: runnerName, runner_id: runnerName ? 1 : null, conclusion: action === "completed" ? "success" : null });
  return payload as Delivered;
}
const liveVms = () => ce.instances().map((vm) => vm.name);

describe("Compute Engine backend: one VM per job", () => {
  test("a queued job of a VM spec gets one VM: the template's metadata, labels and scheduling merged with the JIT config as the one job-specific item", async () => {
    const { world, h } = setUp();
    const jobId = newJobId();
    await world.deliver(h, queued(jobId));

    const [registration] = [...world.registrations.values()];
    const name = registration!.name;
    expect(ce.inserts).toHaveLength(1);
    const insert = ce.inserts[0]!;
    expect(insert).toMatchObject({ project: "kumo-test", zone: "us-central1-a", sourceInstanceTemplate: TEMPLATE, requestId: requestIdOf(name, "us-central1-a"), outcome: "created" });
    expect(insert.requestId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-a[0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(insert.body).toEqual({
      name,
      labels: { team: "ci", "kumo-runner": "kumo" },
      metadata: {
        items: [
          { key: "startup-script", value: TEMPLATE_ITEMS[0]!.value },
          { key: "enable-oslogin", value: "TRUE" },
          { key: "kumo-jit-config", value: jitConfigFor(name) },
        ],
      },
      scheduling: { provisioningModel: "STANDARD", onHostMaintenance: "MIGRATE", maxRunDuration: { seconds: "7200" }, instanceTerminationAction: "DELETE" },
    });
    expect(world.executions.size).toBe(0); // no Cloud Run execution for a VM spec
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "launched", execution: `projects/kumo-test/zones/us-central1-a/instances/${name}` });
    expect(h.logs.text()).not.toContain(jitConfigFor(name));
  });

  test("mixed specs in one settings file: a Cloud Run job and a VM, each from its own backend", async () => {
    const { world, h } = setUp();
    const [small, docker] = [newJobId(), newJobId()];
    await world.deliver(h, queued(small, ["kumo", "small"]));
    await world.deliver(h, queued(docker));

    expect(world.executions.size).toBe(1);
    expect([...world.executions.values()][0]!.runnerName).toMatch(new RegExp(`^kumo-${small}-1-`));
    expect(liveVms()).toEqual([expect.stringMatching(new RegExp(`^kumo-${docker}-1-`))]);
  });

  test("the VM is deleted when its job completes, also when it ran another job of the same labels", async () => {
    const { world, h } = setUp();
    const [a, b] = [newJobId(), newJobId()];
    await world.deliver(h, queued(a));
    await world.deliver(h, queued(b));
    const nameA = liveVms().find((n) => n.startsWith(`kumo-${a}-`))!;
    const nameB = liveVms().find((n) => n.startsWith(`kumo-${b}-`))!;

    // GitHub gave job a to b's runner and job b to a's: each completion removes the VM that ran it.
    await world.deliver(h, progress("in_progress", a, nameB));
    await world.deliver(h, progress("completed", a, nameB));
    expect(liveVms()).toEqual([nameA]);
    await world.deliver(h, progress("completed", b, nameA));
    expect(liveVms()).toEqual([]);
    expect(ce.deletes.map((d) => d.instance)).toEqual([nameB, nameA]);
  });

  test("a job cancelled before any runner took it: registration and VM both removed", async () => {
    const { world, h } = setUp();
    const jobId = newJobId();
    await world.deliver(h, queued(jobId));
    expect(liveVms()).toHaveLength(1);

    await world.deliver(h, progress("completed", jobId, null));

    expect(liveVms()).toEqual([]);
    expect([...world.registrations.values()].every((r) => r.deleted)).toBe(true);
  });

  test("a zone out of quota at insert: the same launch goes to the next zone", async () => {
    const { world, h } = setUp();
    ce.quotaExceeded("us-central1-a", 1);
    const jobId = newJobId();
    await world.deliver(h, queued(jobId));

    expect(ce.inserts.map((i) => [i.zone, i.outcome])).toEqual([["us-central1-a", "refused"], ["us-central1-b", "created"]]);
    expect((await h.deps.store.get(jobId))!.execution).toMatch(/^projects\/kumo-test\/zones\/us-central1-b\/instances\//);
  });

  test("a stock-out in the first zone shows after the insert answered: reconcile looks early and relaunches in the next zone, saying why", async () => {
    const { world, h } = setUp();
    ce.stockOut("us-central1-a", 1);
    const jobId = newJobId();
    await world.deliver(h, queued(jobId));
    expect(ce.inserts.map((i) => i.outcome)).toEqual(["stockout"]);
    expect(liveVms()).toEqual([]);

    // Before the VM failure can show, reconcile leaves the launch alone.
    let [summary] = await reconcileWith(h, {}, [stalledLaunches], new Date(Date.now() + 10_000));
    expect(summary!.counts).toMatchObject({ checked: 0 });

    [summary] = await reconcileWith(h, {}, [stalledLaunches], new Date(Date.now() + 61_000));
    expect(summary!.counts).toMatchObject({ checked: 1, relaunched: 1 });
    expect(ce.inserts.map((i) => [i.zone, i.outcome])).toEqual([["us-central1-a", "stockout"], ["us-central1-b", "created"]]);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "launched", attempts: 2, execution: expect.stringMatching(/zones\/us-central1-b\/instances\/kumo-/) });
    expect(h.logs.find(/reconcile: launching a runner/)).toMatchObject({ why: expect.stringMatching(/^ZONE_RESOURCE_POOL_EXHAUSTED in us-central1-a: /) });
    // The first registration went with its VM.
    expect([...world.registrations.values()].map((r) => r.deleted)).toEqual([true, false]);
  });

  test("every zone out of stock: past the attempt bound the job is recorded failed with the zone's reason", async () => {
    const { world, h } = setUp();
    ce.stockOut("us-central1-a");
    ce.stockOut("us-central1-b");
    const jobId = newJobId();
    await world.deliver(h, queued(jobId));

    const [summary] = await reconcileWith(h, { maxAttempts: 1 }, [stalledLaunches], new Date(Date.now() + 61_000));

    expect(summary!.counts).toMatchObject({ failed: 1 });
    expect(await h.deps.store.get(jobId)).toMatchObject({
      state: "failed",
      lastError: expect.stringMatching(/^gave up after 1 launch attempts: ZONE_RESOURCE_POOL_EXHAUSTED in us-central1-a/),
    });
    expect(ce.instances()).toEqual([]);
  });

  test("the insert fails (500): no VM, the registration is undone, the job is left pending for reconcile, the delivery fails", async () => {
    const { world, h } = setUp();
    ce.failNext("compute insert", { status: 500, body: { error: { code: 500, message: "Internal error" } } });
    const jobId = newJobId();
    expect(await world.deliver(h, queued(jobId))).toBe(false);

    expect(ce.instances()).toEqual([]);
    expect([...world.registrations.values()].map((r) => r.deleted)).toEqual([true]);
    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "pending", lastError: expect.stringMatching(/^insert VM kumo-\d+-1-[0-9a-f]+ in us-central1-a: INTERNAL: Internal error/) });
  });

  test("a lost answer (503) is asked again with the same requestId in the same zone: one VM; twice lost, the job is left pending, never moved to another zone", async () => {
    const { world, h } = setUp();
    const unavailable = { status: 503, body: { error: { code: 503, message: "The service is currently unavailable." } } };
    ce.failNext("compute insert", unavailable);
    const first = newJobId();
    expect(await world.deliver(h, queued(first))).toBe(true);
    const [a, b] = ce.inserts;
    expect([a!.zone, b!.zone, a!.requestId === b!.requestId, a!.outcome, b!.outcome]).toEqual(["us-central1-a", "us-central1-a", true, "fault", "created"]);
    expect(ce.instances()).toHaveLength(1);

    ce.failNext("compute insert", unavailable, 2);
    const second = newJobId();
    expect(await world.deliver(h, queued(second))).toBe(false);
    expect(ce.inserts.slice(2).map((i) => i.zone)).toEqual(["us-central1-a", "us-central1-a"]);
    expect(await h.deps.store.get(second)).toMatchObject({ state: "pending" });
  });

  test("without maxRunMinutes the template's own run limit stays (VM_MAX_RUN_DURATION of deploy.sh)", async () => {
    const { world, h } = setUp();
    ce.defineTemplate("kumo-runner-docker", { metadataItems: TEMPLATE_ITEMS, scheduling: { maxRunDuration: { seconds: "86400" }, instanceTerminationAction: "STOP" } });
    world.settingsYaml = SETTINGS.replace("    maxRunMinutes: 120\n", "");
    await world.deliver(h, queued(newJobId()));
    expect(ce.inserts[0]!.body.scheduling).toEqual({ maxRunDuration: { seconds: "86400" }, instanceTerminationAction: "DELETE" });
  });

  test("the VM is made but its record cannot be written: the launch is undone, VM deleted and registration removed", async () => {
    const { world, h } = setUp();
    const markLaunched = h.deps.store.markLaunched.bind(h.deps.store);
    h.deps.store.markLaunched = async () => {
      throw new Error("Firestore unavailable");
    };
    const jobId = newJobId();
    await world.deliver(h, queued(jobId));
    h.deps.store.markLaunched = markLaunched;

    expect(ce.made).toHaveLength(1);
    expect(ce.instances()).toEqual([]);
    expect(ce.deletes.map((d) => d.instance)).toEqual([ce.made[0]!.name]);
    expect([...world.registrations.values()].map((r) => r.deleted)).toEqual([true]);
  });

  test("a redelivery storm on two instances sharing one store: still one VM per job", async () => {
    const world = new World(SETTINGS);
    world.install();
    const store = emulatorStore();
    const a = createHarness({ store, env: vmEnv() });
    const b = createHarness({ store, env: vmEnv() });
    const ids = Array.from({ length: 8 }, () => newJobId());

    await Promise.all(ids.flatMap((id) => Array.from({ length: 4 }, (_, i) => world.deliver(i % 2 ? a : b, queued(id), `storm-${id}`))));

    expect(ce.made).toHaveLength(ids.length);
    for (const id of ids) expect(ce.made.filter((vm) => vm.name.startsWith(`kumo-${id}-`))).toHaveLength(1);
    expect(ce.callsTo("compute insert")).toHaveLength(ids.length);
  });

  test("a deployment without KUMO_COMPUTE_ENGINE: a VM spec's job fails with the reason, and no Compute Engine call is ever made", async () => {
    const { world, h } = setUp({ env: { COMPUTE_API_ENDPOINT: `http://127.0.0.1:${ce.port}` } });
    const jobId = newJobId();
    await world.deliver(h, queued(jobId));
    await reconcileWith(h, {}, [runnerMachines]);

    expect(await h.deps.store.get(jobId)).toMatchObject({ state: "failed", lastError: expect.stringContaining("set KUMO_COMPUTE_ENGINE=true") });
    expect(ce.calls).toHaveLength(0);
    expect([...world.registrations.values()].every((r) => r.deleted)).toBe(true);
  });
});

describe("reconcile: runner machines", () => {
  test("deletes stopped VMs and VMs past the grace whose runner is not online; keeps booting ones and those whose runner is online or busy", async () => {
    const { world, h } = setUp();
    const ids = Array.from({ length: 4 }, () => newJobId());
    for (const id of ids) await world.deliver(h, queued(id));
    const [stopped, idle, busy, silent] = ids.map((id) => liveVms().find((n) => n.startsWith(`kumo-${id}-`))!);
    ce.stop(stopped!);
    world.connect(idle!);
    world.connect(busy!, true);

    // Within the launch grace only the stopped one goes: the others may still be booting.
    let [summary] = await reconcileWith(h, {}, [runnerMachines], new Date(Date.now() + 60_000));
    expect(summary!.counts).toEqual({ machines: 4, running: 0, booting: 3, deleted: 1, unknown: 0, errors: 0 });
    expect(liveVms().sort()).toEqual([idle, busy, silent].sort());

    [summary] = await reconcileWith(h, {}, [runnerMachines], new Date(Date.now() + 6 * 60_000));
    expect(summary!.counts).toEqual({ machines: 3, running: 2, booting: 0, deleted: 1, unknown: 0, errors: 0 });
    expect(liveVms().sort()).toEqual([idle, busy].sort());
    expect(h.logs.find(/runner machine deleted/)).toMatchObject({ runnerName: stopped, status: "TERMINATED" });
  });

  test("runners that cannot be read: old VMs are kept this pass, stopped ones still go", async () => {
    const { world, h } = setUp();
    const [a, b] = [newJobId(), newJobId()];
    await world.deliver(h, queued(a));
    await world.deliver(h, queued(b));
    ce.stop(liveVms().find((n) => n.startsWith(`kumo-${a}-`))!);
    world.listRunnersFault = () => ({ status: 500, body: { message: "boom" } });

    const [summary] = await reconcileWith(h, {}, [runnerMachines], new Date(Date.now() + 6 * 60_000));

    expect(summary!.counts).toMatchObject({ machines: 2, deleted: 1, unknown: 1 });
    expect(liveVms()).toEqual([expect.stringMatching(new RegExp(`^kumo-${b}-`))]);
  });

  test("a Cloud Run-only deployment: no machine to look at, no GitHub call", async () => {
    const { h } = setUp({ env: {} });
    const [summary] = await reconcileWith(h, {}, [runnerMachines]);
    expect(summary).toEqual({ step: "runner machines", counts: { machines: 0, running: 0, booting: 0, deleted: 0, unknown: 0, errors: 0 } });
    expect(ce.calls).toHaveLength(0);
  });
});

describe("the launcher alone", () => {
  const launcher = () => new ComputeEngineLauncher({ enabled: true, endpoint: `http://127.0.0.1:${ce.port}`, project: "kumo-test", runnerPrefix: "kumo" });
  const target = { job: TEMPLATE, backend: "compute-engine" as const, zones: ["us-central1-a", "us-central1-b", "us-central1-c"], maxRunMinutes: 60 };

  test("zones are tried from the attempt's turn: attempt 2 starts at the second zone", () => {
    expect(zonesFor(["a", "b", "c"], 1)).toEqual(["a", "b", "c"]);
    expect(zonesFor(["a", "b", "c"], 2)).toEqual(["b", "c", "a"]);
    expect(zonesFor(["a", "b", "c"], 4)).toEqual(["a", "b", "c"]);
  });

  test("the template is read once for many launches; describe follows the VM; cancel of a gone VM is fine", async () => {
    const l = launcher();
    const first = await l.launch(target, "jit-1", { name: "kumo-1-1-aaaaaa", attempt: 1 });
    await l.launch(target, "jit-2", { name: "kumo-2-1-bbbbbb", attempt: 1 });
    expect(ce.callsTo("compute templates get")).toHaveLength(1);

    expect(await l.describe(first.execution)).toEqual({ running: true, done: false, failed: false });
    ce.stop("kumo-1-1-aaaaaa");
    expect(await l.describe(first.execution)).toEqual({ running: false, done: true, failed: false });
    await l.cancel(first.execution);
    expect(await l.describe(first.execution)).toBeUndefined();
    await expect(l.cancel(first.execution)).resolves.toBeUndefined();
    expect(l.failureVisibleAfterMs()).toBe(60_000);
    await l.close();
  });

  test("a missing template is retried (deploy.sh replaces a changed one under its name); every zone refusing too", async () => {
    const l = launcher();
    await expect(l.launch({ ...target, job: "projects/kumo-test/global/instanceTemplates/nope" }, "jit", { name: "kumo-3-1-cccccc", attempt: 1 })).rejects.toMatchObject({
      retryable: true,
      message: expect.stringContaining("instance template projects/kumo-test/global/instanceTemplates/nope does not exist"),
    });
    for (const zone of target.zones) ce.quotaExceeded(zone, 1);
    await expect(l.launch(target, "jit", { name: "kumo-4-1-dddddd", attempt: 1 })).rejects.toMatchObject({
      retryable: true,
      message: expect.stringMatching(/^no zone could make VM kumo-4-1-dddddd: us-central1-a: .*; us-central1-b: .*; us-central1-c: /),
    });
    await l.close();
  });

  test("an insert still under way is a machine starting, not a missing one", async () => {
    const l = launcher();
    ce.configure({ operationMs: 60_000 });
    try {
      ce.stockOut("us-central1-a", 1);
      const { execution } = await l.launch(target, "jit", { name: "kumo-7-1-abcdef", attempt: 1 });
      expect(await l.describe(execution)).toEqual({ running: true, done: false, failed: false });
    } finally {
      ce.configure({ operationMs: 0 });
      await l.close();
    }
  });

  test("machines(): only this deployment's VMs, with their state", async () => {
    const l = launcher();
    await l.launch(target, "jit", { name: "kumo-5-1-eeeeee", attempt: 2 });
    const other = new ComputeEngineLauncher({ enabled: true, endpoint: `http://127.0.0.1:${ce.port}`, project: "kumo-test", runnerPrefix: "other" });
    await other.launch(target, "jit", { name: "other-6-1-ffffff", attempt: 1 });
    ce.stop("kumo-5-1-eeeeee");

    expect(await l.machines()).toEqual([
      { execution: "projects/kumo-test/zones/us-central1-b/instances/kumo-5-1-eeeeee", name: "kumo-5-1-eeeeee", status: "TERMINATED", stopped: true, createdAt: expect.any(Date) },
    ]);
    await Promise.all([l.close(), other.close()]);
  });

  test("templateInfo() for npm run doctor: what a template gives its VMs, or undefined when there is none", async () => {
    const l = launcher();
    ce.defineTemplate("projects/kumo-test/regions/us-central1/instanceTemplates/regional", { machineType: "e2-standard-8" });
    expect(await l.templateInfo(TEMPLATE)).toEqual({ machineType: expect.stringMatching(/e2-standard-2$/), serviceAccounts: [], startupScript: true });
    expect(await l.templateInfo("projects/kumo-test/regions/us-central1/instanceTemplates/regional")).toEqual({ machineType: expect.stringMatching(/e2-standard-8$/), serviceAccounts: [], startupScript: false });
    expect(await l.templateInfo("projects/kumo-test/global/instanceTemplates/nope")).toBeUndefined();
    await l.close();
  });
});
