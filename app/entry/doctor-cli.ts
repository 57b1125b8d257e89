import { readFileSync } from "node:fs";
import { pino } from "pino";
import pretty from "pino-pretty";
import { createProbot } from "probot";
import { checkAppCredentials, readConfig } from "../config.js";
import { ConfigError } from "../errors.js";
import { listInstallations, readApp } from "../github/app-info.js";
import { listFailedDeliveries } from "../github/failed-deliveries.js";
import { KumoOctokit, type Octokit } from "../github/octokit.js";
import { countGroupRepositories, listOrgRunnerGroups } from "../github/runner-group-access.js";
import { CloudRunLauncher } from "../launcher/cloud-run-launcher.js";
import { ComputeEngineLauncher } from "../launcher/compute-engine-launcher.js";
import { createLogger, wantsJson } from "../logging.js";
import { BASE_REQUIREMENTS, formatReport, requirementsFromManifest, runDoctor, type DoctorWorld, type Requirements } from "../ops/doctor.js";
import { TtlPolicyReader } from "../ops/ttl-policy.js";
import { SettingsLoader } from "../settings/load.js";
import { exitWithError } from "./exit.js";

// `npm run doctor`: checks the deployment this environment describes (the same variables as
// `npm start` and `npm run reconcile`) against GitHub, Cloud Run and Firestore, and prints one
// line per finding to stdout. Exit code 0 when healthy, 1 otherwise. Logs go to stderr.
const log = createLogger(
  process.env,
  wantsJson() ? pino.destination({ dest: 2, sync: true }) : pretty({ ignore: "pid,hostname", sync: true, destination: 2 }),
);
try {
  checkAppCredentials();
  const config = readConfig();
  const adminEndpoint = firestoreAdminEndpoint(process.env);
  const probot = createProbot({ overrides: { Octokit: KumoOctokit, log } });
  const appOctokit = (await probot.auth()) as Octokit;
  const octokits = new Map<number, Promise<Octokit>>();
  const octokitFor = (id: number) => {
    let octokit = octokits.get(id);
    if (!octokit) octokits.set(id, (octokit = probot.auth(id) as Promise<Octokit>));
    return octokit;
  };
  const launcher = CloudRunLauncher.fromEndpoint(config.cloudRunApiEndpoint);
  const vms = new ComputeEngineLauncher({ enabled: config.computeEngine, endpoint: config.computeApiEndpoint, project: config.project, runnerPrefix: config.runnerPrefix });
  // Read fresh: nothing is cached between the checks.
  const settings = new SettingsLoader(0);
  const world: DoctorWorld = {
    required: manifestRequirements(),
    config,
    now: new Date(),
    app: () => readApp(appOctokit),
    installations: () => listInstallations(appOctokit),
    settings: async ({ id, org }) => settings.get(await octokitFor(id), id, org),
    runnerGroups: async ({ id, org }) => listOrgRunnerGroups(await octokitFor(id), org),
    groupRepositories: async ({ id, org }, groupId) => countGroupRepositories(await octokitFor(id), org, groupId),
    cloudRunJob: (name) => launcher.job(name),
    grantedOnJob: (name, permissions) => launcher.grantedOnJob(name, permissions),
    instanceTemplate: (name) => vms.templateInfo(name),
    failedDeliveries: (since) => listFailedDeliveries(appOctokit, since),
    // The Firestore emulator has no admin API: without a stand-in for it there is nothing to ask.
    ttl:
      !adminEndpoint && process.env.FIRESTORE_EMULATOR_HOST
        ? { skipped: "the Firestore emulator (FIRESTORE_EMULATOR_HOST) has no admin API" }
        : TtlPolicyReader.create({ endpoint: adminEndpoint, project: config.project, database: config.firestoreDatabaseId }),
  };
  const { lines, exitCode } = formatReport(await runDoctor(world));
  process.stdout.write(`${lines.join("\n")}\n`, () => process.exit(exitCode));
} catch (error) {
  exitWithError(log, "doctor", error);
}

/** The events and permissions app.yml (next to dist/, as in the image) asks for. */
function manifestRequirements(): Requirements {
  const path = new URL("../../../app.yml", import.meta.url);
  try {
    return requirementsFromManifest(readFileSync(path, "utf8"));
  } catch (error) {
    log.warn(`app.yml not read (${(error as Error).message.split("\n")[0]}): checking the app against Kumo's base permissions`);
    return BASE_REQUIREMENTS;
  }
}

/** FIRESTORE_ADMIN_API_ENDPOINT: http(s)://host:port of a Firestore Admin API stand-in (REST, no credentials). */
function firestoreAdminEndpoint(env: NodeJS.ProcessEnv): string | undefined {
  const value = env.FIRESTORE_ADMIN_API_ENDPOINT;
  if (!value) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    url = undefined;
  }
  if (!url || !/^https?:$/.test(url.protocol)) throw new ConfigError("Invalid Kumo environment: FIRESTORE_ADMIN_API_ENDPOINT: must be an http(s)://host:port URL");
  return value;
}
