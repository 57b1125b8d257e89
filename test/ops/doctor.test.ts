import { describe, expect, test } from "@jest/globals";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { AppInfo, InstallationInfo } from "../../app/github/app-info.js";
import type { FailedDeliveries, FailedDelivery } from "../../app/github/failed-deliveries.js";
import type { CloudRunJobInfo } from "../../app/launcher/cloud-run-launcher.js";
import {
  BASE_REQUIREMENTS,
  FIX_DELIVERIES,
  appFindings,
  cloudRunJobFindings,
  deliveryFindings,
  formatFinding,
  formatReport,
  groupFindings,
  installationFindings,
  installationsFindings,
  isRunnerImage,
  jobLabel,
  requirementsFromManifest,
  runDoctor,
  settingsFindings,
  specsOf,
  ttlFindings,
  unresolvedJobFinding,
  type DoctorWorld,
  type Finding,
  type GroupAccess,
  type JobCheck,
  type TtlRead,
} from "../../app/ops/doctor.js";
import { parseSettings, type Settings } from "../../app/settings/schema.js";

// The doctor's checks are pure: what was read → findings. Each table gives the input and the
// exact lines it must print (✔ / ✗ … — fix: … / - skipped).

const lines = (findings: Finding[]) => findings.map(formatFinding);
const httpError = (status: number, message: string) => Object.assign(new Error(message), { status });

const APP: AppInfo = { slug: "kumo", events: ["workflow_job", "push"], permissions: { ...BASE_REQUIREMENTS.permissions } };
const APP_FIX = "set them in the app's settings → Permissions & events, as app.yml lists them; each organization then accepts them";
const RUN_FIX =
  "grant the account Kumo runs as roles/run.jobsExecutorWithOverrides and roles/run.viewer on the job (deploy/deploy.sh does; runner/README.md shows the commands)";

function settings(yaml: object): Settings {
  const parsed = parseSettings(yaml);
  if (!parsed.ok) throw new Error(parsed.errors.join("; "));
  return parsed.settings;
}

describe("formatting", () => {
  test.each<[Finding, string]>([
    [{ status: "ok", text: "all good" }, "✔ all good"],
    [{ status: "problem", text: "broken", fix: "mend it" }, "✗ broken — fix: mend it"],
    [{ status: "skipped", text: "not here" }, "- not here"],
  ])("%j → %s", (finding, line) => {
    expect(formatFinding(finding)).toBe(line);
  });

  test("a report ends with a summary; exit code 1 when anything is wrong, skipped checks do not count", () => {
    expect(formatReport([{ status: "ok", text: "a" }, { status: "skipped", text: "b" }])).toEqual({
      lines: ["✔ a", "- b", "healthy: 1 check passed"],
      exitCode: 0,
    });
    expect(formatReport([{ status: "ok", text: "a" }, { status: "ok", text: "b" }, { status: "problem", text: "c", fix: "d" }])).toEqual({
      lines: ["✔ a", "✔ b", "✗ c — fix: d", "1 problem to fix, 2 checks passed"],
      exitCode: 1,
    });
  });
});

describe("1. the app's events and permissions", () => {
  test("app.yml's requirements include Kumo's base ones", () => {
    const required = requirementsFromManifest(readFileSync(join(process.cwd(), "app.yml"), "utf8"));
    expect(required.events).toEqual(expect.arrayContaining(["workflow_job", "push"]));
    expect(required.permissions).toMatchObject(BASE_REQUIREMENTS.permissions);
  });

  test("a manifest asking for less still requires the base; more is kept", () => {
    expect(requirementsFromManifest("default_events: [push]\ndefault_permissions:\n  organization_self_hosted_runners: read\n  checks: write\n")).toEqual({
      events: ["push", "workflow_job"],
      permissions: { organization_self_hosted_runners: "write", checks: "write", actions: "read", metadata: "read", contents: "read" },
    });
    expect(requirementsFromManifest("")).toEqual(BASE_REQUIREMENTS);
  });

  test.each<[string, AppInfo | Error, string[]]>([
    [
      "healthy",
      APP,
      [
        "✔ GitHub App kumo: subscribed to workflow_job, push",
        "✔ GitHub App kumo: permissions organization_self_hosted_runners: write, actions: read, metadata: read, contents: read",
      ],
    ],
    [
      "more than needed is fine",
      { ...APP, events: ["push", "workflow_job", "issues"], permissions: { ...APP.permissions, actions: "write", administration: "read" } },
      [
        "✔ GitHub App kumo: subscribed to workflow_job, push",
        "✔ GitHub App kumo: permissions organization_self_hosted_runners: write, actions: read, metadata: read, contents: read",
      ],
    ],
    [
      "an event and permissions missing",
      { ...APP, events: ["push"], permissions: { organization_self_hosted_runners: "read", metadata: "read", contents: "read" } },
      [
        `✗ GitHub App kumo: not subscribed to workflow_job — fix: ${APP_FIX}`,
        `✗ GitHub App kumo: missing permission organization_self_hosted_runners: write (has read), actions: read (has none) — fix: ${APP_FIX}`,
      ],
    ],
    [
      "credentials refused",
      httpError(401, "A JSON web token could not be decoded"),
      ["✗ GitHub App: could not read it (GET /app): HTTP 401: A JSON web token could not be decoded — fix: GitHub refused the app's credentials: check APP_ID and PRIVATE_KEY"],
    ],
    [
      "GitHub unreachable",
      new Error("connect ECONNREFUSED 127.0.0.1:1"),
      ["✗ GitHub App: could not read it (GET /app): connect ECONNREFUSED 127.0.0.1:1 — fix: check GHE_HOST/GHE_PROTOCOL and the network"],
    ],
  ])("%s", (_, app, expected) => {
    expect(lines(appFindings(app))).toEqual(expected);
  });

  test("required permissions come from the manifest given", () => {
    const required = { events: ["workflow_job"], permissions: { checks: "write" } };
    expect(lines(appFindings(APP, required))).toEqual([
      "✔ GitHub App kumo: subscribed to workflow_job",
      `✗ GitHub App kumo: missing permission checks: write (has none) — fix: ${APP_FIX}`,
    ]);
  });
});

describe("2. installations, settings and runner groups", () => {
  const installation: InstallationInfo = {
    id: 42,
    account: "acme",
    accountType: "Organization",
    permissions: { ...APP.permissions },
    events: [...APP.events],
    suspended: false,
  };

  test.each<[string, InstallationInfo[] | Error, string[]]>([
    ["an organization", [installation], []],
    [
      "only a user account",
      [{ ...installation, accountType: "User" }],
      ["✗ installations: the app is installed on no organization — fix: install it on your organization (the app's page → Install App); Kumo serves organizations only"],
    ],
    [
      "none",
      [],
      ["✗ installations: the app is installed on no organization — fix: install it on your organization (the app's page → Install App); Kumo serves organizations only"],
    ],
    [
      "unreadable",
      httpError(500, "boom"),
      ["✗ installations: could not list them (GET /app/installations): HTTP 500: boom — fix: check APP_ID, PRIVATE_KEY and GHE_HOST"],
    ],
  ])("installations: %s", (_, installations, expected) => {
    expect(lines(installationsFindings(installations))).toEqual(expected);
  });

  const REVIEW = "an owner of acme accepts the app's requested permissions: acme's settings → GitHub Apps → the app → Review request";
  test.each<[string, InstallationInfo, AppInfo | undefined, string[]]>([
    ["accepted", installation, APP, ["✔ acme: installed (installation 42), permissions and events accepted"]],
    [
      "suspended",
      { ...installation, suspended: true },
      APP,
      ["✗ acme: the app's installation is suspended — fix: unsuspend it: acme's settings → GitHub Apps → the app → Unsuspend"],
    ],
    [
      "a new permission and event not accepted yet",
      { ...installation, permissions: { ...installation.permissions, organization_self_hosted_runners: "read" }, events: ["push"] },
      APP,
      [`✗ acme: the installation has not accepted organization_self_hosted_runners: write (has read), event workflow_job — fix: ${REVIEW}`],
    ],
    [
      "what the app itself lacks is reported once, for the app",
      { ...installation, permissions: { metadata: "read", contents: "read", organization_self_hosted_runners: "write" } },
      { ...APP, permissions: { metadata: "read", contents: "read", organization_self_hosted_runners: "write" } },
      ["✔ acme: installed (installation 42), permissions and events accepted"],
    ],
    [
      "the app unreadable: compared with the requirements",
      { ...installation, permissions: { metadata: "read" } },
      undefined,
      [`✗ acme: the installation has not accepted organization_self_hosted_runners: write (has none), actions: read (has none), contents: read (has none) — fix: ${REVIEW}`],
    ],
  ])("installation: %s", (_, inst, app, expected) => {
    expect(lines(installationFindings(inst, app))).toEqual(expected);
  });

  test.each<[string, Parameters<typeof settingsFindings>[1], string[]]>([
    [
      "valid",
      parseSettings({ runners: [{ labels: ["kumo"], job: "a" }], repositories: { api: { runners: [{ labels: ["x"], job: "b" }] } } }),
      ["✔ acme: .github/kumo.yml is valid, 2 runner specs"],
    ],
    ["one spec", parseSettings({ runners: [{ labels: ["kumo"], job: "a" }] }), ["✔ acme: .github/kumo.yml is valid, 1 runner spec"]],
    [
      "invalid",
      parseSettings({ runners: [{ labels: [], job: "Bad_Name" }], extra: 1 }),
      [
        expect.stringMatching(
          /^✗ acme: \.github\/kumo\.yml is invalid: .*runners\.0\.labels: .*; runners\.0\.job: must be a Cloud Run job name or projects\/P\/locations\/R\/jobs\/J.* — fix: correct \.github\/kumo\.yml in acme\/\.github; no runner starts in acme until it is valid$/,
        ) as unknown as string,
      ],
    ],
    [
      "missing or empty",
      parseSettings({}),
      ["✗ acme: .github/kumo.yml has no runner specs (missing or empty) — fix: add runners to .github/kumo.yml in acme/.github (README.md, Settings), and install the app on that repository"],
    ],
    [
      "unreadable",
      httpError(403, "Resource not accessible by integration"),
      [
        "✗ acme: could not read .github/kumo.yml: HTTP 403: Resource not accessible by integration — fix: the app needs contents: read on acme/.github; check that it is installed on that repository",
      ],
    ],
  ])("settings: %s", (_, parsed, expected) => {
    expect(lines(settingsFindings("acme", parsed))).toEqual(expected);
  });

  test("specs are located by their path in the file", () => {
    const s = settings({ runners: [{ labels: ["a"], job: "j" }], repositories: { API: { runners: [{ labels: ["b"], job: "k", group: "g" }] } } });
    expect(specsOf(s).map((l) => [l.path, l.spec.group])).toEqual([
      ["runners.0", "Default"],
      ["repositories.api.runners.0", "g"],
    ]);
  });

  const specs = specsOf(
    settings({
      runners: [
        { labels: ["a"], group: "everyone", job: "j" },
        { labels: ["b"], group: "Private-Only", job: "j" },
        { labels: ["c"], group: "some", job: "j" },
        { labels: ["d"], group: "nobody", job: "j" },
        { labels: ["e"], group: "ghost", job: "j" },
      ],
      repositories: { api: { runners: [{ labels: ["f"], group: "ghost", job: "j" }] } },
    }),
  );
  const group = (id: number, name: string, visibility: string, repositories?: number | Error): GroupAccess => ({
    id,
    name,
    visibility,
    default: false,
    ...(repositories !== undefined ? { repositories } : {}),
  });

  test("groups: each one named exists, found case-insensitively, and says who may use it", () => {
    const groups = [group(1, "Everyone", "all"), group(2, "private-only", "private"), group(3, "some", "selected", 3), group(4, "nobody", "selected", 0)];
    expect(lines(groupFindings("acme", specs, groups))).toEqual([
      '✔ acme: runner group "everyone": all repositories may use it',
      '✔ acme: runner group "Private-Only": private repositories may use it',
      '✔ acme: runner group "some": 3 selected repositories may use it',
      '✗ acme: runner group "nobody": no repository may use it (selected, none selected) — fix: add the repositories to it: acme\'s settings → Actions → Runner groups → nobody → Repository access',
      '✗ acme: runner group "ghost" does not exist (runners.4, repositories.api.runners.0) — fix: create it in acme\'s settings → Actions → Runner groups, or change group: in .github/kumo.yml',
    ]);
  });

  test.each<[string, GroupAccess[] | Error, string[]]>([
    ["one selected repository", [group(3, "some", "selected", 1)], ['✔ acme: runner group "some": 1 selected repository may use it']],
    [
      "repositories unreadable",
      [group(3, "some", "selected", httpError(403, "Forbidden"))],
      ['✗ acme: runner group "some": could not list its repositories: HTTP 403: Forbidden — fix: the app needs organization_self_hosted_runners: write, accepted by acme'],
    ],
    [
      "groups unreadable",
      httpError(403, "Resource not accessible by integration"),
      ["✗ acme: could not list runner groups: HTTP 403: Resource not accessible by integration — fix: the app needs organization_self_hosted_runners: write, accepted by acme"],
    ],
  ])("groups: %s", (_, groups, expected) => {
    const one = specsOf(settings({ runners: [{ labels: ["a"], group: "some", job: "j" }] }));
    expect(lines(groupFindings("acme", one, groups))).toEqual(expected);
  });

  test("groups: no specs, nothing to check", () => {
    expect(groupFindings("acme", [], httpError(500, "x"))).toEqual([]);
  });
});

describe("3. Cloud Run jobs", () => {
  test.each<[string, boolean]>([
    ["ghcr.io/actions/actions-runner:2.338.0", true],
    ["ghcr.io/actions/actions-runner", true],
    [`ghcr.io/actions/actions-runner:2.338.0@sha256:${"a".repeat(64)}`, true],
    ["us-central1-docker.pkg.dev/my-project/kumo/gha-runner:3f2a1b0", true],
    ["europe-west1-docker.pkg.dev/p/repo/gha-runner-pg:1", true],
    [`us-docker.pkg.dev/p/kumo/gha-runner@sha256:${"b".repeat(64)}`, true],
    ["docker.io/library/ubuntu:24.04", false],
    ["ghcr.io/actions/actions-runner-controller:0.9", false],
    ["us-central1-docker.pkg.dev/p/kumo/kumo:abc", false],
    ["ghcr.io/evil/actions-runner:2.338.0", false],
    ["", false],
  ])("runner image %s → %s", (image, expected) => {
    expect(isRunnerImage(image)).toBe(expected);
  });

  const JOB: CloudRunJobInfo = { name: "projects/p/locations/r/jobs/gha-runner-small", images: ["us-central1-docker.pkg.dev/p/kumo/gha-runner:abc"], maxRetries: 0, taskCount: 1, timeoutSeconds: 3600 };
  const ALL = ["run.jobs.run", "run.jobs.runWithOverrides", "run.executions.cancel", "run.executions.get"];
  const check = (fields: Partial<JobCheck>): JobCheck => ({ label: "gha-runner-small", usedBy: ["acme", "beta"], job: JOB, granted: ALL, ...fields });
  const denied = Object.assign(new Error("getJob projects/p/locations/r/jobs/gha-runner-small: PERMISSION_DENIED: Permission 'run.jobs.get' denied"), { retryable: false });

  test.each<[string, JobCheck, string[]]>([
    [
      "healthy",
      check({}),
      [
        "✔ Cloud Run job gha-runner-small: image us-central1-docker.pkg.dev/p/kumo/gha-runner:abc, 1 task, maxRetries 0",
        "✔ Cloud Run job gha-runner-small: may run it with overrides, cancel and read its executions",
      ],
    ],
    [
      "missing",
      check({ job: undefined }),
      [
        "✗ Cloud Run job gha-runner-small does not exist (used by acme, beta) — fix: deploy it (deploy/deploy.sh; RUNNER_JOBS for jobs of your own), or change job: in .github/kumo.yml",
      ],
    ],
    [
      "unreadable for lack of permission",
      check({ job: denied }),
      [`✗ Cloud Run job gha-runner-small: could not read it: ${denied.message} — fix: ${RUN_FIX}`],
    ],
    [
      "unreachable",
      check({ job: new Error("getJob x: UNAVAILABLE: connect ECONNREFUSED") }),
      ["✗ Cloud Run job gha-runner-small: could not read it: getJob x: UNAVAILABLE: connect ECONNREFUSED — fix: check GOOGLE_CLOUD_PROJECT, CLOUD_RUN_REGION and CLOUD_RUN_API_ENDPOINT"],
    ],
    [
      "a foreign image, retried, several tasks",
      check({ job: { ...JOB, images: ["docker.io/library/ubuntu:24.04"], maxRetries: 3, taskCount: 2 } }),
      [
        "✗ Cloud Run job gha-runner-small: image docker.io/library/ubuntu:24.04 is not the GitHub Actions runner image — fix: deploy the runner image with deploy/deploy.sh (…/gha-runner:TAG from runner/), or build yours FROM it (runner/README.md, Adding your own tools)",
        "✗ Cloud Run job gha-runner-small: maxRetries is 3; a retried task would reuse a spent JIT config — fix: set maxRetries: 0 as runner/job.yaml does, and deploy it (deploy/deploy.sh)",
        "✗ Cloud Run job gha-runner-small: runs 2 tasks per execution — fix: set taskCount: 1 as runner/job.yaml does, and deploy it (deploy/deploy.sh)",
        "✔ Cloud Run job gha-runner-small: may run it with overrides, cancel and read its executions",
      ],
    ],
    [
      "maxRetries not set: Cloud Run's default of 3",
      check({ job: { ...JOB, maxRetries: undefined } }),
      [
        "✗ Cloud Run job gha-runner-small: maxRetries is not set (3); a retried task would reuse a spent JIT config — fix: set maxRetries: 0 as runner/job.yaml does, and deploy it (deploy/deploy.sh)",
        "✔ Cloud Run job gha-runner-small: may run it with overrides, cancel and read its executions",
      ],
    ],
    [
      "no container",
      check({ job: { ...JOB, images: [] } }),
      [
        "✗ Cloud Run job gha-runner-small: image (none) is not the GitHub Actions runner image — fix: deploy the runner image with deploy/deploy.sh (…/gha-runner:TAG from runner/), or build yours FROM it (runner/README.md, Adding your own tools)",
        "✔ Cloud Run job gha-runner-small: may run it with overrides, cancel and read its executions",
      ],
    ],
    [
      "may run it but not with overrides, nor cancel",
      check({ granted: ["run.jobs.run", "run.executions.get"] }),
      [
        "✔ Cloud Run job gha-runner-small: image us-central1-docker.pkg.dev/p/kumo/gha-runner:abc, 1 task, maxRetries 0",
        `✗ Cloud Run job gha-runner-small: missing permission run.jobs.runWithOverrides, run.executions.cancel — fix: ${RUN_FIX}`,
      ],
    ],
    [
      "permissions untestable",
      check({ granted: new Error("testIamPermissions x: PERMISSION_DENIED: no") }),
      [
        "✔ Cloud Run job gha-runner-small: image us-central1-docker.pkg.dev/p/kumo/gha-runner:abc, 1 task, maxRetries 0",
        `✗ Cloud Run job gha-runner-small: could not test permissions: testIamPermissions x: PERMISSION_DENIED: no — fix: ${RUN_FIX}`,
      ],
    ],
  ])("%s", (_, input, expected) => {
    expect(lines(cloudRunJobFindings(input))).toEqual(expected);
  });

  test("a short name without project and region", () => {
    expect(formatFinding(unresolvedJobFinding("gha-runner-small", ["acme"], new Error("short name: set them")))).toBe(
      "✗ Cloud Run job gha-runner-small (used by acme): short name: set them — fix: set GOOGLE_CLOUD_PROJECT and CLOUD_RUN_REGION as the app has them",
    );
  });

  test.each([
    ["projects/p/locations/r/jobs/j", { project: "p", region: "r" }, "j"],
    ["projects/other/locations/r/jobs/j", { project: "p", region: "r" }, "projects/other/locations/r/jobs/j"],
    ["projects/p/locations/r/jobs/j", {}, "projects/p/locations/r/jobs/j"],
  ])("label of %s with %j → %s", (resource, config, label) => {
    expect(jobLabel(resource, config)).toBe(label);
  });
});

describe("4. webhook deliveries", () => {
  const delivery = (event: string, action: string | null, status: string): FailedDelivery => ({ guid: `${event}-${status}`, event, action, status, deliveredAt: "2026-11-25T11:00:00Z" });
  const result = (failed: FailedDelivery[], attempts = 10, truncated = false): FailedDeliveries => ({ failed, attempts, truncated });

  test.each<[string, FailedDeliveries | Error, string[]]>([
    ["none failed", result([]), ["✔ webhook deliveries: none failed in the last 24 h (10 attempts)"]],
    ["one attempt", result([], 1), ["✔ webhook deliveries: none failed in the last 24 h (1 attempt)"]],
    [
      "two failed",
      result([delivery("workflow_job", "queued", "Invalid HTTP Response: 503"), delivery("push", null, "failed to connect to host")]),
      [`✗ webhook deliveries: 2 failed in the last 24 h, newest: workflow_job.queued (Invalid HTTP Response: 503), push (failed to connect to host) — fix: ${FIX_DELIVERIES}`],
    ],
    [
      "more than the newest few",
      result([1, 2, 3, 4].map((n) => delivery("workflow_job", "completed", `Invalid HTTP Response: 50${n}`))),
      [
        `✗ webhook deliveries: 4 failed in the last 24 h, newest: workflow_job.completed (Invalid HTTP Response: 501), workflow_job.completed (Invalid HTTP Response: 502), workflow_job.completed (Invalid HTTP Response: 503), … — fix: ${FIX_DELIVERIES}`,
      ],
    ],
    ["too many to read", result([], 5000, true), ["✔ webhook deliveries: none failed among the newest 5000 attempts of the last 24 h"]],
    [
      "too many to read, some failed",
      result([delivery("push", null, "timed out")], 5000, true),
      [`✗ webhook deliveries: 1 failed among the newest 5000 attempts of the last 24 h, newest: push (timed out) — fix: ${FIX_DELIVERIES}`],
    ],
    [
      "unreadable",
      httpError(401, "Bad credentials"),
      ["✗ webhook deliveries: could not list them (GET /app/hook/deliveries): HTTP 401: Bad credentials — fix: check APP_ID, PRIVATE_KEY and GHE_HOST"],
    ],
  ])("%s", (_, input, expected) => {
    expect(lines(deliveryFindings(input))).toEqual(expected);
  });

  test("the fix is the one reconcile gives", () => {
    expect(FIX_DELIVERIES).toBe("npm run reconcile redelivers them; if they keep failing, see docs/troubleshooting.md");
  });
});

describe("5. Firestore TTL policies", () => {
  const JOBS = { collectionGroup: "kumo-jobs", field: "expireAt" };
  const FIX = "gcloud firestore fields ttls update expireAt --collection-group=kumo-jobs --enable-ttl (deploy/deploy.sh does)";
  test.each<[string, TtlRead, string[]]>([
    ["active", { state: "ACTIVE" }, ["✔ Firestore TTL on kumo-jobs.expireAt: ACTIVE"]],
    ["being created", { state: "CREATING" }, ["✔ Firestore TTL on kumo-jobs.expireAt: CREATING (it applies to existing documents, then becomes ACTIVE)"]],
    ["none", { state: undefined }, [`✗ Firestore TTL on kumo-jobs.expireAt: no policy; old documents are never deleted — fix: ${FIX}`]],
    ["needs repair", { state: "NEEDS_REPAIR" }, [`✗ Firestore TTL on kumo-jobs.expireAt: NEEDS_REPAIR; old documents are never deleted — fix: ${FIX}`]],
    ["skipped", { skipped: "no admin API here" }, ["- Firestore TTL on kumo-jobs.expireAt: skipped, no admin API here"]],
    [
      "unreadable",
      new Error("7 PERMISSION_DENIED: denied"),
      [
        "✗ Firestore TTL on kumo-jobs.expireAt: could not read it: 7 PERMISSION_DENIED: denied — fix: run the doctor with an account that may read the database's indexes (datastore.indexes.get), or check with gcloud firestore fields ttls list --collection-group=kumo-jobs",
      ],
    ],
  ])("%s", (_, read, expected) => {
    expect(lines(ttlFindings(JOBS, read))).toEqual(expected);
  });

  test("another database is named in the fix", () => {
    expect(ttlFindings(JOBS, { state: undefined }, "kumo")[0]!.fix).toBe(
      "gcloud firestore fields ttls update expireAt --collection-group=kumo-jobs --enable-ttl --database=kumo (deploy/deploy.sh does)",
    );
  });
});

describe("runDoctor reads the world once and reports in order", () => {
  function world(overrides: Partial<DoctorWorld> = {}): DoctorWorld & { calls: string[] } {
    const calls: string[] = [];
    const org = (id: number, account: string): InstallationInfo => ({ id, account, accountType: "Organization", permissions: { ...APP.permissions }, events: [...APP.events], suspended: false });
    const files: Record<string, object> = {
      acme: { runners: [{ labels: ["s"], group: "cloudrun", job: "gha-runner-small" }, { labels: ["o"], group: "cloudrun", job: "projects/other/locations/eu/jobs/x" }] },
      beta: { runners: [{ labels: ["s"], group: "open", job: "projects/p/locations/r/jobs/gha-runner-small" }] },
    };
    return {
      calls,
      config: { project: "p", region: "r" },
      now: new Date("2026-11-25T12:00:00Z"),
      app: async () => APP,
      installations: async () => [org(1, "acme"), { ...org(2, "someone"), accountType: "User" }, org(3, "beta")],
      settings: async ({ org: login }) => parseSettings(files[login]),
      runnerGroups: async ({ org: login }) => {
        calls.push(`groups ${login}`);
        return login === "acme"
          ? [{ id: 7, name: "cloudrun", visibility: "selected", default: false }, { id: 8, name: "unused", visibility: "selected", default: false }]
          : [{ id: 1, name: "open", visibility: "all", default: true }];
      },
      groupRepositories: async ({ org: login }, id) => {
        calls.push(`repositories ${login} ${id}`);
        return 2;
      },
      cloudRunJob: async (name) => {
        calls.push(`getJob ${name}`);
        return name.endsWith("/x") ? undefined : { name, images: ["ghcr.io/actions/actions-runner:2.338.0"], maxRetries: 0, taskCount: 1, timeoutSeconds: 3600 };
      },
      grantedOnJob: async (name, permissions) => {
        calls.push(`test ${name}`);
        return permissions;
      },
      instanceTemplate: async (name) => {
        calls.push(`template ${name}`);
        if (name.endsWith("/gone")) return undefined;
        return { machineType: "e2-standard-4", serviceAccounts: ["kumo-runner-vm@p.iam.gserviceaccount.com"], startupScript: !name.endsWith("/bare") };
      },
      failedDeliveries: async (since) => {
        calls.push(`deliveries since ${since.toISOString()}`);
        return { failed: [], attempts: 3, truncated: false };
      },
      ttl: { state: async (collection) => (collection === "kumo-jobs" ? "ACTIVE" : undefined) },
      ...overrides,
    };
  }

  test("a job named by two organizations is checked once; only used selected groups are counted", async () => {
    const w = world();
    expect(lines(await runDoctor(w))).toEqual([
      "✔ GitHub App kumo: subscribed to workflow_job, push",
      "✔ GitHub App kumo: permissions organization_self_hosted_runners: write, actions: read, metadata: read, contents: read",
      "✔ acme: installed (installation 1), permissions and events accepted",
      "✔ acme: .github/kumo.yml is valid, 2 runner specs",
      '✔ acme: runner group "cloudrun": 2 selected repositories may use it',
      "✔ beta: installed (installation 3), permissions and events accepted",
      "✔ beta: .github/kumo.yml is valid, 1 runner spec",
      '✔ beta: runner group "open": all repositories may use it',
      "✔ Cloud Run job gha-runner-small: image ghcr.io/actions/actions-runner:2.338.0, 1 task, maxRetries 0",
      "✔ Cloud Run job gha-runner-small: may run it with overrides, cancel and read its executions",
      "✗ Cloud Run job projects/other/locations/eu/jobs/x does not exist (used by acme) — fix: deploy it (deploy/deploy.sh; RUNNER_JOBS for jobs of your own), or change job: in .github/kumo.yml",
      "✔ webhook deliveries: none failed in the last 24 h (3 attempts)",
      "✔ Firestore TTL on kumo-jobs.expireAt: ACTIVE",
      "✗ Firestore TTL on kumo-redeliveries.expireAt: no policy; old documents are never deleted — fix: gcloud firestore fields ttls update expireAt --collection-group=kumo-redeliveries --enable-ttl (deploy/deploy.sh does)",
    ]);
    expect(w.calls.filter((c) => c.startsWith("getJob")).sort()).toEqual(["getJob projects/other/locations/eu/jobs/x", "getJob projects/p/locations/r/jobs/gha-runner-small"]);
    expect(w.calls.filter((c) => c.startsWith("test"))).toEqual(["test projects/p/locations/r/jobs/gha-runner-small"]);
    expect(w.calls.filter((c) => c.startsWith("repositories"))).toEqual(["repositories acme 7"]);
    expect(w.calls).toContain("deliveries since 2026-11-24T12:00:00.000Z");
  });

  test("a failed read is a finding, never a crash; what depends on it is not checked", async () => {
    const w = world({
      app: async () => {
        throw httpError(401, "Bad credentials");
      },
      installations: async () => {
        throw httpError(401, "Bad credentials");
      },
      failedDeliveries: async () => {
        throw httpError(401, "Bad credentials");
      },
      ttl: { skipped: "the emulator has no admin API" },
    });
    expect(lines(await runDoctor(w))).toEqual([
      "✗ GitHub App: could not read it (GET /app): HTTP 401: Bad credentials — fix: GitHub refused the app's credentials: check APP_ID and PRIVATE_KEY",
      "✗ installations: could not list them (GET /app/installations): HTTP 401: Bad credentials — fix: check APP_ID, PRIVATE_KEY and GHE_HOST",
      "✗ webhook deliveries: could not list them (GET /app/hook/deliveries): HTTP 401: Bad credentials — fix: check APP_ID, PRIVATE_KEY and GHE_HOST",
      "- Firestore TTL on kumo-jobs.expireAt: skipped, the emulator has no admin API",
      "- Firestore TTL on kumo-redeliveries.expireAt: skipped, the emulator has no admin API",
    ]);
  });

  test("short job names without project and region are reported, not resolved", async () => {
    const w = world({ config: {} });
    const out = lines(await runDoctor(w));
    expect(out).toContainEqual(expect.stringMatching(/^✗ Cloud Run job gha-runner-small \(used by acme\): Cloud Run job "gha-runner-small" is a short name: .* — fix: set GOOGLE_CLOUD_PROJECT and CLOUD_RUN_REGION as the app has them$/));
    expect(w.calls.filter((c) => c.startsWith("getJob")).sort()).toEqual(["getJob projects/other/locations/eu/jobs/x", "getJob projects/p/locations/r/jobs/gha-runner-small"]);
  });

  test("instance templates of compute-engine specs: checked once each; missing, without a startup script, or in a deployment without VM runners", async () => {
    const vm = (instanceTemplate: string) => ({ labels: ["d"], group: "open", backend: "compute-engine", instanceTemplate, zones: ["us-central1-a"] });
    const files: Record<string, object> = {
      acme: { runners: [vm("kumo-runner-docker"), vm("gone"), vm("bare")] },
      beta: { runners: [vm("projects/p/global/instanceTemplates/kumo-runner-docker")] },
    };
    const w = world({ config: { project: "p", region: "r", computeEngine: true }, settings: async ({ org: login }) => parseSettings(files[login]) });
    const out = lines(await runDoctor(w)).filter((l) => l.includes("Instance template"));
    expect(out).toEqual([
      "✔ Instance template projects/p/global/instanceTemplates/kumo-runner-docker (used by acme, beta): e2-standard-4, runs as kumo-runner-vm@p.iam.gserviceaccount.com, starts the runner",
      "✗ Instance template projects/p/global/instanceTemplates/gone (used by acme) does not exist — fix: deploy it (deploy/deploy.sh with KUMO_VM_RUNNERS=true), or change instanceTemplate: in .github/kumo.yml",
      "✗ Instance template projects/p/global/instanceTemplates/bare (used by acme): has no startup-script, so no runner would start on its VMs — fix: make it from runner/vm/startup.sh as deploy/deploy.sh does",
      "✔ Instance template projects/p/global/instanceTemplates/bare (used by acme): e2-standard-4, runs as kumo-runner-vm@p.iam.gserviceaccount.com",
    ]);
    expect(w.calls.filter((c) => c.startsWith("template")).sort()).toEqual([
      "template projects/p/global/instanceTemplates/bare",
      "template projects/p/global/instanceTemplates/gone",
      "template projects/p/global/instanceTemplates/kumo-runner-docker",
    ]);
    expect(w.calls.filter((c) => c.startsWith("getJob"))).toEqual([]);

    const off = world({ config: { project: "p", region: "r" }, settings: async ({ org: login }) => parseSettings(files[login]) });
    expect(lines(await runDoctor(off)).filter((l) => l.includes("Instance template"))[0]).toBe(
      "✗ Instance template projects/p/global/instanceTemplates/kumo-runner-docker (used by acme, beta): this deployment does not run Compute Engine runners (KUMO_COMPUTE_ENGINE is not true) — fix: deploy with KUMO_VM_RUNNERS=true (deploy/deploy.sh makes the template, the VM account and the IAM, and sets KUMO_COMPUTE_ENGINE=true), or use a cloud-run spec",
    );
    expect(off.calls.filter((c) => c.startsWith("template"))).toEqual([]);
  });

  test("a warm pool on a Cloud Run job: its idle age must leave a job time inside the task timeout", async () => {
    const files: Record<string, object> = {
      acme: {
        runners: [
          { labels: ["s"], group: "cloudrun", job: "gha-runner-small", warm: { size: 2 } },
          { labels: ["t"], group: "cloudrun", job: "gha-runner-small", warm: { size: 1, maxIdleMinutes: 55 } },
        ],
      },
    };
    const w = world({ installations: async () => [{ id: 1, account: "acme", accountType: "Organization", permissions: { ...APP.permissions }, events: [...APP.events], suspended: false }], settings: async ({ org: login }) => parseSettings(files[login]) });
    expect(lines(await runDoctor(w)).filter((l) => l.includes("warm runners"))).toEqual([
      "✔ acme runners.0: warm runners idle up to 20 min of Cloud Run job gha-runner-small's 60 min task timeout: a job it takes may run 38 min",
      "✗ acme runners.1: warm runners idle up to 55 min of Cloud Run job gha-runner-small's 60 min task timeout: a job a warm runner takes is stopped after 3 min — fix: lower warm.maxIdleMinutes, or use a job with a longer task timeout (runner/README.md, Warm pool)",
    ]);
  });
});
