import { ProbotOctokit } from "probot";

type Schedulable = { schedule: <T>(options: unknown, fn: (...args: unknown[]) => Promise<T>, ...args: unknown[]) => Promise<T> };

// plugin-throttling runs every write of the process one at a time, 1 s apart:
// a burst of N queued jobs would need N seconds, far past GitHub's 10 s webhook
// window. Kumo paces its JIT calls itself (github/jit-pacer.ts), so writes go
// straight through here.
const unpacedWrites: { key: () => Schedulable } = {
  key: () => ({ schedule: (_options, fn, ...args) => fn(...args) }),
};

/**
 * Probot's Octokit, tuned for a webhook that must answer within 10 s: no
 * sleeping on rate limits (the job is left to reconcile instead), one quick
 * retry of a 5xx, unpaced writes.
 */
export const KumoOctokit = ProbotOctokit.defaults((options: Record<string, any>) => ({
  ...options,
  retry: { ...options?.retry, retries: 1 },
  throttle: {
    ...options?.throttle,
    write: unpacedWrites,
    onRateLimit: () => false,
    onSecondaryRateLimit: () => false,
  },
}));

export type Octokit = InstanceType<typeof ProbotOctokit>;
