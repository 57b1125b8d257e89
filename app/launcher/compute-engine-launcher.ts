import { createHash } from "node:crypto";
import type { InstancesClient, InstanceTemplatesClient, RegionInstanceTemplatesClient, ZoneOperationsClient, protos } from "@google-cloud/compute";
import { LaunchError, errorLine, fromGoogleError } from "../errors.js";
import { googleClientOptions } from "./google-client-options.js";
import { DEFAULT_MAX_RUN_MINUTES, INSTANCE_NAME, type ExecutionStatus, type LaunchTarget, type Launcher, type RunnerMachine } from "./launcher.js";

const PENDING = Symbol("insert under way");

/** The one job-specific metadata item of a runner VM (runner/vm/startup.sh reads it). */
export const JIT_CONFIG_METADATA_KEY = "kumo-jit-config";
/** Marks a VM as Kumo's (value: the runner prefix): the reaper lists by it, IAM and billing can filter by it. */
export const RUNNER_LABEL = "kumo-runner";

const NOT_FOUND = 5;
/** UNAVAILABLE, DEADLINE_EXCEEDED: the request may have been made; only the answer is known lost. */
const LOST_ANSWER = new Set([14, 4]);
/** The guest powered off (its runner exited) or the VM is on its way down: only deletion remains. */
const STOPPED = ["STOPPING", "STOPPED", "SUSPENDING", "SUSPENDED", "TERMINATED"];
/**
 * Its metadata is merged into every insert, so a stale copy would give new VMs an old startup
 * script: deploy.sh replaces a changed template under the same name. A minute bounds that.
 */
const TEMPLATE_TTL_MS = 60_000;
/** A VM whose zone has no stock is gone within about 30 s of the insert. */
const FAILURE_VISIBLE_MS = 60_000;

/**
 * The errors that belong to one zone (or its region's quota): the next zone may have room. Not a
 * plain 503 or 429: the insert may have been made, and another zone would then make a second VM.
 */
const ZONE_TROUBLE = /ZONE_RESOURCE_POOL_EXHAUSTED|QUOTA_EXCEEDED|Quota '[^']+' exceeded|does not have enough resources/i;

type Item = { key?: string | null; value?: string | null };
interface TemplateParts {
  items: Item[];
  labels: Record<string, string>;
  scheduling: protos.google.cloud.compute.v1.IScheduling;
  at: number;
}
interface Clients {
  instances: InstancesClient;
  templates: InstanceTemplatesClient;
  regionTemplates: RegionInstanceTemplatesClient;
  operations: ZoneOperationsClient;
}

/** A GCE requestId is a UUID: made from the runner name and zone, a repeated insert is one VM. */
export function requestIdOf(...parts: string[]): string {
  const h = createHash("sha256").update(parts.join("\n")).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** An instance template as `npm run doctor` sees it. */
export interface InstanceTemplateInfo {
  machineType: string;
  /** Service account emails its VMs run as. */
  serviceAccounts: string[];
  /** Whether its metadata has a startup-script (the runner starts from it). */
  startupScript: boolean;
}

/** The zones of a launch, starting after those its earlier attempts used. */
export function zonesFor(zones: readonly string[], attempt: number): string[] {
  const start = (Math.max(1, attempt) - 1) % zones.length;
  return [...zones.slice(start), ...zones.slice(0, start)];
}

/**
 * One Compute Engine VM per runner, for jobs that need Docker. The VM is made
 * from the spec's instance template; the JIT config is the one metadata item
 * added to the template's own. The insert answers before the VM exists: a
 * zone that runs out of stock later leaves no VM, which describe() reports so
 * reconcile relaunches in the next zone.
 */
export class ComputeEngineLauncher implements Launcher {
  private clientsMade: Promise<Clients> | undefined;
  private readonly templates = new Map<string, TemplateParts>();

  constructor(
    private readonly options: { enabled: boolean; endpoint?: string | undefined; project?: string | undefined; runnerPrefix: string },
    private readonly now: () => number = Date.now,
  ) {}

  // Loaded on first use: deployments without VM specs never pay for the client's protos.
  private clients(): Promise<Clients> {
    return (this.clientsMade ??= import("@google-cloud/compute").then((compute) => {
      const options = googleClientOptions(this.options.endpoint);
      return {
        instances: new compute.InstancesClient(options),
        templates: new compute.InstanceTemplatesClient(options),
        regionTemplates: new compute.RegionInstanceTemplatesClient(options),
        operations: new compute.ZoneOperationsClient(options),
      };
    }));
  }

  async launch(target: LaunchTarget, encodedJitConfig: string, runner: { name: string; attempt: number }): Promise<{ execution: string }> {
    if (!this.options.enabled) {
      throw new LaunchError("this deployment does not run Compute Engine runners: set KUMO_COMPUTE_ENGINE=true (deploy/deploy.sh does with KUMO_VM_RUNNERS=true)", false);
    }
    const project = this.options.project;
    if (!project) throw new LaunchError("Compute Engine runners need GOOGLE_CLOUD_PROJECT (the project their VMs are made in)", false);
    const zones = target.zones ?? [];
    if (zones.length === 0) throw new LaunchError(`no zones for instance template ${target.job}`, false);
    const { instances } = await this.clients();
    const template = await this.template(target.job);
    const instanceResource: protos.google.cloud.compute.v1.IInstance = {
      name: runner.name,
      // Given at insert, labels, metadata and scheduling replace the template's: merge them.
      labels: { ...template.labels, [RUNNER_LABEL]: this.options.runnerPrefix },
      metadata: { items: [...template.items.filter((i) => i.key !== JIT_CONFIG_METADATA_KEY), { key: JIT_CONFIG_METADATA_KEY, value: encodedJitConfig }] },
      // The safety net: the spec's limit, else the template's own, else GitHub's default job timeout; always DELETE.
      scheduling: {
        ...template.scheduling,
        maxRunDuration: target.maxRunMinutes
          ? { seconds: target.maxRunMinutes * 60 }
          : (template.scheduling.maxRunDuration ?? { seconds: DEFAULT_MAX_RUN_MINUTES * 60 }),
        instanceTerminationAction: "DELETE",
      },
    };
    const refused: string[] = [];
    for (const zone of zonesFor(zones, runner.attempt)) {
      const insert = () => instances.insert({ project, zone, requestId: requestIdOf(runner.name, zone), sourceInstanceTemplate: target.job, instanceResource });
      try {
        // An answer lost on the way (503, timeout) is asked again with the same requestId: one VM at most.
        await insert().catch((error: unknown) => (LOST_ANSWER.has((error as { code?: number }).code ?? 0) ? insert() : Promise.reject(error)));
        return { execution: `projects/${project}/zones/${zone}/instances/${runner.name}` };
      } catch (error) {
        // The template is missing while deploy.sh replaces it: a wait, not a failure.
        if (isNotFound(error)) throw new LaunchError(`insert VM ${runner.name}: instance template ${target.job} not found (being replaced?)`, true, undefined, { cause: error });
        if (!ZONE_TROUBLE.test(errorLine(error))) throw fromGoogleError(`insert VM ${runner.name} in ${zone}`, error);
        refused.push(`${zone}: ${errorLine(error, 160)}`);
      }
    }
    // Every zone refused now; stock comes back: reconcile tries again.
    throw new LaunchError(`no zone could make VM ${runner.name}: ${refused.join("; ")}`, true);
  }

  async cancel(execution: string): Promise<void> {
    const vm = parseInstance(execution);
    if (!vm) return;
    const { instances } = await this.clients();
    try {
      await instances.delete({ ...vm, requestId: requestIdOf("delete", execution) });
    } catch (error) {
      if (isNotFound(error)) return;
      throw fromGoogleError(`delete VM ${execution}`, error);
    }
  }

  async finished(execution: string): Promise<void> {
    await this.cancel(execution);
  }

  outlivesRunner(): boolean {
    return true; // a powered-off VM still bills its disk
  }

  failureVisibleAfterMs(): number {
    return FAILURE_VISIBLE_MS;
  }

  async describe(execution: string): Promise<ExecutionStatus | undefined> {
    const vm = parseInstance(execution);
    if (!vm) return undefined;
    const { instances } = await this.clients();
    try {
      const [instance] = await instances.get(vm);
      const status = instance.status ?? "";
      const running = !STOPPED.includes(status);
      return { running, done: !running, failed: false };
    } catch (error) {
      if (!isNotFound(error)) throw fromGoogleError(`get VM ${execution}`, error);
    }
    // No VM: its insert is still under way (a busy zone), failed after answering (a stock-out), or it was deleted.
    const reason = await this.insertFailure(vm);
    if (reason === PENDING) return { running: true, done: false, failed: false };
    return reason ? { running: false, done: true, failed: true, reason } : undefined;
  }

  /** Kumo's VMs in the project (those labelled with this deployment's prefix). */
  async machines(): Promise<RunnerMachine[]> {
    const project = this.options.project;
    // Off, Kumo has no Compute Engine permission and no VM to look for.
    if (!this.options.enabled || !project) return [];
    const { instances } = await this.clients();
    const vms: RunnerMachine[] = [];
    try {
      for await (const [scope, list] of instances.aggregatedListAsync(
        { project, filter: `labels.${RUNNER_LABEL} = "${this.options.runnerPrefix}"` },
        // The iterator pages by itself; the default (true) only prints a process warning.
        { autoPaginate: false },
      )) {
        for (const instance of list.instances ?? []) {
          const zone = scope.replace(/^zones\//, "");
          vms.push({
            execution: `projects/${project}/zones/${zone}/instances/${instance.name}`,
            name: instance.name ?? "",
            status: instance.status ?? "",
            stopped: STOPPED.includes(instance.status ?? ""),
            createdAt: instance.creationTimestamp ? new Date(instance.creationTimestamp) : undefined,
          });
        }
      }
    } catch (error) {
      throw fromGoogleError(`list VMs of ${project}`, error);
    }
    return vms;
  }

  async close(): Promise<void> {
    if (!this.clientsMade) return;
    const c = await this.clientsMade;
    await Promise.all([c.instances.close(), c.templates.close(), c.regionTemplates.close(), c.operations.close()]);
  }

  /** What `npm run doctor` checks of an instance template, or undefined when it does not exist. */
  async templateInfo(name: string): Promise<InstanceTemplateInfo | undefined> {
    let found: protos.google.cloud.compute.v1.IInstanceTemplate;
    try {
      found = await this.readTemplate(name);
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw fromGoogleError(`get instance template ${name}`, error);
    }
    const p = found.properties ?? {};
    return {
      machineType: p.machineType ?? "(none)",
      serviceAccounts: (p.serviceAccounts ?? []).map((a) => a.email ?? "").filter(Boolean),
      startupScript: (p.metadata?.items ?? []).some((i) => i.key === "startup-script" && Boolean(i.value)),
    };
  }

  private async readTemplate(name: string): Promise<protos.google.cloud.compute.v1.IInstanceTemplate> {
    const m = /^projects\/([^/]+)\/(?:global|regions\/([^/]+))\/instanceTemplates\/([^/]+)$/.exec(name);
    if (!m) throw new LaunchError(`instance template ${name} is not projects/P/global/instanceTemplates/T or projects/P/regions/R/instanceTemplates/T`, false);
    const [, project, region, instanceTemplate] = m as unknown as [string, string, string | undefined, string];
    const c = await this.clients();
    const [found] = region ? await c.regionTemplates.get({ project, region, instanceTemplate }) : await c.templates.get({ project, instanceTemplate });
    return found;
  }

  private async template(name: string): Promise<TemplateParts> {
    const cached = this.templates.get(name);
    if (cached && this.now() - cached.at < TEMPLATE_TTL_MS) return cached;
    let found: protos.google.cloud.compute.v1.IInstanceTemplate;
    try {
      found = await this.readTemplate(name);
    } catch (error) {
      if (error instanceof LaunchError) throw error;
      // Retried: deploy.sh replaces a changed template under the same name (a typo fails after the attempts, and doctor says so).
      if (isNotFound(error)) throw new LaunchError(`instance template ${name} does not exist`, true, undefined, { cause: error });
      throw fromGoogleError(`get instance template ${name}`, error);
    }
    const properties = found.properties ?? {};
    const parts: TemplateParts = {
      items: (properties.metadata?.items ?? []).map((i) => ({ key: i.key ?? null, value: i.value ?? null })),
      labels: Object.fromEntries(Object.entries(properties.labels ?? {}).map(([k, v]) => [k, String(v)])),
      scheduling: properties.scheduling ?? {},
      at: this.now(),
    };
    this.templates.set(name, parts);
    return parts;
  }

  /** The error of the VM's insert operation, if Compute Engine still lists it; PENDING while it runs. */
  private async insertFailure(vm: { project: string; zone: string; instance: string }): Promise<string | typeof PENDING | undefined> {
    const { operations } = await this.clients();
    try {
      const [ops] = await operations.list({
        project: vm.project,
        zone: vm.zone,
        // `=` compares literally: the target's full URL, as Compute Engine writes it.
        filter: `(operationType = "insert") AND (targetLink = "https://www.googleapis.com/compute/v1/projects/${vm.project}/zones/${vm.zone}/instances/${vm.instance}")`,
        maxResults: 5,
      });
      if (ops.some((op) => op.status !== "DONE")) return PENDING;
      const failed = ops.find((op) => op.error?.errors?.length);
      const e = failed?.error?.errors?.[0];
      return e ? `${e.code ?? "error"} in ${vm.zone}: ${errorLine(e.message ?? "", 200)}` : undefined;
    } catch {
      return undefined; // only a better reason is lost
    }
  }
}

function parseInstance(execution: string): { project: string; zone: string; instance: string } | undefined {
  const m = INSTANCE_NAME.exec(execution);
  return m ? { project: m[1]!, zone: m[2]!, instance: m[3]! } : undefined;
}

function isNotFound(error: unknown): boolean {
  const e = error as { code?: unknown; status?: unknown };
  return e?.code === NOT_FOUND || e?.code === 404 || e?.status === "NOT_FOUND";
}
