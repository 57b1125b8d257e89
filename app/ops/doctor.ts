import { parse as parseYaml } from "yaml";
import type { AppInfo, InstallationInfo } from "../github/app-info.js";
import type { FailedDeliveries } from "../github/failed-deliveries.js";
import type { OrgRunnerGroup } from "../github/runner-group-access.js";
import type { CloudRunJobInfo } from "../launcher/cloud-run-launcher.js";
import type { InstanceTemplateInfo } from "../launcher/compute-engine-launcher.js";
import { jobResourceName, templateResourceName } from "../launcher/launcher.js";
import type { ParsedSettings, RunnerSpec, Settings } from "../settings/schema.js";

// `npm run doctor`: checks a deployment against the live world and says what to fix.
// Each check is a pure function from what was read to findings; runDoctor() reads the
// world through a DoctorWorld (app/entry/doctor-cli.ts builds the real one) and never
// throws for a failed read: a read that fails is a finding too.

export type FindingStatus = "ok" | "problem" | "skipped";

export interface Finding {
  status: FindingStatus;
  text: string;
  /** For a problem: what to do about it. */
  fix?: string;
}

const ok = (text: string): Finding => ({ status: "ok", text });
const problem = (text: string, fix: string): Finding => ({ status: "problem", text, fix });
const skipped = (text: string): Finding => ({ status: "skipped", text });

/** Permission levels: a higher one includes the lower. */
const LEVELS: Record<string, number> = { read: 1, write: 2, admin: 3 };
const rank = (level: string | undefined): number => LEVELS[level ?? ""] ?? 0;

/** The webhook events and permissions the app must have: app.yml's `default_events` and `default_permissions`. */
export interface Requirements {
  events: readonly string[];
  permissions: Readonly<Record<string, string>>;
}

/** What Kumo needs at the least, when app.yml cannot be read. */
export const BASE_REQUIREMENTS: Requirements = {
  events: ["workflow_job", "push"],
  permissions: { organization_self_hosted_runners: "write", actions: "read", metadata: "read", contents: "read" },
};

/** The requirements app.yml states, with BASE_REQUIREMENTS always included. */
export function requirementsFromManifest(text: string): Requirements {
  const manifest = (parseYaml(text) ?? {}) as { default_events?: unknown; default_permissions?: unknown };
  const events = Array.isArray(manifest.default_events) ? manifest.default_events.filter((e): e is string => typeof e === "string") : [];
  const permissions =
    manifest.default_permissions && typeof manifest.default_permissions === "object"
      ? Object.fromEntries(Object.entries(manifest.default_permissions).filter((e): e is [string, string] => typeof e[1] === "string"))
      : {};
  const merged: Record<string, string> = { ...permissions };
  for (const [key, level] of Object.entries(BASE_REQUIREMENTS.permissions)) if (rank(merged[key]) < rank(level)) merged[key] = level;
  return { events: [...new Set([...events, ...BASE_REQUIREMENTS.events])], permissions: merged };
}

/**
 * What the app does with a runner job: run it with the JIT config as an override
 * (run.jobs.run and run.jobs.runWithOverrides), cancel an execution and read one
 * (reconcile). deploy/deploy.sh grants them with roles/run.jobsExecutorWithOverrides and roles/run.viewer.
 */
export const REQUIRED_RUN_PERMISSIONS = ["run.jobs.run", "run.jobs.runWithOverrides", "run.executions.cancel", "run.executions.get"] as const;
export const TTL_POLICIES = [
  { collectionGroup: "kumo-jobs", field: "expireAt" },
  { collectionGroup: "kumo-redeliveries", field: "expireAt" },
] as const;
export const DELIVERY_WINDOW_HOURS = 24;
/** Failed deliveries named on the line; the count says how many there are. */
const NEWEST_FEW = 3;

export const FIX_DELIVERIES = "npm run reconcile redelivers them; if they keep failing, see docs/troubleshooting.md";
const FIX_APP_SETTINGS = "set them in the app's settings → Permissions & events, as app.yml lists them; each organization then accepts them";
const FIX_RUN_ROLES =
  "grant the account Kumo runs as roles/run.jobsExecutorWithOverrides and roles/run.viewer on the job (deploy/deploy.sh does; runner/README.md shows the commands)";

// ---------------------------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------------------------

export function formatFinding(f: Finding): string {
  if (f.status === "ok") return `✔ ${f.text}`;
  if (f.status === "skipped") return `- ${f.text}`;
  return `✗ ${f.text} — fix: ${f.fix ?? "see docs/troubleshooting.md"}`;
}

/** The report's lines, one per finding, then a summary; exit code 0 when nothing is wrong. */
export function formatReport(findings: Finding[]): { lines: string[]; exitCode: 0 | 1 } {
  const problems = findings.filter((f) => f.status === "problem").length;
  const passed = findings.filter((f) => f.status === "ok").length;
  const summary = problems > 0 ? `${plural(problems, "problem")} to fix, ${passed} ${passed === 1 ? "check" : "checks"} passed` : `healthy: ${plural(passed, "check")} passed`;
  return { lines: [...findings.map(formatFinding), summary], exitCode: problems > 0 ? 1 : 0 };
}

// ---------------------------------------------------------------------------------------------
// 1. The app
// ---------------------------------------------------------------------------------------------

export function appFindings(app: AppInfo | Error, required: Requirements = BASE_REQUIREMENTS): Finding[] {
  if (app instanceof Error) {
    const status = (app as { status?: number }).status;
    const fix =
      status === 401 || status === 403
        ? "GitHub refused the app's credentials: check APP_ID and PRIVATE_KEY"
        : "check GHE_HOST/GHE_PROTOCOL and the network";
    return [problem(`GitHub App: could not read it (GET /app): ${describe(app)}`, fix)];
  }
  const name = `GitHub App ${app.slug}`;
  const missingEvents = required.events.filter((e) => !app.events.includes(e));
  const missingPermissions = lacking(required, app.permissions);
  return [
    missingEvents.length > 0
      ? problem(`${name}: not subscribed to ${missingEvents.join(", ")}`, FIX_APP_SETTINGS)
      : ok(`${name}: subscribed to ${required.events.join(", ")}`),
    missingPermissions.length > 0
      ? problem(`${name}: missing permission ${missingPermissions.join(", ")}`, FIX_APP_SETTINGS)
      : ok(`${name}: permissions ${Object.entries(required.permissions).map(([k, v]) => `${k}: ${v}`).join(", ")}`),
  ];
}

/** `key: level (has x)` for each required permission `granted` does not cover. */
function lacking(required: Requirements, granted: Record<string, string>, only?: (key: string) => boolean): string[] {
  return Object.entries(required.permissions)
    .filter(([key, level]) => (only ? only(key) : true) && rank(granted[key]) < rank(level))
    .map(([key, level]) => `${key}: ${level} (has ${granted[key] ?? "none"})`);
}

// ---------------------------------------------------------------------------------------------
// 2. Installations, settings and runner groups
// ---------------------------------------------------------------------------------------------

/** Kumo serves organizations only; none is a problem. */
export function installationsFindings(installations: InstallationInfo[] | Error): Finding[] {
  if (installations instanceof Error) {
    return [problem(`installations: could not list them (GET /app/installations): ${describe(installations)}`, "check APP_ID, PRIVATE_KEY and GHE_HOST")];
  }
  if (!installations.some((i) => i.accountType === "Organization")) {
    return [problem("installations: the app is installed on no organization", "install it on your organization (the app's page → Install App); Kumo serves organizations only")];
  }
  return [];
}

/**
 * One organization's installation: not suspended, and it accepted what Kumo needs of what
 * the app asks for (a permission the app itself lacks is reported once, for the app).
 */
export function installationFindings(installation: InstallationInfo, app?: AppInfo, required: Requirements = BASE_REQUIREMENTS): Finding[] {
  const org = installation.account;
  if (installation.suspended) {
    return [problem(`${org}: the app's installation is suspended`, `unsuspend it: ${org}'s settings → GitHub Apps → the app → Unsuspend`)];
  }
  const asked = (key: string) => !app || rank(app.permissions[key]) >= rank(required.permissions[key]);
  const missing = [
    ...lacking(required, installation.permissions, asked),
    ...required.events.filter((e) => (!app || app.events.includes(e)) && !installation.events.includes(e)).map((e) => `event ${e}`),
  ];
  if (missing.length > 0) {
    return [
      problem(
        `${org}: the installation has not accepted ${missing.join(", ")}`,
        `an owner of ${org} accepts the app's requested permissions: ${org}'s settings → GitHub Apps → the app → Review request`,
      ),
    ];
  }
  return [ok(`${org}: installed (installation ${installation.id}), permissions and events accepted`)];
}

/** A runner spec with where it is in the settings (`runners.0`, `repositories.api.runners.1`). */
export interface LocatedSpec {
  path: string;
  spec: RunnerSpec;
}

export function specsOf(settings: Settings): LocatedSpec[] {
  return [
    ...settings.runners.map((spec, i) => ({ path: `runners.${i}`, spec })),
    ...Object.entries(settings.repositories).flatMap(([repo, { runners }]) => runners.map((spec, i) => ({ path: `repositories.${repo}.runners.${i}`, spec }))),
  ];
}

export function settingsFindings(org: string, parsed: ParsedSettings | Error): Finding[] {
  const where = `${org}/.github`;
  if (parsed instanceof Error) {
    return [
      problem(
        `${org}: could not read .github/kumo.yml: ${describe(parsed)}`,
        `the app needs contents: read on ${where}; check that it is installed on that repository`,
      ),
    ];
  }
  if (!parsed.ok) {
    return [problem(`${org}: .github/kumo.yml is invalid: ${parsed.errors.join("; ")}`, `correct .github/kumo.yml in ${where}; no runner starts in ${org} until it is valid`)];
  }
  const count = specsOf(parsed.settings).length;
  if (count === 0) {
    return [
      problem(
        `${org}: .github/kumo.yml has no runner specs (missing or empty)`,
        `add runners to .github/kumo.yml in ${where} (README.md, Settings), and install the app on that repository`,
      ),
    ];
  }
  return [ok(`${org}: .github/kumo.yml is valid, ${plural(count, "runner spec")}`)];
}

/** An org's runner group, with how many repositories may use it when its visibility is `selected`. */
export type GroupAccess = OrgRunnerGroup & { repositories?: number | Error };

/** Each runner group the specs name exists in the org, and some repository may use it. */
export function groupFindings(org: string, specs: LocatedSpec[], groups: GroupAccess[] | Error): Finding[] {
  const used = new Map<string, { name: string; paths: string[] }>();
  for (const { path, spec } of specs) {
    const key = spec.group.toLowerCase();
    const entry = used.get(key) ?? { name: spec.group, paths: [] };
    entry.paths.push(path);
    used.set(key, entry);
  }
  if (used.size === 0) return [];
  if (groups instanceof Error) {
    return [
      problem(
        `${org}: could not list runner groups: ${describe(groups)}`,
        `the app needs organization_self_hosted_runners: write, accepted by ${org}`,
      ),
    ];
  }
  return [...used.values()].map(({ name, paths }) => {
    const group = groups.find((g) => g.name.toLowerCase() === name.toLowerCase());
    const label = `${org}: runner group "${name}"`;
    if (!group) {
      return problem(
        `${label} does not exist (${paths.join(", ")})`,
        `create it in ${org}'s settings → Actions → Runner groups, or change group: in .github/kumo.yml`,
      );
    }
    if (group.visibility === "all") return ok(`${label}: all repositories may use it`);
    if (group.visibility === "private") return ok(`${label}: private repositories may use it`);
    if (group.repositories instanceof Error) {
      return problem(`${label}: could not list its repositories: ${describe(group.repositories)}`, `the app needs organization_self_hosted_runners: write, accepted by ${org}`);
    }
    const n = group.repositories ?? 0;
    if (n === 0) {
      return problem(`${label}: no repository may use it (selected, none selected)`, `add the repositories to it: ${org}'s settings → Actions → Runner groups → ${group.name} → Repository access`);
    }
    return ok(`${label}: ${plural(n, "selected repository", "selected repositories")} may use it`);
  });
}

// ---------------------------------------------------------------------------------------------
// 3. Cloud Run jobs
// ---------------------------------------------------------------------------------------------

/** One Cloud Run job named by specs, as read. */
export interface JobCheck {
  /** The job's short name when it is in the configured project and region, else its resource name. */
  label: string;
  /** Organizations whose settings name it. */
  usedBy: string[];
  /** undefined: it does not exist. */
  job: CloudRunJobInfo | undefined | Error;
  /** Of REQUIRED_RUN_PERMISSIONS, those granted; absent when the job could not be read. */
  granted?: string[] | Error;
}

/** The GitHub Actions runner image, or an image built from runner/Dockerfile as deploy/deploy.sh names it (…/gha-runner[-x]:TAG). */
export function isRunnerImage(image: string): boolean {
  const ref = String.raw`(?::[\w][\w.-]{0,127})?(?:@sha256:[0-9a-f]{64})?`;
  return (
    new RegExp(String.raw`^ghcr\.io/actions/actions-runner${ref}$`).test(image) ||
    new RegExp(String.raw`^[a-z0-9-]+-docker\.pkg\.dev/[^/]+/[^/]+/gha-runner(?:-[a-z0-9-]+)?${ref}$`).test(image)
  );
}

export function cloudRunJobFindings(check: JobCheck): Finding[] {
  const name = `Cloud Run job ${check.label}`;
  const { job } = check;
  if (job instanceof Error) {
    const denied = /PERMISSION_DENIED/.test(job.message);
    return [problem(`${name}: could not read it: ${describe(job)}`, denied ? FIX_RUN_ROLES : "check GOOGLE_CLOUD_PROJECT, CLOUD_RUN_REGION and CLOUD_RUN_API_ENDPOINT")];
  }
  if (!job) {
    return [
      problem(
        `${name} does not exist (used by ${check.usedBy.join(", ")})`,
        "deploy it (deploy/deploy.sh; RUNNER_JOBS for jobs of your own), or change job: in .github/kumo.yml",
      ),
    ];
  }
  const findings: Finding[] = [];
  const image = job.images[0] ?? "(none)";
  const shape: Finding[] = [];
  if (!isRunnerImage(image)) {
    shape.push(
      problem(
        `${name}: image ${image} is not the GitHub Actions runner image`,
        "deploy the runner image with deploy/deploy.sh (…/gha-runner:TAG from runner/), or build yours FROM it (runner/README.md, Adding your own tools)",
      ),
    );
  }
  if (job.maxRetries !== 0) {
    shape.push(
      problem(
        `${name}: maxRetries is ${job.maxRetries ?? "not set (3)"}; a retried task would reuse a spent JIT config`,
        "set maxRetries: 0 as runner/job.yaml does, and deploy it (deploy/deploy.sh)",
      ),
    );
  }
  if (job.taskCount !== 1) {
    shape.push(problem(`${name}: runs ${job.taskCount} tasks per execution`, "set taskCount: 1 as runner/job.yaml does, and deploy it (deploy/deploy.sh)"));
  }
  findings.push(...(shape.length > 0 ? shape : [ok(`${name}: image ${image}, 1 task, maxRetries 0`)]));

  const { granted } = check;
  if (granted instanceof Error) {
    findings.push(problem(`${name}: could not test permissions: ${describe(granted)}`, FIX_RUN_ROLES));
  } else if (granted) {
    const missing = REQUIRED_RUN_PERMISSIONS.filter((p) => !granted.includes(p));
    findings.push(
      missing.length > 0
        ? problem(`${name}: missing permission ${missing.join(", ")}`, FIX_RUN_ROLES)
        : ok(`${name}: may run it with overrides, cancel and read its executions`),
    );
  }
  return findings;
}

/** A job or template as settings name it, resolved once for all the orgs that use it. */
interface NamedResource {
  written: string;
  resource?: string;
  error?: Error;
  usedBy: Set<string>;
  /** Warm pools on it (Cloud Run jobs: their idle age is checked against the task timeout). */
  warm: WarmUse[];
}

function named(all: Map<string, NamedResource>, written: string, resolve: () => string): NamedResource {
  let key = written;
  let resource: string | undefined;
  let error: Error | undefined;
  try {
    resource = key = resolve();
  } catch (e) {
    error = e as Error;
  }
  let entry = all.get(key);
  if (!entry) all.set(key, (entry = { written, ...(resource ? { resource } : {}), ...(error ? { error } : {}), usedBy: new Set<string>(), warm: [] }));
  return entry;
}

/** A spec with a warm pool on a Cloud Run job. */
interface WarmUse {
  org: string;
  path: string;
  maxIdleMinutes: number;
}

/** Jobs shorter than this after a warm runner's longest idle are unlikely to be what anyone meant. */
const MIN_JOB_MINUTES_AFTER_IDLE = 10;
/** A recycle happens at the first pass past maxIdleMinutes (one minute), then start, assignment and clean-up take about one more. */
const RECYCLE_SLACK_MINUTES = 2;

/** A warm runner that idled maxIdleMinutes must still fit a job inside the task timeout (runner/README.md, Warm pool). */
export function warmTimeoutFinding(use: WarmUse, jobLabel: string, timeoutSeconds: number): Finding {
  const timeout = Math.floor(timeoutSeconds / 60);
  const left = timeout - use.maxIdleMinutes - RECYCLE_SLACK_MINUTES;
  const text = `${use.org} ${use.path}: warm runners idle up to ${use.maxIdleMinutes} min of Cloud Run job ${jobLabel}'s ${timeout} min task timeout`;
  if (left < MIN_JOB_MINUTES_AFTER_IDLE) {
    return problem(`${text}: a job a warm runner takes is stopped after ${Math.max(0, left)} min`, "lower warm.maxIdleMinutes, or use a job with a longer task timeout (runner/README.md, Warm pool)");
  }
  return ok(`${text}: a job it takes may run ${left} min`);
}

const FIX_VM_RUNNERS =
  "deploy with KUMO_VM_RUNNERS=true (deploy/deploy.sh makes the template, the VM account and the IAM, and sets KUMO_COMPUTE_ENGINE=true), or use a cloud-run spec";

export function instanceTemplateFindings(name: string, template: InstanceTemplateInfo | undefined | Error): Finding[] {
  if (template instanceof Error) {
    const denied = /PERMISSION_DENIED/.test(template.message);
    return [problem(`${name}: could not read it: ${describe(template)}`, denied ? "grant the account Kumo runs as the kumoRunnerVmLauncher role (deploy/deploy.sh does with KUMO_VM_RUNNERS=true)" : "check GOOGLE_CLOUD_PROJECT and COMPUTE_API_ENDPOINT")];
  }
  if (!template) return [problem(`${name} does not exist`, "deploy it (deploy/deploy.sh with KUMO_VM_RUNNERS=true), or change instanceTemplate: in .github/kumo.yml")];
  const findings: Finding[] = [];
  if (!template.startupScript) findings.push(problem(`${name}: has no startup-script, so no runner would start on its VMs`, "make it from runner/vm/startup.sh as deploy/deploy.sh does"));
  findings.push(ok(`${name}: ${template.machineType}, runs as ${template.serviceAccounts.join(", ") || "no account"}${template.startupScript ? ", starts the runner" : ""}`));
  return findings;
}

/** A job named in settings that cannot be resolved to a resource (a short name without project and region). */
export function unresolvedJobFinding(job: string, usedBy: string[], error: Error): Finding {
  return problem(`Cloud Run job ${job} (used by ${usedBy.join(", ")}): ${describe(error)}`, "set GOOGLE_CLOUD_PROJECT and CLOUD_RUN_REGION as the app has them");
}

// ---------------------------------------------------------------------------------------------
// 4. Webhook deliveries
// ---------------------------------------------------------------------------------------------

export function deliveryFindings(result: FailedDeliveries | Error, hours = DELIVERY_WINDOW_HOURS): Finding[] {
  if (result instanceof Error) {
    return [problem(`webhook deliveries: could not list them (GET /app/hook/deliveries): ${describe(result)}`, "check APP_ID, PRIVATE_KEY and GHE_HOST")];
  }
  const window = result.truncated ? `among the newest ${plural(result.attempts, "attempt")} of the last ${hours} h` : `in the last ${hours} h`;
  const { failed } = result;
  if (failed.length === 0) return [ok(`webhook deliveries: none failed ${window}${result.truncated ? "" : ` (${plural(result.attempts, "attempt")})`}`)];
  const newest = failed.slice(0, NEWEST_FEW).map((d) => `${d.event}${d.action ? `.${d.action}` : ""} (${d.status})`);
  const more = failed.length > NEWEST_FEW ? ", …" : "";
  return [problem(`webhook deliveries: ${failed.length} failed ${window}, newest: ${newest.join(", ")}${more}`, FIX_DELIVERIES)];
}

// ---------------------------------------------------------------------------------------------
// 5. Firestore TTL policies
// ---------------------------------------------------------------------------------------------

/** The policy's state; undefined: none. */
export type TtlRead = { state: string | undefined } | { skipped: string } | Error;

export function ttlFindings(policy: { collectionGroup: string; field: string }, read: TtlRead, database = "(default)"): Finding[] {
  const name = `Firestore TTL on ${policy.collectionGroup}.${policy.field}`;
  const command =
    `gcloud firestore fields ttls update ${policy.field} --collection-group=${policy.collectionGroup} --enable-ttl` +
    (database === "(default)" ? "" : ` --database=${database}`);
  if (read instanceof Error) {
    return [
      problem(
        `${name}: could not read it: ${describe(read)}`,
        `run the doctor with an account that may read the database's indexes (datastore.indexes.get), or check with gcloud firestore fields ttls list --collection-group=${policy.collectionGroup}`,
      ),
    ];
  }
  if ("skipped" in read) return [skipped(`${name}: skipped, ${read.skipped}`)];
  if (read.state === "ACTIVE") return [ok(`${name}: ACTIVE`)];
  if (read.state === "CREATING") return [ok(`${name}: CREATING (it applies to existing documents, then becomes ACTIVE)`)];
  const why = read.state === undefined ? "no policy" : read.state;
  return [problem(`${name}: ${why}; old documents are never deleted`, `${command} (deploy/deploy.sh does)`)];
}

// ---------------------------------------------------------------------------------------------
// Reading the world
// ---------------------------------------------------------------------------------------------

export interface OrgInstallation {
  id: number;
  org: string;
}

/** Everything the doctor reads; every method may throw, which becomes a finding. */
export interface DoctorWorld {
  /** What the app must have; BASE_REQUIREMENTS when not given. */
  required?: Requirements;
  config: { project?: string; region?: string; firestoreDatabaseId?: string; computeEngine?: boolean };
  now: Date;
  app(): Promise<AppInfo>;
  installations(): Promise<InstallationInfo[]>;
  settings(installation: OrgInstallation): Promise<ParsedSettings>;
  runnerGroups(installation: OrgInstallation): Promise<OrgRunnerGroup[]>;
  groupRepositories(installation: OrgInstallation, groupId: number): Promise<number>;
  cloudRunJob(name: string): Promise<CloudRunJobInfo | undefined>;
  /** An instance template of compute-engine specs, or undefined when it does not exist. */
  instanceTemplate(name: string): Promise<InstanceTemplateInfo | undefined>;
  grantedOnJob(name: string, permissions: string[]): Promise<string[]>;
  failedDeliveries(since: Date): Promise<FailedDeliveries>;
  /** A reader of TTL policy states, or why the TTL check is skipped. */
  ttl: { state(collectionGroup: string, field: string): Promise<string | undefined> } | { skipped: string };
}

/** All checks, in report order: the app, each organization, the Cloud Run jobs, deliveries, TTL policies. */
export async function runDoctor(world: DoctorWorld): Promise<Finding[]> {
  // Independent of the rest: started at once.
  const since = new Date(world.now.getTime() - DELIVERY_WINDOW_HOURS * 3_600_000);
  const deliveries = settle(world.failedDeliveries(since)).then((r) => deliveryFindings(r));
  const database = world.config.firestoreDatabaseId ?? "(default)";
  const ttl = Promise.all(
    TTL_POLICIES.map(async (policy) => {
      const { ttl: reader } = world;
      const read: TtlRead = "skipped" in reader ? reader : await settle(reader.state(policy.collectionGroup, policy.field)).then((r) => (r instanceof Error ? r : { state: r }));
      return ttlFindings(policy, read, database);
    }),
  ).then((all) => all.flat());

  const [app, installations] = await Promise.all([settle(world.app()), settle(world.installations())]);
  const required = world.required ?? BASE_REQUIREMENTS;
  const findings: Finding[] = [...appFindings(app, required), ...installationsFindings(installations)];

  const orgs = installations instanceof Error ? [] : installations.filter((i) => i.accountType === "Organization");
  const perOrg = await mapLimit(orgs, 4, async (installation) => {
    const target = { id: installation.id, org: installation.account };
    const out = installationFindings(installation, app instanceof Error ? undefined : app, required);
    if (installation.suspended) return { org: target.org, findings: out, specs: [] };
    const parsed = await settle(world.settings(target));
    out.push(...settingsFindings(target.org, parsed));
    if (parsed instanceof Error || !parsed.ok) return { org: target.org, findings: out, specs: [] };
    const specs = specsOf(parsed.settings);
    if (specs.length > 0) out.push(...groupFindings(target.org, specs, await readGroups(world, target, specs)));
    return { org: target.org, findings: out, specs };
  });
  findings.push(...perOrg.flatMap((o) => o.findings));

  // Runner jobs and instance templates named by any organization's settings: resource (or unresolvable name) → orgs.
  const jobs = new Map<string, NamedResource>();
  const templates = new Map<string, NamedResource>();
  for (const { org, specs } of perOrg) {
    for (const { spec, path } of specs) {
      const entry =
        spec.backend === "cloud-run"
          ? named(jobs, spec.job, () => jobResourceName(spec.job, world.config))
          : named(templates, spec.instanceTemplate, () => templateResourceName(spec.instanceTemplate, world.config));
      entry.usedBy.add(org);
      if (spec.warm && spec.backend === "cloud-run") entry.warm.push({ org, path, maxIdleMinutes: spec.warm.maxIdleMinutes });
    }
  }
  const templateFindings = await mapLimit([...templates.values()], 4, async (entry): Promise<Finding[]> => {
    const usedBy = [...entry.usedBy].sort();
    const name = `Instance template ${entry.resource ?? entry.written} (used by ${usedBy.join(", ")})`;
    if (!world.config.computeEngine) return [problem(`${name}: this deployment does not run Compute Engine runners (KUMO_COMPUTE_ENGINE is not true)`, FIX_VM_RUNNERS)];
    if (!entry.resource) return [problem(`${name}: ${describe(entry.error ?? new Error("unresolvable"))}`, "set GOOGLE_CLOUD_PROJECT as the app has it")];
    return instanceTemplateFindings(name, await settle(world.instanceTemplate(entry.resource)));
  });

  const jobFindings = await mapLimit([...jobs.values()], 4, async (entry) => {
    const usedBy = [...entry.usedBy].sort();
    if (!entry.resource) return [unresolvedJobFinding(entry.written, usedBy, entry.error ?? new Error("unresolvable"))];
    const job = await settle(world.cloudRunJob(entry.resource));
    const granted = job && !(job instanceof Error) ? await settle(world.grantedOnJob(entry.resource, [...REQUIRED_RUN_PERMISSIONS])) : undefined;
    const label = jobLabel(entry.resource, world.config);
    return [
      ...cloudRunJobFindings({ label, usedBy, job, ...(granted ? { granted } : {}) }),
      ...(job && !(job instanceof Error) ? entry.warm.map((use) => warmTimeoutFinding(use, label, job.timeoutSeconds)) : []),
    ];
  });
  findings.push(...jobFindings.flat(), ...templateFindings.flat(), ...(await deliveries), ...(await ttl));
  return findings;
}

async function readGroups(world: DoctorWorld, target: OrgInstallation, specs: LocatedSpec[]): Promise<GroupAccess[] | Error> {
  const groups = await settle(world.runnerGroups(target));
  if (groups instanceof Error) return groups;
  const wanted = new Set(specs.map((s) => s.spec.group.toLowerCase()));
  return Promise.all(
    groups.map(async (g): Promise<GroupAccess> => {
      if (g.visibility !== "selected" || !wanted.has(g.name.toLowerCase())) return g;
      return { ...g, repositories: await settle(world.groupRepositories(target, g.id)) };
    }),
  );
}

/** The short name for a job in the configured project and region, else its resource name. */
export function jobLabel(resource: string, config: { project?: string; region?: string }): string {
  const prefix = `projects/${config.project}/locations/${config.region}/jobs/`;
  return config.project && config.region && resource.startsWith(prefix) ? resource.slice(prefix.length) : resource;
}

// ---------------------------------------------------------------------------------------------

async function settle<T>(promise: Promise<T>): Promise<T | Error> {
  try {
    return await promise;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** An error in one line: `HTTP 403: message` for GitHub, the message for the others. */
function describe(error: Error): string {
  const status = (error as { status?: unknown }).status;
  const line = (error.message || error.name).split("\n")[0]!.slice(0, 200);
  return typeof status === "number" && !line.includes(`HTTP ${status}`) ? `HTTP ${status}: ${line}` : line;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
