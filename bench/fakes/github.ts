import { FakeServer, type Answer } from "./fake-server.js";

export const BENCH_ORG = "bench-org";
export const BENCH_REPO = "bench-repo";
export const BENCH_INSTALLATION = 4242;
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

/**
 * GitHub's REST API as Probot sees it with GHE_HOST (everything under /api/v3):
 * installation tokens, the org's kumo.yml, runner groups, JIT registration and
 * runner deletion. A second registration with a taken name answers 409 like GitHub.
 */
export class FakeGitHub extends FakeServer {
  readonly registrations = new Map<number, Registration>();
  private readonly byName = new Map<string, number>();
  private nextRunnerId = 1;
  private nextToken = 1;

  constructor() {
    super((method, path, body) => this.answer(method, path, body));
  }

  override reset(): void {
    super.reset();
    this.registrations.clear();
    this.byName.clear();
  }

  private answer(method: string, rawPath: string, body: Buffer): Answer {
    const [pathname = "", query = ""] = rawPath.split("?");
    const path = decodeURIComponent(pathname).replace(/^\/api\/v3/, "");
    let m: RegExpExecArray | null;
    if (method === "POST" && /^\/app\/installations\/\d+\/access_tokens$/.test(path)) {
      return {
        endpoint: "token",
        status: 201,
        body: { token: `ghs_bench_${this.nextToken++}`, expires_at: new Date(Date.now() + 3_600_000).toISOString(), permissions: {}, repository_selection: "all" },
      };
    }
    if (method === "GET" && (m = /^\/repos\/([^/]+)\/\.github\/contents\/(.+)$/.exec(path))) {
      if (m[1] !== BENCH_ORG || m[2] !== ".github/kumo.yml") return { endpoint: "settings", status: 404, body: { message: "Not Found" } };
      return { endpoint: "settings", status: 200, body: SETTINGS_YAML, headers: { "content-type": "application/vnd.github.raw; charset=utf-8" } };
    }
    if (method === "GET" && path === `/orgs/${BENCH_ORG}/actions/runner-groups`) {
      const visible = new URLSearchParams(query).get("visible_to_repository") === BENCH_REPO;
      const groups = visible ? [{ ...RUNNER_GROUP, visibility: "selected", default: false }] : [];
      return { endpoint: "runnerGroups", status: 200, body: { total_count: groups.length, runner_groups: groups } };
    }
    if (method === "POST" && path === `/orgs/${BENCH_ORG}/actions/runners/generate-jitconfig`) {
      const request = JSON.parse(body.toString("utf8")) as { name: string; runner_group_id: number; labels: string[] };
      const jobId = jobIdOfRunnerName(request.name);
      const tag = jobId === undefined ? {} : { jobId };
      if (this.byName.has(request.name)) return { endpoint: "jit", status: 409, body: { message: "Already exists" }, ...tag };
      const runnerId = this.nextRunnerId++;
      this.byName.set(request.name, runnerId);
      this.registrations.set(runnerId, { runnerId, name: request.name, jobId, deleted: false });
      return {
        endpoint: "jit",
        status: 201,
        ...tag,
        body: {
          runner: { id: runnerId, name: request.name, os: "unknown", status: "offline", busy: false, labels: request.labels, runner_group_id: request.runner_group_id, ephemeral: true },
          encoded_jit_config: encodeJitConfig(runnerId, request.name),
        },
      };
    }
    if (method === "DELETE" && (m = /^\/orgs\/[^/]+\/actions\/runners\/(\d+)$/.exec(path))) {
      const registration = this.registrations.get(Number(m[1]));
      if (!registration || registration.deleted) return { endpoint: "deleteRunner", status: 404, body: { message: "Not Found" } };
      registration.deleted = true;
      return { endpoint: "deleteRunner", status: 204, ...(registration.jobId !== undefined ? { jobId: registration.jobId } : {}) };
    }
    // Anything else is counted under its own name so an unexpected call shows in the results.
    return { endpoint: `other ${method} ${path}`, status: 404, body: { message: "Not Found (bench fake)" } };
  }
}
