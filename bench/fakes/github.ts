import { createHmac, randomUUID } from "node:crypto";
import type { IncomingHttpHeaders } from "node:http";
import { performance } from "node:perf_hooks";
import { FakeServer, type Answer } from "./fake-server.js";

export const BENCH_ORG = "bench-org";
export const BENCH_REPO = "bench-repo";
export const BENCH_INSTALLATION = 4242;
export const BENCH_APP_ID = 123;
export const RUNNER_GROUP = { id: 7, name: "cloudrun" };

export const SETTINGS_YAML = `runners:
  - labels: [kumo, small]
    group: ${RUNNER_GROUP.name}
    job: gha-runner-small
`;

export interface Registration {
  runnerId: number;
  name: string;
  jobId: number | undefined;
  deleted: boolean;
  labels: string[];
  runnerGroupId: number;
  /** The config handed out: the runner's only secret. */
  jitConfig: string;
  /** "offline" until a test says the runner came up. */
  status: "online" | "offline";
  busy: boolean;
}

/** A job as GET /repos/{owner}/{repo}/actions/jobs/{job_id} answers it. */
export interface GitHubJob {
  id: number;
  repo: string;
  status: string;
  conclusion: string | null;
  runner_id: number | null;
  runner_name: string | null;
  started_at: string | null;
  completed_at: string | null;
}

/** A runner group of an organization, and the repositories it is open to when `selected`. */
export interface FakeRunnerGroup {
  id: number;
  name: string;
  visibility: "all" | "selected" | "private";
  default: boolean;
  repositories: string[];
}

/** An organization that installed the app. */
export interface FakeOrg {
  login: string;
  accountId: number;
  installationId: number;
  /** `.github/kumo.yml` of its `.github` repository; null: no such file (404). */
  settingsYaml: string | null;
  runnerGroups: FakeRunnerGroup[];
  /** What the installation accepted; the app's own when not set. */
  permissions?: Record<string, string>;
  events?: string[];
  suspended?: boolean;
}

/** The permissions of app.yml: what a correctly registered app has. */
export const APP_PERMISSIONS: Readonly<Record<string, string>> = {
  organization_self_hosted_runners: "write",
  actions: "read",
  metadata: "read",
  contents: "read",
  checks: "write",
};
export const APP_EVENTS: readonly string[] = ["workflow_job", "push"];

/** GitHub's secondary rate limit on JIT registrations: at most `max` registrations in any `windowMs`. */
export interface JitRateLimit {
  max: number;
  windowMs: number;
}

/** What GitHub says when the secondary rate limit is hit. */
export const SECONDARY_RATE_LIMIT_MESSAGE =
  "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID.";

/** One attempt to deliver a webhook of the app, as GET /app/hook/deliveries lists it, plus the body sent. */
export interface HookDelivery {
  id: number;
  guid: string;
  /** "OK", or e.g. "Invalid HTTP Response: 503", "failed to connect to host". */
  status: string;
  status_code: number;
  delivered_at: string;
  redelivery: boolean;
  event: string;
  action: string | null;
  installation_id: number | null;
  repository_id: number | null;
  /** Not listed by GitHub: what a redelivery sends again. */
  body: string;
}

/** Kumo names runners `<prefix>-<job id>-<attempt>-<random>` (app/github/jit-runners.ts). */
export function jobIdOfRunnerName(name: string): number | undefined {
  const match = /^[a-z][a-z0-9-]*?-(\d+)-\d+-[0-9a-f]+$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

/** The secret the fake hands out; Cloud Run's fake decodes it back to the registration. */
export function encodeJitConfig(runnerId: number, name: string): string {
  return Buffer.from(JSON.stringify({ runnerId, name })).toString("base64");
}

export function decodeJitConfig(config: string): { runnerId: number; name: string } | undefined {
  try {
    return JSON.parse(Buffer.from(config, "base64").toString("utf8")) as { runnerId: number; name: string };
  } catch {
    return undefined;
  }
}

/** `sha256=<hex>` as GitHub signs a webhook body with the app's secret. */
export function signWebhook(body: string | Buffer, secret: string): string {
  return `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
}

const NOT_FOUND = { message: "Not Found" };

function parseOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * GitHub's REST API as Probot sees it with GHE_HOST (everything under /api/v3),
 * keeping state like GitHub: the app's registration (events, permissions), its
 * installations (BENCH_ORG, and more with addOrg()), installation tokens, each org's
 * kumo.yml, runner groups (and a selected group's repositories), JIT registration (a taken name answers 409), the org's runners
 * (deletion; a busy runner answers 422), job statuses, and the app's webhook
 * deliveries with redelivery. App endpoints (/app/…) need the app's JWT, the
 * others an installation token this fake issued, or they answer 401 (counted
 * as `unauthorized …`). Anything else answers 404, counted as `other …`.
 */
export class FakeGitHub extends FakeServer {
  readonly registrations = new Map<number, Registration>();
  readonly jobs = new Map<number, GitHubJob>();
  /** Every delivery attempt, oldest first. */
  readonly deliveries: HookDelivery[] = [];
  /** Delivery ids POSTed to /app/hook/deliveries/{id}/attempts, in order. */
  readonly redeliveryRequests: number[] = [];
  /** The app's webhook as registered with GitHub: where deliver() and redeliveries go. */
  webhook: { url: string; secret: string } | undefined;
  /** What GET /app says the app subscribes to and may do. */
  appEvents: string[] = [...APP_EVENTS];
  appPermissions: Record<string, string> = { ...APP_PERMISSIONS };
  /** GitHub does not know the key the app signs its JWT with (a wrong PRIVATE_KEY or APP_ID): app endpoints answer 401. */
  refuseAppJwt = false;
  /**
   * Off by default. When set, generate-jitconfig answers 403 with `retry-after` (seconds until the
   * oldest registration of the window leaves it) and SECONDARY_RATE_LIMIT_MESSAGE once `max`
   * registrations were made in the last `windowMs`. Only registrations made (201) count.
   */
  jitRateLimit: JitRateLimit | undefined;
  /** performance.now() of each registration made within the last window, oldest first (with jitRateLimit). */
  private readonly jitMadeAt: number[] = [];
  /** Organizations that installed the app, by login; BENCH_ORG is always one. */
  readonly orgs = new Map<string, FakeOrg>([
    [
      BENCH_ORG,
      {
        login: BENCH_ORG,
        accountId: 9919,
        installationId: BENCH_INSTALLATION,
        settingsYaml: SETTINGS_YAML,
        runnerGroups: [{ ...RUNNER_GROUP, visibility: "selected", default: false, repositories: [BENCH_REPO] }],
      },
    ],
  ]);
  private readonly byName = new Map<string, number>();
  private readonly tokens = new Set<string>();
  private readonly sends = new Set<Promise<unknown>>();
  private nextRunnerId = 1;
  private nextToken = 1;
  private nextDelivery = 1;

  constructor(readonly appId = BENCH_APP_ID) {
    super((method, path, body, headers) => this.answer(method, path, body, headers));
  }

  /** BENCH_ORG's .github/kumo.yml. */
  get settingsYaml(): string {
    return this.orgs.get(BENCH_ORG)!.settingsYaml ?? "";
  }

  set settingsYaml(yaml: string) {
    this.orgs.get(BENCH_ORG)!.settingsYaml = yaml;
  }

  /** Another organization installs the app. */
  addOrg(login: string, org: Partial<Omit<FakeOrg, "login">> = {}): FakeOrg {
    const n = this.orgs.size;
    const added: FakeOrg = { login, accountId: 9919 + n, installationId: BENCH_INSTALLATION + n, settingsYaml: null, runnerGroups: [], ...org };
    this.orgs.set(login, added);
    return added;
  }

  private orgOfInstallation(id: number): FakeOrg | undefined {
    return [...this.orgs.values()].find((o) => o.installationId === id);
  }

  override reset(): void {
    super.reset();
    this.registrations.clear();
    this.byName.clear();
    this.jobs.clear();
    this.deliveries.length = 0;
    this.redeliveryRequests.length = 0;
    this.jitMadeAt.length = 0;
  }

  /** With jitRateLimit: seconds GitHub asks to wait when the window is full, else undefined. */
  private jitRetryAfterS(now: number): number | undefined {
    const limit = this.jitRateLimit;
    if (!limit) return undefined;
    while (this.jitMadeAt.length > 0 && this.jitMadeAt[0]! <= now - limit.windowMs) this.jitMadeAt.shift();
    if (this.jitMadeAt.length < limit.max) return undefined;
    return Math.max(1, Math.ceil((this.jitMadeAt[0]! + limit.windowMs - now) / 1000));
  }

  /** Registrations not deleted, optionally of one job. */
  liveRegistrations(jobId?: number): Registration[] {
    return [...this.registrations.values()].filter((r) => !r.deleted && (jobId === undefined || r.jobId === jobId));
  }

  /** What GitHub says about a job from now on (GET …/actions/jobs/{id}); fields not given keep their value or default. */
  setJob(id: number, job: Partial<Omit<GitHubJob, "id">> & { repo?: string } = {}): GitHubJob {
    const current = this.jobs.get(id);
    const next: GitHubJob = {
      id,
      repo: `${BENCH_ORG}/${BENCH_REPO}`,
      status: "queued",
      conclusion: null,
      runner_id: null,
      runner_name: null,
      started_at: null,
      completed_at: null,
      ...current,
      ...job,
    };
    this.jobs.set(id, next);
    return next;
  }

  /** A runner came up or took a job. */
  setRunner(runnerId: number, state: Partial<Pick<Registration, "status" | "busy">>): void {
    const registration = this.registrations.get(runnerId);
    if (!registration) throw new Error(`no registration ${runnerId}`);
    Object.assign(registration, state);
  }

  /**
   * Records an attempt GitHub made (e.g. while the app was down) without sending anything:
   * `status` is GitHub's text, "OK" or e.g. "Invalid HTTP Response: 503".
   */
  recordDelivery(attempt: {
    event: string;
    payload: unknown;
    guid?: string;
    status?: string;
    statusCode?: number;
    redelivery?: boolean;
    deliveredAt?: Date;
  }): HookDelivery {
    const body = typeof attempt.payload === "string" ? attempt.payload : JSON.stringify(attempt.payload);
    const payload = (typeof attempt.payload === "string" ? parseOrUndefined(attempt.payload) : attempt.payload) as
      | { action?: string; installation?: { id?: number }; repository?: { id?: number } }
      | undefined;
    const status = attempt.status ?? "OK";
    const delivery: HookDelivery = {
      id: this.nextDelivery++,
      guid: attempt.guid ?? randomUUID(),
      status,
      status_code: attempt.statusCode ?? (status === "OK" ? 200 : Number(/(\d{3})$/.exec(status)?.[1] ?? 0)),
      delivered_at: (attempt.deliveredAt ?? new Date()).toISOString(),
      redelivery: attempt.redelivery ?? false,
      event: attempt.event,
      action: payload?.action ?? null,
      installation_id: payload?.installation?.id ?? null,
      repository_id: payload?.repository?.id ?? null,
      body,
    };
    this.deliveries.push(delivery);
    return delivery;
  }

  /**
   * Delivers a webhook to `webhook.url` the way GitHub does (signed, with a guid)
   * and records the attempt with the status GitHub would show.
   */
  async deliver(event: string, payload: unknown, options: { guid?: string; redelivery?: boolean } = {}): Promise<HookDelivery> {
    if (!this.webhook) throw new Error("FakeGitHub.deliver: no webhook URL set");
    const body = typeof payload === "string" ? payload : JSON.stringify(payload);
    const guid = options.guid ?? randomUUID();
    let status: string;
    let statusCode: number;
    try {
      const res = await fetch(this.webhook.url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "GitHub-Hookshot/fake",
          "x-github-event": event,
          "x-github-delivery": guid,
          "x-github-hook-installation-target-type": "integration",
          "x-github-hook-installation-target-id": String(this.appId),
          "x-hub-signature-256": signWebhook(body, this.webhook.secret),
        },
        body,
        signal: AbortSignal.timeout(10_000),
      });
      await res.arrayBuffer();
      statusCode = res.status;
      status = res.ok ? "OK" : `Invalid HTTP Response: ${res.status}`;
    } catch (error) {
      statusCode = 0;
      status = (error as Error).name === "TimeoutError" ? "timed out" : "failed to connect to host";
    }
    return this.recordDelivery({ event, payload: body, guid, status, statusCode, ...(options.redelivery ? { redelivery: true } : {}) });
  }

  /** Resolves once every redelivery started so far has been answered. */
  async settled(): Promise<void> {
    while (this.sends.size > 0) await Promise.allSettled([...this.sends]);
  }

  private answer(method: string, rawPath: string, body: Buffer, headers: IncomingHttpHeaders): Answer {
    const [pathname = "", query = ""] = rawPath.split("?");
    const path = decodeURIComponent(pathname).replace(/^\/api\/v3/, "");
    const params = new URLSearchParams(query);
    const auth = headers.authorization ?? "";
    const jwt = /^bearer [\w-]+\.[\w-]+\.[\w-]+$/i.test(auth);
    const installationToken = /^token (\S+)$/i.exec(auth)?.[1];
    /** GitHub refuses an installation token on app endpoints and a JWT on the others. */
    const asApp = (endpoint: string, ok: () => Answer): Answer =>
      jwt && !this.refuseAppJwt ? ok() : { endpoint: `unauthorized ${endpoint}`, status: 401, body: { message: "A JSON web token could not be decoded" } };
    const asInstallation = (endpoint: string, ok: () => Answer): Answer =>
      installationToken && this.tokens.has(installationToken) ? ok() : { endpoint: `unauthorized ${endpoint}`, status: 401, body: { message: "Bad credentials" } };
    let m: RegExpExecArray | null;

    // The app (JWT).
    if (method === "POST" && (m = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(path))) {
      const id = Number(m[1]);
      return asApp("token", () => {
        if (!this.orgOfInstallation(id)) return { endpoint: "token", status: 404, body: NOT_FOUND };
        const token = `ghs_bench_${this.nextToken++}`;
        this.tokens.add(token);
        return {
          endpoint: "token",
          status: 201,
          body: { token, expires_at: new Date(Date.now() + 3_600_000).toISOString(), permissions: {}, repository_selection: "all" },
        };
      });
    }
    if (method === "GET" && path === "/app") {
      return asApp("app", () => ({
        endpoint: "app",
        status: 200,
        body: {
          id: this.appId,
          slug: "kumo-bench",
          name: "Kumo (bench)",
          owner: { login: BENCH_ORG, type: "Organization" },
          events: this.appEvents,
          permissions: this.appPermissions,
        },
      }));
    }
    if (method === "GET" && path === "/app/installations") {
      return asApp("installations", () =>
        this.page(
          "installations",
          path,
          params,
          [...this.orgs.values()].map((org) => ({
            id: org.installationId,
            app_id: this.appId,
            target_type: "Organization",
            account: { login: org.login, id: org.accountId, type: "Organization" },
            repository_selection: "all",
            events: org.events ?? this.appEvents,
            permissions: org.permissions ?? this.appPermissions,
            suspended_at: org.suspended ? new Date(0).toISOString() : null,
          })),
        ),
      );
    }
    if (method === "GET" && path === "/app/hook/deliveries") {
      return asApp("deliveries", () => {
        const newestFirst = [...this.deliveries].sort((a, b) => b.delivered_at.localeCompare(a.delivered_at) || b.id - a.id);
        return this.page("deliveries", path, params, newestFirst.map(({ body: _body, ...listed }) => listed), "cursor");
      });
    }
    if (method === "POST" && (m = /^\/app\/hook\/deliveries\/(\d+)\/attempts$/.exec(path))) {
      const id = Number(m[1]);
      return asApp("redeliver", () => {
        const fault = this.takeFault("redeliver");
        if (fault) return fault;
        const delivery = this.deliveries.find((d) => d.id === id);
        if (!delivery) return { endpoint: "redeliver", status: 404, body: NOT_FOUND };
        this.redeliveryRequests.push(id);
        // GitHub answers at once and sends the stored body again, later, under the same guid.
        if (this.webhook) this.track(this.deliver(delivery.event, delivery.body, { guid: delivery.guid, redelivery: true }));
        return { endpoint: "redeliver", status: 202, body: {} };
      });
    }

    // An installation (its token).
    if (method === "GET" && (m = /^\/repos\/([^/]+)\/\.github\/contents\/(.+)$/.exec(path))) {
      const [, owner, file] = m;
      return asInstallation("settings", () => {
        const yaml = this.orgs.get(owner!)?.settingsYaml;
        if (yaml === undefined || yaml === null || file !== ".github/kumo.yml") return { endpoint: "settings", status: 404, body: NOT_FOUND };
        return { endpoint: "settings", status: 200, body: yaml, headers: { "content-type": "application/vnd.github.raw; charset=utf-8" } };
      });
    }
    if (method === "GET" && (m = /^\/orgs\/([^/]+)\/actions\/runner-groups$/.exec(path))) {
      const org = this.orgs.get(m[1]!);
      return asInstallation("runnerGroups", () => {
        if (!org) return { endpoint: "runnerGroups", status: 404, body: NOT_FOUND };
        // With visible_to_repository: the groups that repository may use; without: all of them.
        const repo = params.get("visible_to_repository");
        const groups = org.runnerGroups
          .filter((g) => repo === null || g.visibility !== "selected" || g.repositories.includes(repo))
          .map(({ repositories: _repositories, ...group }) => group);
        return { endpoint: "runnerGroups", status: 200, body: { total_count: groups.length, runner_groups: groups } };
      });
    }
    if (method === "GET" && (m = /^\/orgs\/([^/]+)\/actions\/runner-groups\/(\d+)\/repositories$/.exec(path))) {
      const group = this.orgs.get(m[1]!)?.runnerGroups.find((g) => g.id === Number(m![2]));
      const owner = m[1]!;
      return asInstallation("groupRepositories", () => {
        if (!group) return { endpoint: "groupRepositories", status: 404, body: NOT_FOUND };
        const repositories = group.repositories.map((name, i) => ({ id: 5000 + i, name, full_name: `${owner}/${name}` }));
        return this.page("groupRepositories", path, params, repositories, "page", (items, total) => ({ total_count: total, repositories: items }));
      });
    }
    if (method === "POST" && path === `/orgs/${BENCH_ORG}/actions/runners/generate-jitconfig`) {
      const request = JSON.parse(body.toString("utf8")) as { name: string; runner_group_id: number; labels: string[] };
      const jobId = jobIdOfRunnerName(request.name);
      const tag = jobId === undefined ? {} : { jobId };
      return asInstallation("jit", () => {
        const fault = this.takeFault("jit", jobId);
        if (fault) return fault;
        const now = performance.now();
        const retryAfterS = this.jitRetryAfterS(now);
        if (retryAfterS !== undefined) {
          return {
            endpoint: "jit",
            status: 403,
            body: { message: SECONDARY_RATE_LIMIT_MESSAGE, documentation_url: "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits" },
            headers: { "retry-after": String(retryAfterS) },
            ...tag,
          };
        }
        if (this.byName.has(request.name)) return { endpoint: "jit", status: 409, body: { message: "Already exists" }, ...tag };
        if (this.jitRateLimit) this.jitMadeAt.push(now);
        const runnerId = this.nextRunnerId++;
        const jitConfig = encodeJitConfig(runnerId, request.name);
        this.byName.set(request.name, runnerId);
        this.registrations.set(runnerId, {
          runnerId,
          name: request.name,
          jobId,
          deleted: false,
          labels: request.labels,
          runnerGroupId: request.runner_group_id,
          jitConfig,
          status: "offline",
          busy: false,
        });
        return {
          endpoint: "jit",
          status: 201,
          ...tag,
          body: {
            runner: { id: runnerId, name: request.name, os: "unknown", status: "offline", busy: false, labels: request.labels, runner_group_id: request.runner_group_id, ephemeral: true },
            encoded_jit_config: jitConfig,
          },
        };
      });
    }
    if (method === "GET" && path === `/orgs/${BENCH_ORG}/actions/runners`) {
      return asInstallation("runners", () =>
        this.page(
          "runners",
          path,
          params,
          this.liveRegistrations().map((r) => ({
            id: r.runnerId,
            name: r.name,
            os: "linux",
            status: r.status,
            busy: r.busy,
            ephemeral: true,
            runner_group_id: r.runnerGroupId,
            labels: r.labels.map((name, i) => ({ id: i + 1, name, type: "custom" })),
          })),
          "page",
          (items, total) => ({ total_count: total, runners: items }),
        ),
      );
    }
    if (method === "DELETE" && (m = /^\/orgs\/([^/]+)\/actions\/runners\/(\d+)$/.exec(path))) {
      const registration = m[1] === BENCH_ORG ? this.registrations.get(Number(m[2])) : undefined;
      const tag = registration?.jobId !== undefined ? { jobId: registration.jobId } : {};
      return asInstallation("deleteRunner", () => {
        const fault = this.takeFault("deleteRunner", registration?.jobId);
        if (fault) return fault;
        if (!registration || registration.deleted) return { endpoint: "deleteRunner", status: 404, body: NOT_FOUND };
        if (registration.busy) return { endpoint: "deleteRunner", status: 422, body: { message: `Bad request - Runner "${registration.name}" is still running a job"` }, ...tag };
        registration.deleted = true;
        return { endpoint: "deleteRunner", status: 204, ...tag };
      });
    }
    if (method === "GET" && (m = /^\/repos\/([^/]+\/[^/]+)\/actions\/jobs\/(\d+)$/.exec(path))) {
      const [, repo, id] = m;
      const job = this.jobs.get(Number(id));
      return asInstallation("getJob", () => {
        const fault = this.takeFault("getJob", Number(id));
        if (fault) return fault;
        if (!job || job.repo !== repo) return { endpoint: "getJob", status: 404, body: NOT_FOUND, jobId: Number(id) };
        const { repo: _repo, ...answer } = job;
        return { endpoint: "getJob", status: 200, jobId: job.id, body: { ...answer, run_id: 1, name: "build", labels: [] } };
      });
    }
    // Anything else is counted under its own name so an unexpected call shows in the results.
    return { endpoint: `other ${method} ${path}`, status: 404, body: { message: "Not Found (bench fake)" } };
  }

  /**
   * One page of `items` as GitHub pages it: `per_page` (default 30, at most 100), and
   * a Link header to the next page by `page` number or by an opaque `cursor`.
   */
  private page(
    endpoint: string,
    path: string,
    params: URLSearchParams,
    items: unknown[],
    by: "page" | "cursor" = "page",
    wrap: (items: unknown[], total: number) => unknown = (page) => page,
  ): Answer {
    const perPage = Math.min(100, Math.max(1, Number(params.get("per_page") ?? 30) || 30));
    const start = by === "cursor" ? Number(params.get("cursor") ?? 0) || 0 : ((Number(params.get("page") ?? 1) || 1) - 1) * perPage;
    const slice = items.slice(start, start + perPage);
    const headers: Record<string, string> = {};
    if (start + perPage < items.length) {
      const next = new URLSearchParams(params);
      next.set("per_page", String(perPage));
      if (by === "cursor") next.set("cursor", String(start + perPage));
      else next.set("page", String(start / perPage + 2));
      headers.link = `<http://127.0.0.1:${this.port}/api/v3${path}?${next.toString()}>; rel="next"`;
    }
    return { endpoint, status: 200, body: wrap(slice, items.length), headers };
  }

  private track(send: Promise<unknown>): void {
    this.sends.add(send);
    void send.finally(() => this.sends.delete(send));
  }
}
