import { describe, expect, test } from "@jest/globals";
import { staleRunners } from "../../app/reconcile/stale-runners.js";
import { warmPoolKey, warmPools } from "../../app/reconcile/warm-pool.js";
import { createHarness, emulatorStore, reconcileWith, useNock, type Harness } from "../helpers/harness.js";
import { closedWindow, INSTALLATION_ID, warmSettings, workflowJobPayload } from "../helpers/fixtures.js";
import { World } from "../helpers/world.js";

const LABELS = ["kumo", "small"];
const ALWAYS_TWO = warmSettings("      size: 2");
const CLOSED = () => warmSettings(closedWindow());

let nextJobId = 720_000_000;
type Delivered = { action: string; workflow_job: { id: number } };
const queued = (id: number) => workflowJobPayload("queued", { id, labels: LABELS }) as Delivered;
function progress(action: "in_progress" | "completed", id: number, runnerName: string | null) {
  const payload = workflowJobPayload(action, { id, labels: LABELS });
  Object.assign(payload.workflow_job, { runner_name: runnerName, runner_id: runnerName ? 1 : null, conclusion: action === "completed" ? "success" : null });
  return payload as Delivered;
}

useNock();

function setUp(yaml = ALWAYS_TWO): { world: World; h: Harness } {
  const world = new World(yaml);
  world.install();
  return { world, h: createHarness() };
}
const alive = (world: World) => [...world.registrations.values()].filter((r) => !r.deleted);
const warmNames = (world: World) => alive(world).filter((r) => /^kumo-0-\d+-/.test(r.name)).map((r) => r.name);
const pass = async (h: Harness, minutesLater = 0) => (await reconcileWith(h, {}, [warmPools], new Date(Date.now() + minutesLater * 60_000)))[0]!;

describe("warm pools", () => {
  test("one pass fills the pool: two runners with the spec's labels and group, each with one execution, recorded on its launch place", async () => {
    const { world, h } = setUp();
    const summary = await pass(h);

    expect(summary.counts).toEqual({ pools: 1, target: 2, warm: 0, booting: 0, launched: 2, retired: 0, errors: 0 });
    expect(summary.details).toEqual(["octo-org [kumo, small] → gha-runner-small: warm 0/2, booting 0, launched 2, retired 0"]);
    expect(warmNames(world)).toEqual([expect.stringMatching(/^kumo-0-1-[0-9a-f]{6}$/), expect.stringMatching(/^kumo-0-2-[0-9a-f]{6}$/)]);
    expect(alive(world).map((r) => r.labels)).toEqual([LABELS, LABELS]);
    expect(world.running()).toBe(2);
    const found = await Promise.all(warmNames(world).map((n) => h.deps.store.findWarmLaunch(n)));
    expect(found.map((l) => [l!.turn, l!.runnerName, l!.execution])).toEqual(
      [...world.executions.entries()].map(([execution, e]) => [Number(e.runnerName.split("-")[2]), e.runnerName, execution]),
    );

    // The next pass, runners still booting: nothing more.
    expect((await pass(h, 1)).counts).toMatchObject({ warm: 0, booting: 2, launched: 0, retired: 0 });
    expect(world.running()).toBe(2);
  });

  test("two passes at once never overfill the pool", async () => {
    const { world, h } = setUp();
    const store = emulatorStore();
    const a = createHarness({ store });
    const b = createHarness({ store });
    void h;
    const [sa, sb] = await Promise.all([pass(a), pass(b)]);
    expect(sa.counts.launched! + sb.counts.launched!).toBe(2);
    expect(warmNames(world)).toHaveLength(2);
  });

  test("a warm runner takes a job: the job's own runner becomes the new warm one, nothing more is launched (1:1 kept)", async () => {
    const { world, h } = setUp();
    await pass(h);
    const [w1, w2] = warmNames(world);
    world.connect(w1!);
    world.connect(w2!);

    const jobId = nextJobId++;
    await world.deliver(h, queued(jobId));
    const own = alive(world).find((r) => r.name.startsWith(`kumo-${jobId}-`))!;
    expect(own).toBeDefined(); // the fast path still made one runner for the job
    // GitHub gave the job to the warm runner w1; the job's own runner comes online idle.
    world.connect(w1!, true);
    await world.deliver(h, progress("in_progress", jobId, w1!));
    world.connect(own.name);

    const summary = await pass(h, 1);
    expect(summary.counts).toMatchObject({ target: 2, warm: 2, launched: 0, retired: 0 });
    expect(alive(world).map((r) => r.name).sort()).toEqual([w1, w2, own.name].sort());
  });

  test("a storm of redeliveries: one runner for the job, and the pool stays at its size", async () => {
    const { world, h } = setUp();
    await pass(h);
    for (const name of warmNames(world)) world.connect(name);
    const jobId = nextJobId++;
    await Promise.all(Array.from({ length: 6 }, () => world.deliver(h, queued(jobId), "storm-guid")));
    expect(world.executionsForJob(jobId)).toBe(1);

    // The job's runner is needed by its job (still queued): not the pool's.
    expect((await pass(h, 1)).counts).toMatchObject({ warm: 2, launched: 0, retired: 0 });
    expect(alive(world)).toHaveLength(3);
  });

  test("outside every window the pool is emptied; a busy runner is never retired", async () => {
    const { world, h } = setUp();
    await pass(h);
    const [idle, busy] = warmNames(world);
    world.connect(idle!);
    world.connect(busy!, true);
    world.settingsYaml = CLOSED();
    h.deps.settings.invalidate(INSTALLATION_ID);

    const summary = await pass(h, 1);
    expect(summary.counts).toMatchObject({ target: 0, warm: 0, launched: 0, retired: 1 });
    expect(alive(world).map((r) => r.name)).toEqual([busy]);
    expect([...world.executions.values()].filter((e) => e.running).map((e) => e.runnerName)).toEqual([busy]);
  });

  test("near its age limit a runner is recycled while idle (replaced in the same pass); a busy one of the same age is not", async () => {
    const { world, h } = setUp();
    await pass(h);
    const [idle, busy] = warmNames(world);
    world.connect(idle!);
    world.connect(busy!, true);

    const summary = await pass(h, 21); // maxIdleMinutes: 20
    // The busy one serves a job, so the pool's two idle runners are both new.
    expect(summary.counts).toMatchObject({ warm: 0, retired: 1, launched: 2 });
    expect(alive(world).map((r) => r.name)).toEqual([busy, expect.stringMatching(/^kumo-0-3-/), expect.stringMatching(/^kumo-0-4-/)]);
    expect(alive(world).map((r) => r.name)).not.toContain(idle);
  });

  test("a runner that never came online within the start grace is replaced", async () => {
    const { world, h } = setUp();
    await pass(h);
    const summary = await pass(h, 6);
    expect(summary.counts).toMatchObject({ booting: 0, retired: 2, launched: 2 });
    expect(warmNames(world)).toHaveLength(2);
    expect(world.registrations.size).toBe(4);
  });

  test("a job cancelled before pickup leaves its runner to the pool; stale runners leave pooled runners alone", async () => {
    const { world, h } = setUp();
    const jobId = nextJobId++;
    await world.deliver(h, queued(jobId));
    await world.deliver(h, progress("completed", jobId, null));
    const own = alive(world).find((r) => r.name.startsWith(`kumo-${jobId}-`))!;
    expect(own).toBeDefined();
    world.connect(own.name);

    const [stale] = await reconcileWith(h, {}, [staleRunners], new Date(Date.now() + 10 * 60_000));
    expect(stale!.counts).toMatchObject({ pooled: 1, deleted: 0 });
    // It is the pool's now: one warm runner, one more launched.
    expect((await pass(h, 1)).counts).toMatchObject({ warm: 1, launched: 1 });
  });

  test("GitHub reaps an idle warm runner a minute after it came online: its place is free at once and the next pass replaces it", async () => {
    const { world, h } = setUp();
    await pass(h);
    const [reaped, kept] = warmNames(world);
    world.connect(reaped!);
    world.connect(kept!);
    // GitHub removes the registration; the runner exits and its execution ends.
    [...world.registrations.values()].find((r) => r.name === reaped)!.deleted = true;

    const summary = await pass(h, 2);
    expect(summary.counts).toMatchObject({ warm: 1, launched: 1, retired: 0 });
    expect(warmNames(world)).toEqual([kept, expect.stringMatching(/^kumo-0-3-/)]);
    // The other place's runner is online: had the pool been short by two, both places would have been free.
    expect(warmNames(world)[1]).not.toBe(reaped);
  });

  test("whichever runner GitHub reaps, the pool settles at its size: one replacement, then quiet passes", async () => {
    const { world, h } = setUp();
    await pass(h);
    const [first, second] = warmNames(world);
    world.connect(first!);
    world.connect(second!);
    [...world.registrations.values()].find((r) => r.name === second)!.deleted = true;

    const counts = [];
    for (let i = 1; i <= 4; i++) {
      counts.push((await pass(h, i * 2)).counts);
      for (const name of warmNames(world)) world.connect(name);
    }
    expect(counts.map((c) => [c.launched, c.retired])).toEqual([
      [1, 0],
      [0, 0],
      [0, 0],
      [0, 0],
    ]);
    expect(warmNames(world)).toEqual([first, expect.stringMatching(/^kumo-0-3-/)]);
    expect(world.registrations.size).toBe(3);
  });

  test("two passes at once with the pool one short: one launch between them", async () => {
    const { world, h } = setUp();
    await pass(h);
    const [first, second] = warmNames(world);
    world.connect(first!);
    [...world.registrations.values()].find((r) => r.name === second)!.deleted = true;
    const store = h.deps.store;
    const b = createHarness({ deps: { store } });
    const at = new Date(Date.now() + 2 * 60_000);
    const [sa, sb] = await Promise.all([reconcileWith(h, {}, [warmPools], at), reconcileWith(b, {}, [warmPools], at)]);
    expect(sa[0]!.counts.launched! + sb[0]!.counts.launched!).toBe(1);
    expect(warmNames(world)).toHaveLength(2);
  });

  test("a runner GitHub still lists idle but that took a job (its in_progress webhook came) is not retired", async () => {
    const { world, h } = setUp();
    await pass(h);
    const [taken, other] = warmNames(world);
    world.connect(taken!);
    world.connect(other!);
    const jobId = nextJobId++;
    await world.deliver(h, queued(jobId));
    await world.deliver(h, progress("in_progress", jobId, taken!));
    // Outside the window both would go; GitHub's list still shows `taken` idle (its busy flag lags).
    world.settingsYaml = CLOSED();
    h.deps.settings.invalidate(INSTALLATION_ID);

    const summary = await pass(h, 1);
    expect(summary.counts).toMatchObject({ target: 0, retired: 1 });
    expect(alive(world).map((r) => r.name)).toContain(taken);
    expect(alive(world).map((r) => r.name)).not.toContain(other);
  });

  test("a runner another pass registered but has not yet recorded counts as booting (found by its turn), never retired", async () => {
    const { world, h } = setUp();
    const key = warmPoolKey("octo-org", "projects/kumo-test/locations/us-central1/jobs/gha-runner-small", LABELS);
    const [launch] = await h.deps.store.updateWarmPool(key, { org: "octo-org", name: "pool" }, (l) => ({ keep: l, add: 1 }));
    const id = world.registerOrphan(`kumo-0-${launch!.turn}-abcdef`);
    world.registrations.get(id)!.labels = LABELS;

    const summary = await pass(h);
    expect(summary.counts).toMatchObject({ booting: 1, launched: 1, retired: 0 });
    expect(world.registrations.get(id)!.deleted).toBe(false);
  });
});
