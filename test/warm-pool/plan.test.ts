import { describe, expect, test } from "@jest/globals";
import { planPool, type PoolRunner } from "../../app/warm-pool/plan.js";

const NOW = new Date("2026-12-01T12:00:00Z");
const ago = (minutes: number) => new Date(NOW.getTime() - minutes * 60_000);
const r = (name: string, fields: Partial<PoolRunner> = {}): PoolRunner => ({ name, online: true, busy: false, needed: false, launchedAt: ago(1), ...fields });
const plan = (want: number, runners: PoolRunner[]) => planPool({ want, runners, now: NOW, maxIdleMs: 20 * 60_000, bootGraceMs: 5 * 60_000 });

describe("planPool", () => {
  test("an empty pool: launch the whole target", () => {
    expect(plan(3, [])).toEqual({ warm: [], booting: [], retire: [], deficit: 3 });
  });

  test("booting runners count; only the rest is launched", () => {
    expect(plan(3, [r("a"), r("b", { online: false, launchedAt: ago(2) })])).toEqual({ warm: ["a"], booting: ["b"], retire: [], deficit: 1 });
  });

  test("busy runners and runners a queued job waits for are never the pool's", () => {
    expect(plan(1, [r("busy", { busy: true, launchedAt: ago(300) }), r("needed", { needed: true, online: false, launchedAt: ago(60) })])).toEqual({
      warm: [],
      booting: [],
      retire: [],
      deficit: 1,
    });
  });

  test("beyond the size: the oldest go, the youngest stay", () => {
    expect(plan(2, [r("old", { launchedAt: ago(15) }), r("young", { launchedAt: ago(1) }), r("mid", { launchedAt: ago(8) })])).toEqual({
      warm: ["young", "mid"],
      booting: [],
      retire: [{ name: "old", why: "beyond the warm pool's size" }],
      deficit: 0,
    });
  });

  test("outside the windows every idle runner goes, a busy one stays", () => {
    expect(plan(0, [r("a"), r("b", { busy: true })]).retire).toEqual([{ name: "a", why: "outside the warm pool's windows" }]);
  });

  test("idle past maxIdleMinutes: replaced (retired and one launched); at 19:59 it stays", () => {
    expect(plan(1, [r("tired", { launchedAt: ago(20) })])).toEqual({ warm: [], booting: [], retire: [{ name: "tired", why: "idle past maxIdleMinutes" }], deficit: 1 });
    expect(plan(1, [r("fresh", { launchedAt: new Date(ago(20).getTime() + 1000) })]).warm).toEqual(["fresh"]);
  });

  test("never came online within the start grace: retired; an unknown age is judged old", () => {
    expect(plan(2, [r("stuck", { online: false, launchedAt: ago(5) }), r("orphan", { launchedAt: undefined })]).retire).toEqual([
      { name: "stuck", why: "never came online" },
      { name: "orphan", why: "idle past maxIdleMinutes" },
    ]);
  });

  test("renewed one pass ahead: a runner within renewAhead of maxIdleMinutes stays warm while its replacement starts", () => {
    const ahead = (runners: PoolRunner[]) => planPool({ want: 1, runners, now: NOW, maxIdleMs: 20 * 60_000, bootGraceMs: 5 * 60_000, renewAheadMs: 60_000 });
    expect(ahead([r("aging", { launchedAt: ago(19.5) })])).toEqual({ warm: ["aging"], booting: [], retire: [], deficit: 1 });
    // Its replacement booting: nothing more; at maxIdle the old one goes and the new one is the pool.
    expect(ahead([r("aging", { launchedAt: ago(19.5) }), r("new", { online: false, launchedAt: ago(0.5) })]).deficit).toBe(0);
    expect(ahead([r("aging", { launchedAt: ago(20) }), r("new", { launchedAt: ago(1) })])).toEqual({
      warm: ["new"],
      booting: [],
      retire: [{ name: "aging", why: "idle past maxIdleMinutes" }],
      deficit: 0,
    });
    expect(ahead([r("young", { launchedAt: ago(18) })]).deficit).toBe(0);
  });
});
