import { describe, expect, it } from "@jest/globals";
import { WarmPoolSchema } from "../../app/warm-pool/schedule.js";
import { ASSUMPTIONS, bursts, churnFormula, model, parseAssumptions, rng, run, trickle, type Assumptions, type RunInput } from "../../bench/warm-pool.js";

// The warm pool model's pure parts: virtual time only, so each case is exact.
const always = (size: number) => WarmPoolSchema.parse({ size });
const day = (over: Partial<Omit<RunInput, "a">> & { a?: Partial<Assumptions> }): ReturnType<typeof run> =>
  run({ pool: undefined, start: new Date("2026-12-07T00:00:00Z"), arrivals: [], endS: 3600, reapAfterS: undefined, phaseS: 0, window: [0, 3600], ...over, a: { ...ASSUMPTIONS, ...over.a } });
const cold = ASSUMPTIONS.launchS + ASSUMPTIONS.onlineS + ASSUMPTIONS.dispatchS;

describe("warm pool model", () => {
  it("is deterministic: the same seed gives the same arrivals", () => {
    expect(trickle(120).arrivals(rng(7), 3600)).toEqual(trickle(120).arrivals(rng(7), 3600));
    expect(trickle(120).arrivals(rng(7), 3600)).not.toEqual(trickle(120).arrivals(rng(8), 3600));
  });

  it("makes bursts of `size` jobs at one instant per hour, and a Poisson trickle of the stated mean", () => {
    const b = bursts(20).arrivals(rng(1), 4 * 3600);
    expect(b).toHaveLength(80);
    expect(new Set(b).size).toBe(4);
    const t = trickle(120).arrivals(rng(1), 1000 * 3600);
    expect(t.length / 1000).toBeGreaterThan(28);
    expect(t.length / 1000).toBeLessThan(32);
  });

  it("without a pool, every job waits for its own runner: webhook + launch + start + dispatch", () => {
    const r = day({ arrivals: [100, 700, 700, 1300] });
    expect(r.waits).toEqual([cold, cold, cold, cold]);
    expect(r).toMatchObject({ warmHits: 0, registrations: 4, retired: 0, reaped: 0, idleS: 0 });
  });

  it("fills the pool in one pass; a warm runner takes a job at once and the job's own runner refills the pool", () => {
    const r = day({ pool: always(2), arrivals: [600], endS: 1100, a: { counting: "booting" } });
    expect(r.waits).toEqual([ASSUMPTIONS.dispatchS]);
    expect(r.warmHits).toBe(1);
    // 2 warm launches at the first pass, 1 for the job: nothing more while no runner ages out.
    expect(r.registrations).toBe(3);
    expect(r.retired).toBe(0);
  });

  it("counting only the pool's own launches overfills after a warm take, and reconcile then retires the surplus", () => {
    // The pass at 610 s sees one idle runner and no warm launch, while the job's runner is still starting.
    const r = day({ pool: always(2), arrivals: [600], phaseS: 10, endS: 1100, a: { counting: "warm-launches", busyLagS: 0 } });
    expect(r.registrations).toBe(4);
    expect(r.retired).toBe(1);
  });

  it("recycles idle runners at maxIdleMinutes (from the execution's start), never a busy one", () => {
    const r = day({ pool: always(1), endS: 3 * 3600 - 1, a: { maxIdleMinutes: 20 } });
    // Launched at 0 s, renewed one pass ahead (1140 s) and retired at 1200 s: a cycle of 19 min, 10 launches in 3 h, 9 retired.
    expect(r.registrations).toBe(10);
    expect(r.retired).toBe(9);
    // A runner listed idle but busy (GitHub's lag) is not retired: the job finishes.
    // The pass at 1200 s finds the runner that took a job at 1190 s still listed idle, and aged: its DELETE fails.
    const busy = day({ pool: always(1), arrivals: [1190], endS: 1210, a: { maxIdleMinutes: 20, busyLagS: 60 } });
    expect(busy.waits).toEqual([ASSUMPTIONS.dispatchS]);
    expect(busy.retired).toBe(0);
  });

  it("GitHub's reaping costs a registration per runner and leaves the pool short until the next pass + start", () => {
    const r = day({ pool: always(1), endS: 3600, reapAfterS: 300 });
    // Online at 40 s, reaped at 340, relaunched at 360 (next pass), online at 400, …: a cycle of 6 min.
    expect(r.reaped).toBe(10);
    expect(r.atTarget[0] / r.atTarget[1]).toBeLessThan(300 / 360 + 0.01);
  });

  it("churn formula: size × 60 / min(maxIdleMinutes, reaping)", () => {
    expect(churnFormula(2, 20, undefined)).toBe(6);
    expect(churnFormula(5, 20, 5)).toBe(60);
  });

  it("model rows cover every workload × reaping × pool size", () => {
    const rows = model({ a: ASSUMPTIONS, days: 1, pools: [0, 2], workloads: [trickle(120)], reaping: [undefined, 5] });
    expect(rows.map((r) => [r.reaping, r.pool])).toEqual([
      ["never", 0],
      ["never", 2],
      ["after 5 min", 0],
      ["after 5 min", 2],
    ]);
    expect(rows[0]!.p50).toBe(cold);
    expect(rows[1]!.p50).toBe(ASSUMPTIONS.dispatchS);
  });

  it("parses --warm overrides and rejects unknown keys", () => {
    expect(parseAssumptions("onlineS=55,counting=warm-launches")).toMatchObject({ onlineS: 55, counting: "warm-launches", reconcileS: 60 });
    expect(() => parseAssumptions("bogus=1")).toThrow(/--warm/);
    expect(() => parseAssumptions("counting=sometimes")).toThrow(/--warm/);
  });
});
