// What a reconcile pass does to one warm pool, decided from what GitHub and the
// store say: pure, so the rules are table-tested.

/** An idle-or-busy runner of the pool's spec, as reconcile sees it. */
export interface PoolRunner {
  name: string;
  /** GitHub lists it online. */
  online: boolean;
  busy: boolean;
  /** A queued job waits for exactly this runner (its own launch): not the pool's. */
  needed: boolean;
  /** When its machine was started; undefined: not known (its record expired), judged old. */
  launchedAt: Date | undefined;
}

export interface PoolPlan {
  /** Idle online runners kept as the pool. */
  warm: string[];
  /** Not yet online, within the start grace: they count, they may become warm. */
  booting: string[];
  retire: Array<{ name: string; why: string }>;
  /** New warm runners to launch now. */
  deficit: number;
}

/**
 * `inflight`: launches decided but whose runner is not registered yet (they
 * count like booting runners, so a pass never adds what another just did).
 */
export function planPool(input: {
  want: number;
  runners: PoolRunner[];
  inflight?: number;
  now: Date;
  maxIdleMs: number;
  bootGraceMs: number;
  /** A runner this close to maxIdle is replaced ahead (it is retired at the next pass): the pool never dips. */
  renewAheadMs?: number;
}): PoolPlan {
  const { want, now } = input;
  const age = (r: PoolRunner) => (r.launchedAt ? now.getTime() - r.launchedAt.getTime() : Infinity);
  const retire: PoolPlan["retire"] = [];
  const booting: string[] = [];
  const idle: PoolRunner[] = [];
  // Busy runners serve a job and needed ones are about to: never the pool's to touch.
  for (const r of input.runners.filter((x) => !x.busy && !x.needed)) {
    if (!r.online) {
      if (age(r) < input.bootGraceMs) booting.push(r.name);
      else retire.push({ name: r.name, why: "never came online" });
    } else if (age(r) >= input.maxIdleMs) {
      // Replaced while idle, so a job it takes still ends before the task timeout.
      retire.push({ name: r.name, why: "idle past maxIdleMinutes" });
    } else {
      idle.push(r);
    }
  }
  // The youngest are kept: they have the longest time left before the task timeout.
  idle.sort((a, b) => age(a) - age(b));
  const kept = idle.slice(0, want);
  const warm = kept.map((r) => r.name);
  for (const r of idle.slice(want)) retire.push({ name: r.name, why: want === 0 ? "outside the warm pool's windows" : "beyond the warm pool's size" });
  // Kept this pass, but their replacements start now.
  const expiring = kept.filter((r) => age(r) >= input.maxIdleMs - (input.renewAheadMs ?? 0)).length;
  return { warm, booting, retire, deficit: Math.max(0, want - warm.length + expiring - booting.length - (input.inflight ?? 0)) };
}
