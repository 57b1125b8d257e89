import { fromGitHubError } from "../errors.js";
import type { Octokit } from "./octokit.js";

interface Delivery {
  id: number;
  guid: string;
  status: string;
  status_code: number;
  delivered_at: string;
  redelivery: boolean;
  event: string;
  action: string | null;
}

export interface LostDelivery {
  guid: string;
  /** The newest attempt: the one to redeliver. */
  id: number;
  event: string;
  action: string | null;
}

/**
 * Webhooks of the app that never reached it: guids with an attempt since
 * `since` and no attempt answered OK. Needs the app's JWT octokit.
 */
export async function listLostDeliveries(appOctokit: Octokit, since: Date): Promise<LostDelivery[]> {
  const attempts: Delivery[] = [];
  try {
    // Newest first; stop paging once past the window.
    for await (const { data } of appOctokit.paginate.iterator("GET /app/hook/deliveries", { per_page: 100 })) {
      const page = data as Delivery[];
      attempts.push(...page.filter((d) => new Date(d.delivered_at) >= since));
      if (page.length === 0 || new Date(page[page.length - 1]!.delivered_at) < since) break;
    }
  } catch (error) {
    throw fromGitHubError("list deliveries", error);
  }
  const byGuid = new Map<string, Delivery[]>();
  for (const d of attempts) byGuid.set(d.guid, [...(byGuid.get(d.guid) ?? []), d]);
  const lost: LostDelivery[] = [];
  for (const [guid, tries] of byGuid) {
    if (tries.some((d) => d.status === "OK")) continue;
    const newest = tries.reduce((a, b) => (new Date(a.delivered_at) >= new Date(b.delivered_at) ? a : b));
    lost.push({ guid, id: newest.id, event: newest.event, action: newest.action });
  }
  return lost;
}

export async function redeliver(appOctokit: Octokit, deliveryId: number): Promise<void> {
  try {
    await appOctokit.request("POST /app/hook/deliveries/{delivery_id}/attempts", { delivery_id: deliveryId });
  } catch (error) {
    throw fromGitHubError(`redeliver ${deliveryId}`, error);
  }
}
