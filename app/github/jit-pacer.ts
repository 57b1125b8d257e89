/** Time as the pacer sees it; tests pass their own so nothing waits on the wall clock. */
export interface PacerClock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: PacerClock = {
  now: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/**
 * A token bucket for JIT registrations: GitHub's secondary limit allows about
 * 180 per minute per app. A webhook waits for a token at most `maxWaitMs`;
 * past that the job is left pending for reconcile instead of sleeping past
 * GitHub's 10 s webhook window. Per process: instances share GitHub's budget,
 * so GitHub's own 403/429 answers remain the final word (handled as pending).
 */
export class JitPacer {
  private tokens: number;
  private last: number;
  private pausedUntil = 0;

  constructor(
    private readonly perMinute: number,
    private readonly maxWaitMs: number,
    private readonly clock: PacerClock = systemClock,
  ) {
    this.tokens = perMinute;
    this.last = clock.now();
  }

  /** Takes a token, waiting for it if it comes within maxWaitMs; false when it does not. */
  async acquire(): Promise<boolean> {
    const now = this.clock.now();
    this.tokens = Math.min(this.perMinute, this.tokens + ((now - this.last) * this.perMinute) / 60_000);
    this.last = now;
    const pauseMs = Math.max(0, this.pausedUntil - now);
    // Waiting callers have already taken their token, so tokens may go negative.
    const waitMs = Math.max(pauseMs, this.tokens >= 1 ? 0 : ((1 - this.tokens) * 60_000) / this.perMinute);
    if (waitMs > this.maxWaitMs) return false;
    this.tokens -= 1;
    if (waitMs > 0) await this.clock.sleep(waitMs);
    return true;
  }

  /** GitHub said to back off: no token is handed out before then. */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.clock.now() + ms);
  }
}
