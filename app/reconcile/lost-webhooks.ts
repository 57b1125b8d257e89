import { listLostDeliveries, redeliver } from "../github/deliveries.js";
import { outOfTime, type ReconcileContext, type StepSummary } from "./context.js";

const MARK = "deliveries";
const GITHUB_KEEPS_MS = 3 * 24 * 60 * 60_000;
/** Deliveries are listed by time; a little overlap covers clock skew and slow answers. */
const OVERLAP_MS = 2 * 60_000;

/**
 * Step 4: webhooks GitHub failed to deliver (GitHub never redelivers by itself).
 * Guids with no OK attempt since the last pass are redelivered, each a bounded
 * number of times (counted in Firestore, so concurrent passes share the count).
 */
export async function lostWebhooks(ctx: ReconcileContext): Promise<StepSummary> {
  const counts = { lost: 0, redelivered: 0, givenUp: 0, errors: 0 };
  const last = await ctx.deps.store.getMark(MARK);
  const since = new Date(
    Math.max(ctx.now.getTime() - GITHUB_KEEPS_MS, last ? last.getTime() - OVERLAP_MS : ctx.now.getTime() - ctx.options.firstLookbackMs),
  );
  const lost = await listLostDeliveries(ctx.appOctokit, since);
  counts.lost = lost.length;
  for (const delivery of lost) {
    if (outOfTime(ctx)) break;
    const log = ctx.log.child({ deliveryId: delivery.guid, event: delivery.event, action: delivery.action });
    try {
      if (!(await ctx.deps.store.takeRedelivery(delivery.guid, ctx.options.maxRedeliveries, ctx.now))) {
        counts.givenUp++;
        continue;
      }
      await redeliver(ctx.appOctokit, delivery.id);
      counts.redelivered++;
      log.info("reconcile: lost webhook redelivered");
    } catch (error) {
      counts.errors++;
      log.error({ err: (error as Error).message }, "reconcile: lost webhook not redelivered");
    }
  }
  if (!outOfTime(ctx)) await ctx.deps.store.setMark(MARK, ctx.now);
  return { step: "lost webhooks", counts };
}
