/** A delivery's handler did not finish in time; the delivery fails (5xx) and reconcile redelivers it. */
export class DeadlineError extends Error {
  constructor(ms: number) {
    super(`delivery not handled within ${ms} ms: failed so that GitHub records it and reconcile redelivers it`);
    this.name = "DeadlineError";
  }
}

/**
 * One deadline for a whole delivery. Each store call has its own timeout, but
 * several slow ones add up past Probot's 9 s, after which it answers 202 and
 * GitHub records a delivery that failed as delivered. Work still running when
 * the deadline passes may finish; every step is idempotent.
 */
export function withDeadline<C>(ms: number, handler: (context: C) => Promise<void>): (context: C) => Promise<void> {
  return async (context) => {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeadlineError(ms)), ms);
    });
    try {
      await Promise.race([handler(context), deadline]);
    } finally {
      clearTimeout(timer);
    }
  };
}
