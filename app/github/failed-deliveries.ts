import type { Octokit } from "./octokit.js";

interface Attempt {
  id: number;
  guid: string;
  status: string;
  status_code: number;
  delivered_at: string;
  event: string;
  action: string | null;
}

/** A webhook of the app with no attempt answered OK: its newest attempt. */
export interface FailedDelivery {
  guid: string;
  event: string;
  action: string | null;
  /** GitHub's text for the newest attempt, e.g. "Invalid HTTP Response: 503". */
  status: string;
  deliveredAt: string;
}

export interface FailedDeliveries {
  /** Newest first. */
  failed: FailedDelivery[];
  /** Attempts looked at in the window. */
  attempts: number;
  /** Stopped after `maxPages` pages, before the start of the window. */
  truncated: boolean;
}

/**
 * The app's deliveries since `since` whose guid has no OK attempt (`GET /app/hook/deliveries`,
 * the app's JWT), reading at most `maxPages` pages of 100 attempts, newest first.
 */
export async function listFailedDeliveries(appOctokit: Octokit, since: Date, maxPages = 50): Promise<FailedDeliveries> {
  const attempts: Attempt[] = [];
  let pages = 0;
  let truncated = false;
  for await (const { data } of appOctokit.paginate.iterator("GET /app/hook/deliveries", { per_page: 100 })) {
    const page = data as Attempt[];
    attempts.push(...page.filter((d) => new Date(d.delivered_at) >= since));
    if (page.length === 0 || new Date(page[page.length - 1]!.delivered_at) < since) break;
    if (++pages >= maxPages) {
      truncated = true;
      break;
    }
  }
  const byGuid = new Map<string, Attempt[]>();
  for (const a of attempts) byGuid.set(a.guid, [...(byGuid.get(a.guid) ?? []), a]);
  const failed: FailedDelivery[] = [];
  for (const [guid, tries] of byGuid) {
    if (tries.some((a) => a.status === "OK")) continue;
    const newest = tries.reduce((a, b) => (newer(b, a) ? b : a));
    failed.push({ guid, event: newest.event, action: newest.action, status: newest.status, deliveredAt: newest.delivered_at });
  }
  failed.sort((a, b) => b.deliveredAt.localeCompare(a.deliveredAt));
  return { failed, attempts: attempts.length, truncated };
}

function newer(a: Attempt, b: Attempt): boolean {
  const d = new Date(a.delivered_at).getTime() - new Date(b.delivered_at).getTime();
  return d > 0 || (d === 0 && a.id > b.id);
}
