import { describe, expect, test } from "@jest/globals";
import type { LaunchQueue, QueuedWarmLaunch } from "../../app/launch-queue/queue.js";
import { warmPools } from "../../app/reconcile/warm-pool.js";
import { createHarness, emulatorStore, reconcileWith, useNock, type Harness } from "../helpers/harness.js";
import { closedWindow, INSTALLATION_ID, warmSettings } from "../helpers/fixtures.js";
import { World } from "../helpers/world.js";

// Warm pools when something fails: each failure is counted, said in one line, and loses nothing.
const LABELS = ["kumo", "small"];
const pool = (group = "cloudrun") => warmSettings("      size: 2", group);
const closed = () => warmSettings(closedWindow());

useNock();

function setUp(yaml: string, queue?: LaunchQueue): { world: World; h: Harness; store: ReturnType<typeof emulatorStore> } {
  const world = new World(yaml);
  world.install();
  const store = emulatorStore();
  return { world, store, h: createHarness({ store, ...(queue ? { deps: { queue } } : {}) }) };
}
const pass = async (h: Harness) => (await reconcileWith(h, {}, [warmPools]))[0]!;
const alive = (world: World) => [...world.registrations.values()].filter((r) => !r.deleted);
const line = (h: Harness, msg: string) => h.logs.entries.filter((e) => e.msg === msg);

/** A launch queue that records warm launches, or refuses each with `error`. */
function fakeQueue(error?: Error): LaunchQueue & { warm: QueuedWarmLaunch[] } {
  const warm: QueuedWarmLaunch[] = [];
  return {
    enqueues: true,
    warm,
    enqueue: () => Promise.reject(new Error("no job launch here")),
    enqueueWarm: async (launch) => {
      if (error) throw error;
      warm.push(launch);
    },
  };
}

describe("warm pools: faults", () => {
  test("a spec whose runner group does not exist: its pool is not kept, one error with the spec's labels, nothing made", async () => {
    const { world, h } = setUp(pool("no-such-group"));
    const summary = await pass(h);

    expect(summary.counts).toEqual({ pools: 1, target: 0, warm: 0, booting: 0, launched: 0, retired: 0, errors: 1 });
    expect(line(h, "reconcile: warm pool not kept")).toEqual([
      expect.objectContaining({ level: 50, org: "octo-org", labels: LABELS, err: 'runner group "no-such-group" does not exist' }),
    ]);
    expect(alive(world)).toEqual([]);
  });

  test("the org's runners cannot be read: no pool of the org is touched, one error for the org", async () => {
    const { world, h } = setUp(pool());
    world.listRunnersFault = () => ({ status: 500, body: { message: "runners unavailable" } });
    const summary = await pass(h);

    expect(summary.counts).toMatchObject({ pools: 0, launched: 0, errors: 1 });
    expect(line(h, "reconcile: warm pools of this org not kept")).toEqual([
      expect.objectContaining({ level: 50, org: "octo-org", err: expect.stringContaining("runners unavailable") }),
    ]);
    expect(alive(world)).toEqual([]);
  });

  test("with a launch queue, each missing runner becomes a warm task of the queue: nothing is made by the pass itself", async () => {
    const queue = fakeQueue();
    const { world, h } = setUp(pool(), queue);
    const summary = await pass(h);

    expect(summary.counts).toMatchObject({ target: 2, launched: 2, errors: 0 });
    expect(queue.warm.map((w) => [w.warm.turn, w.warm.org, w.warm.installationId, w.warm.target.labels, w.warm.target.groupId])).toEqual([
      [1, "octo-org", INSTALLATION_ID, LABELS, 7],
      [2, "octo-org", INSTALLATION_ID, LABELS, 7],
    ]);
    expect(alive(world)).toEqual([]);
    expect(world.running()).toBe(0);
  });

  test("a queue that refuses: each launch is forgotten, counted and said with its turn, and the next pass asks again", async () => {
    const { h, store } = setUp(pool(), fakeQueue(new Error("queue paused")));
    const summary = await pass(h);

    expect(summary.counts).toMatchObject({ target: 2, launched: 0, errors: 2 });
    expect(line(h, "warm launch not enqueued").map((e) => [e.turn, e.err, e.level])).toEqual([
      [1, "queue paused", 50],
      [2, "queue paused", 50],
    ]);
    // Forgotten: the pool's document holds no launch, so the next pass has two to make again.
    const queue = fakeQueue();
    const again = createHarness({ store, deps: { queue } });
    expect((await pass(again)).counts).toMatchObject({ launched: 2, errors: 0 });
    expect(queue.warm).toHaveLength(2);
  });

  test("a warm launch GitHub refuses: counted as an error, nothing left behind", async () => {
    const { world, h } = setUp(pool());
    world.jitFault = () => ({ status: 500, body: { message: "jit unavailable" } });
    const summary = await pass(h);

    expect(summary.counts).toMatchObject({ target: 2, launched: 0, errors: 2 });
    expect(alive(world)).toEqual([]);
    expect(world.running()).toBe(0);
  });

  test("a warm runner that cannot be removed: counted, said with its name, and retired at a later pass", async () => {
    const { world, h, store } = setUp(pool());
    await pass(h);
    for (const r of alive(world)) world.connect(r.name);
    // The window closes (a new instance: no cached settings): both idle runners are to be retired.
    world.settingsYaml = closed();

    world.deleteRunnerFault = () => ({ status: 500, body: { message: "delete failed" } });
    const later = createHarness({ store });
    const failed = await pass(later);
    expect(failed.counts).toMatchObject({ target: 0, retired: 0, errors: 2 });
    expect(line(later, "reconcile: warm runner not retired").map((e) => [e.org, e.runnerName, e.level])).toEqual(
      alive(world).map((r) => ["octo-org", r.name, 50]),
    );
    expect(alive(world)).toHaveLength(2);

    world.deleteRunnerFault = () => undefined;
    const again = createHarness({ store });
    expect((await pass(again)).counts).toMatchObject({ retired: 2, errors: 0 });
    expect(alive(world)).toEqual([]);
  });
});
