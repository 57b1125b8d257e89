import nock from "nock";
import { INSTALLATION_ID, ORG } from "./fixtures.js";

export const GITHUB = "https://api.github.com";

export interface JitRequest {
  name: string;
  runner_group_id: number;
  labels: string[];
  [key: string]: unknown;
}

/**
 * nock interceptors for the GitHub API, one method per scenario step. Each
 * interceptor answers once unless said otherwise, so an extra (uncached) call
 * fails the test, and `done()` asserts that every one was used.
 */
export function mockGitHub(org = ORG) {
  const scope = nock(GITHUB);
  const jitRequests: JitRequest[] = [];
  const checkRuns: Array<{ method: "POST" | "PATCH"; path: string; body: Record<string, any> }> = [];
  const deletedRunners: number[] = [];
  let nextRunnerId = 1000;

  const api = {
    scope,
    jitRequests,
    deletedRunners,
    /** Check runs created (POST) and updated (PATCH), in order. */
    checkRuns,
    canGetToken(installationId = INSTALLATION_ID) {
      const token = () => ({ token: "ghs_test_installation_token", expires_at: new Date(Date.now() + 3_600_000).toISOString() });
      scope.post(`/app/installations/${installationId}/access_tokens`).reply(201, token);
      // Probot caches the token, but deliveries racing on a cold cache may each ask once.
      scope.post(`/app/installations/${installationId}/access_tokens`).times(50).optionally().reply(201, token);
      return api;
    },
    /** For an app whose Probot may hold a token already (an earlier test of the same process got one). */
    mayGetToken(installationId = INSTALLATION_ID) {
      scope
        .post(`/app/installations/${installationId}/access_tokens`)
        .times(50)
        .optionally()
        .reply(201, () => ({ token: "ghs_test_installation_token", expires_at: new Date(Date.now() + 3_600_000).toISOString() }));
      return api;
    },
    hasSettings(yaml: string | null) {
      const path = `/repos/${org}/.github/contents/${encodeURIComponent(".github/kumo.yml")}`;
      if (yaml === null) scope.get(path).reply(404, { message: "Not Found" });
      else scope.get(path).reply(200, yaml, { "content-type": "application/vnd.github.v3.raw; charset=utf-8" });
      return api;
    },
    failsSettings(status: number, message = "Server Error") {
      scope.get(`/repos/${org}/.github/contents/${encodeURIComponent(".github/kumo.yml")}`).reply(status, { message });
      return api;
    },
    failsRunnerGroups(repo: string, status: number, message = "Server Error") {
      scope
        .get(`/orgs/${org}/actions/runner-groups`)
        .query((q) => q.visible_to_repository === repo)
        .reply(status, { message });
      return api;
    },
    hasRunnerGroups(repo: string, groups: Array<{ id: number; name: string }>) {
      scope
        .get(`/orgs/${org}/actions/runner-groups`)
        .query((q) => q.visible_to_repository === repo)
        .reply(200, {
          total_count: groups.length,
          runner_groups: groups.map((g) => ({ ...g, visibility: "selected", default: g.id === 1, allows_public_repositories: false })),
        });
      return api;
    },
    generatesJitConfig(times = 1) {
      scope
        .post(`/orgs/${org}/actions/runners/generate-jitconfig`)
        .times(times)
        .reply(201, (_uri: string, raw: unknown) => {
          const body = (typeof raw === "string" ? JSON.parse(raw) : raw) as JitRequest;
          jitRequests.push(body);
          const id = nextRunnerId++;
          return {
            runner: { id, name: body.name, os: "unknown", status: "offline", busy: false, labels: body.labels, runner_group_id: body.runner_group_id, ephemeral: true },
            encoded_jit_config: jitConfigFor(body.name),
          };
        });
      return api;
    },
    createsCheckRun(repoFullName: string, id = 555, times = 1) {
      scope
        .post(`/repos/${repoFullName}/check-runs`)
        .times(times)
        .reply(201, (path: string, raw: unknown) => {
          checkRuns.push({ method: "POST", path, body: (typeof raw === "string" ? JSON.parse(raw) : raw) as Record<string, any> });
          return { id };
        });
      return api;
    },
    updatesCheckRun(repoFullName: string, id = 555, times = 1) {
      scope
        .patch(`/repos/${repoFullName}/check-runs/${id}`)
        .times(times)
        .reply(200, (path: string, raw: unknown) => {
          checkRuns.push({ method: "PATCH", path, body: (typeof raw === "string" ? JSON.parse(raw) : raw) as Record<string, any> });
          return { id };
        });
      return api;
    },
    failsJitConfig(status: number, headers: Record<string, string> = {}, message = "failure") {
      scope.post(`/orgs/${org}/actions/runners/generate-jitconfig`).reply(status, { message }, headers);
      return api;
    },
    deletesRunner(runnerId: number, status = 204) {
      scope.delete(`/orgs/${org}/actions/runners/${runnerId}`).reply(status, () => {
        deletedRunners.push(runnerId);
        return "";
      });
      return api;
    },
    failsToDeleteBusyRunner(runnerId: number) {
      scope.delete(`/orgs/${org}/actions/runners/${runnerId}`).reply(422, { message: `Bad request - Runner is still running a job` });
      return api;
    },
    hasJob(repoFullName: string, jobId: number, status: string, extra: Record<string, unknown> = {}, times = 1) {
      scope
        .get(`/repos/${repoFullName}/actions/jobs/${jobId}`)
        .times(times)
        .reply(200, { id: jobId, status, conclusion: null, runner_id: null, runner_name: null, started_at: null, completed_at: null, ...extra });
      return api;
    },
    hasRunners(runners: Array<{ id: number; name: string; busy?: boolean; status?: string }>, times = 1) {
      scope
        .get(`/orgs/${org}/actions/runners`)
        .query(true)
        .times(times)
        .reply(200, {
          total_count: runners.length,
          runners: runners.map((r) => ({ os: "Linux", status: "offline", busy: false, labels: [], ...r })),
        });
      return api;
    },
    hasInstallations(installations: Array<{ id: number; login: string; type?: string }>, times = 1) {
      scope
        .get("/app/installations")
        .query(true)
        .times(times)
        .reply(200, installations.map((i) => ({ id: i.id, account: { login: i.login, type: i.type ?? "Organization" } })));
      return api;
    },
    hasDeliveries(deliveries: Array<{ id: number; guid: string; status: string; delivered_at: string; redelivery?: boolean }>, times = 1) {
      scope
        .get("/app/hook/deliveries")
        .query(true)
        .times(times)
        .reply(
          200,
          deliveries.map((d) => ({ event: "workflow_job", action: "queued", redelivery: false, status_code: d.status === "OK" ? 200 : 502, ...d })),
        );
      return api;
    },
    redelivers(deliveryId: number) {
      scope.post(`/app/hook/deliveries/${deliveryId}/attempts`).reply(202, {});
      return api;
    },
    done() {
      scope.done();
    },
  };
  return api;
}

/** A recognisable fake secret, so tests can assert it never reaches a log. */
export function jitConfigFor(runnerName: string): string {
  return Buffer.from(`SECRET-JIT-CONFIG-for-${runnerName}`).toString("base64");
}
