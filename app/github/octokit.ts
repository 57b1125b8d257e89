import { ProbotOctokit } from "probot";

/**
 * Probot's Octokit, tuned for a webhook that must answer within 10 s.
 * plugin-throttling is off: it runs every write of the process one at a time,
 * 1 s apart (a burst of N jobs would take N seconds), sleeps on rate limits past
 * the webhook window, and adds ~10 ms of scheduling to every request (measured
 * here). Kumo handles GitHub's limits itself: JIT calls are paced by
 * github/jit-pacer.ts, and a 403/429 with retry-after leaves the job pending
 * for reconcile. plugin-retry is off too: it builds a rate limiter per request
 * (~5 ms and ~2 ms of CPU per call, measured by bench/), and its waits do not
 * fit the window either; a failed webhook is redelivered by reconcile, which
 * retries everything on its next pass.
 */
export const KumoOctokit = ProbotOctokit.defaults((options: Record<string, any>) => ({
  ...options,
  retry: { ...options?.retry, enabled: false },
  throttle: { ...options?.throttle, enabled: false },
}));

export type Octokit = InstanceType<typeof ProbotOctokit>;
