import type { Octokit } from "./octokit.js";

/** What the app is registered with: `GET /app` (the app's JWT). */
export interface AppInfo {
  slug: string;
  /** Webhook events the app subscribes to. */
  events: string[];
  /** Permission → level ("read", "write", "admin"). */
  permissions: Record<string, string>;
}

/** One installation of the app, as `GET /app/installations` lists it. */
export interface InstallationInfo {
  id: number;
  account: string;
  /** "Organization" or "User". */
  accountType: string;
  /** The permissions the account accepted, which its tokens get. */
  permissions: Record<string, string>;
  events: string[];
  suspended: boolean;
}

export async function readApp(appOctokit: Octokit): Promise<AppInfo> {
  const { data } = await appOctokit.request("GET /app");
  const app = (data ?? {}) as { slug?: string; name?: string; events?: string[]; permissions?: Record<string, string | undefined> };
  return { slug: app.slug ?? app.name ?? "(unknown)", events: app.events ?? [], permissions: definedOnly(app.permissions) };
}

export async function listInstallations(appOctokit: Octokit): Promise<InstallationInfo[]> {
  const all = await appOctokit.paginate("GET /app/installations", { per_page: 100 });
  return all.map((i) => {
    const account = (i.account ?? {}) as { login?: string; slug?: string; type?: string };
    return {
      id: i.id,
      account: account.login ?? account.slug ?? String(i.id),
      accountType: account.type ?? (i.target_type as string | undefined) ?? "unknown",
      permissions: definedOnly(i.permissions as Record<string, string | undefined> | undefined),
      events: i.events ?? [],
      suspended: Boolean(i.suspended_at),
    };
  });
}

function definedOnly(record: Record<string, string | undefined> | undefined): Record<string, string> {
  return Object.fromEntries(Object.entries(record ?? {}).filter((e): e is [string, string] => typeof e[1] === "string"));
}
