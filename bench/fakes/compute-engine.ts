import { createHash } from "node:crypto";
import { FakeServer, type Answer } from "./fake-server.js";
import { decodeJitConfig, jobIdOfRunnerName } from "./github.js";

/** Where Compute Engine's self-links point, whatever address the stand-in listens on. */
const API = "https://www.googleapis.com/compute/v1";
/** The metadata item that carries the runner's JIT config (runner/vm/startup.sh reads it). */
export const JIT_CONFIG_KEY = "kumo-jit-config";
const NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;
const METADATA_KEY = /^[a-zA-Z0-9_-]{1,128}$/;
/** GCE's limits: 256 KB a value, 512 KB in all. */
const METADATA_VALUE_MAX = 256 * 1024;
const METADATA_TOTAL_MAX = 512 * 1024;

export interface MetadataItem {
  key: string;
  value?: string;
}

/** An instance template as the test defines it: what a VM made from it gets unless the insert says otherwise. */
export interface TemplateDefinition {
  metadataItems?: MetadataItem[];
  scheduling?: Record<string, unknown>;
  labels?: Record<string, string>;
  /** A machine type name (e2-standard-2 if not said). */
  machineType?: string;
  /** A regional template (regions/R/instanceTemplates/T); global if not said. A full resource name says it itself. */
  region?: string;
}

interface Template {
  /** undefined: a short name was defined, any project has it. */
  project: string | undefined;
  region: string | undefined;
  name: string;
  id: string;
  creationTimestamp: string;
  definition: TemplateDefinition;
}

/** One instances.insert as it reached the stand-in, whatever it answered. */
export interface InsertRequest {
  project: string;
  zone: string;
  requestId: string | undefined;
  sourceInstanceTemplate: string | undefined;
  /** The Instance resource, as the client sent it (proto3 JSON: int64 as strings). */
  body: Record<string, unknown>;
  status: number;
  /** created: a VM; stockout: an operation that will fail, no VM; deduplicated: a requestId seen before; refused: a 4xx; fault: failNext. */
  outcome: "created" | "stockout" | "deduplicated" | "refused" | "fault";
  /** The operation answered, if any. */
  operation?: string;
  jobId?: number;
}

/** One instances.delete as it reached the stand-in. */
export interface DeleteRequest {
  project: string;
  zone: string;
  instance: string;
  requestId: string | undefined;
  status: number;
  operation?: string;
  jobId?: number;
}

/** A VM the stand-in made (and perhaps since deleted). */
export interface FakeInstance {
  project: string;
  zone: string;
  name: string;
  id: string;
  selfLink: string;
  sourceInstanceTemplate: string | undefined;
  labels: Record<string, string>;
  metadataItems: MetadataItem[];
  scheduling: Record<string, unknown>;
  machineType: string;
  /** The resource as inserted. */
  body: Record<string, unknown>;
  /** Date.now() at the insert. */
  createdAt: number;
  creationTimestamp: string;
  /** Date.now() when the guest powered off (stop()). */
  stoppedAt: number | undefined;
  /** Deleted through the API, or by GCE itself (forget()). */
  deleted: boolean;
  jitConfig: string | undefined;
  runnerId: number | undefined;
  jobId: number | undefined;
}

/** A zonal operation: an insert or a delete. */
export interface FakeOperation {
  project: string;
  zone: string;
  name: string;
  id: string;
  operationType: "insert" | "delete";
  targetLink: string;
  targetId: string | undefined;
  insertTime: string;
  /** Date.now() from which the operation is DONE. */
  doneAt: number;
  /** Set when the operation ends in failure (a stock-out). */
  error: { code: string; message: string } | undefined;
  httpError: { status: number; message: string } | undefined;
  jobId: number | undefined;
}

export interface ComputeEngineOptions {
  /** How long a new VM is PROVISIONING before RUNNING (default 0: RUNNING at once). */
  provisioningMs?: number;
  /** How long an operation is RUNNING before DONE (default 0: DONE at the first look). */
  operationMs?: number;
}

type Term = { field: string; op: "=" | "!=" | ":" | "eq" | "ne"; value: string };

function gceError(endpoint: string, status: number, reason: string, message: string, jobId?: number): Answer {
  // GCE's v1 errors: no google.rpc `status` name, a legacy `errors` list (the client keeps only code and message).
  const domain = reason === "quotaExceeded" ? "usageLimits" : "global";
  return { endpoint, status, ...tag(jobId), body: { error: { code: status, message, errors: [{ message, domain, reason }] } } };
}

function notFound(endpoint: string, resource: string, jobId?: number): Answer {
  return gceError(endpoint, 404, "notFound", `The resource '${resource}' was not found`, jobId);
}

function tag(jobId: number | undefined): { jobId?: number } {
  return jobId === undefined ? {} : { jobId };
}

function fingerprint(value: unknown): string {
  return createHash("sha256").update(JSON.stringify(value)).digest().subarray(0, 8).toString("base64");
}

function regionOf(zone: string): string {
  return zone.replace(/-[a-z]$/, "");
}

/**
 * Compute Engine v1 in REST mode (`@google-cloud/compute` with `fallback: true`),
 * one VM per runner: `POST /compute/v1/projects/P/zones/Z/instances?requestId=&sourceInstanceTemplate=`
 * answers a RUNNING zonal Operation before anything else is known, as GCE does;
 * the VM exists at once unless the zone is out of stock (the operation then
 * ends DONE with ZONE_RESOURCE_POOL_EXHAUSTED and no VM) or out of quota (a
 * synchronous 403). A requestId seen before answers the same operation again.
 * Also instances get/delete/list/aggregatedList (with a subset of GCE's filter
 * syntax), zone operations get/wait/list, and global and regional instance
 * templates the test defines. Each VM's `kumo-jit-config` metadata item says
 * which registration, hence which job, it serves. Anything else answers 404,
 * counted as `other …`.
 *
 * Endpoints: `compute insert`, `compute get`, `compute delete`, `compute list`,
 * `compute aggregatedList`, `compute templates get`, `compute operations get`,
 * `compute operations wait`, `compute operations list`.
 */
export class FakeComputeEngine extends FakeServer {
  readonly inserts: InsertRequest[] = [];
  readonly deletes: DeleteRequest[] = [];
  /** Every VM made since reset(), deleted ones too, in insert order. */
  readonly made: FakeInstance[] = [];
  readonly operations: FakeOperation[] = [];
  private readonly templates: Template[] = [];
  private readonly byRequestId = new Map<string, FakeOperation>();
  private readonly stockOuts = new Map<string, number>();
  private readonly quotaOuts = new Map<string, number>();
  private readonly zonesSeen = new Set<string>();
  private options: Required<ComputeEngineOptions>;
  private nextId = 1;

  constructor(options: ComputeEngineOptions = {}) {
    super((method, path, body) => this.answer(method, path, body));
    this.options = { provisioningMs: 0, operationMs: 0, ...options };
  }

  configure(options: ComputeEngineOptions): void {
    this.options = { ...this.options, ...options };
  }

  /** Forgets VMs, operations, recorded calls and zone troubles; templates and options stay. */
  override reset(): void {
    super.reset();
    this.inserts.length = 0;
    this.deletes.length = 0;
    this.made.length = 0;
    this.operations.length = 0;
    this.byRequestId.clear();
    this.stockOuts.clear();
    this.quotaOuts.clear();
    this.zonesSeen.clear();
  }

  /**
   * An instance template exists: `name` is a short name (any project; global,
   * or regional with `region`) or a resource name
   * (projects/P/global/instanceTemplates/T, projects/P/regions/R/instanceTemplates/T).
   */
  defineTemplate(name: string, definition: TemplateDefinition = {}): void {
    const m = /^(?:https?:\/\/[^/]+\/compute\/v1\/)?projects\/([^/]+)\/(?:global|regions\/([^/]+))\/instanceTemplates\/([^/]+)$/.exec(name);
    const [project, region, short] = m ? [m[1], m[2], m[3]!] : [undefined, definition.region, name];
    const kept = this.templates.filter((t) => !(t.name === short && t.region === region && t.project === project));
    this.templates.length = 0;
    this.templates.push(...kept, { project, region, name: short, id: this.id(), creationTimestamp: new Date().toISOString(), definition });
  }

  /** The next `times` inserts in `zone` answer an operation that fails with ZONE_RESOURCE_POOL_EXHAUSTED (0: no longer). */
  stockOut(zone: string, times = Infinity): void {
    this.stockOuts.set(zone, times);
    this.zonesSeen.add(zone);
  }

  /** The next `times` inserts in `zone` answer 403 quota exceeded at once (0: no longer). */
  quotaExceeded(zone: string, times = Infinity): void {
    this.quotaOuts.set(zone, times);
    this.zonesSeen.add(zone);
  }

  /** The VM of this name: the live one, else the last one deleted. */
  instance(name: string): FakeInstance | undefined {
    const all = this.made.filter((i) => i.name === name);
    return all.find((i) => !i.deleted) ?? all.at(-1);
  }

  /** VMs that exist (not deleted), TERMINATED ones included. */
  instances(): FakeInstance[] {
    return this.made.filter((i) => !i.deleted);
  }

  /** Live VMs carrying a runner of this job. */
  instancesOf(jobId: number): FakeInstance[] {
    return this.instances().filter((i) => i.jobId === jobId);
  }

  /** What GET answers for the VM's status now. */
  statusOf(name: string): string | undefined {
    const vm = this.instance(name);
    return vm && !vm.deleted ? this.status(vm) : undefined;
  }

  operation(name: string): FakeOperation | undefined {
    return this.operations.find((o) => o.name === name);
  }

  /** The value of a metadata item of the VM (the JIT config by default). */
  jitConfigOf(name: string, key = JIT_CONFIG_KEY): string | undefined {
    return this.instance(name)?.metadataItems.find((i) => i.key === key)?.value;
  }

  /** The runner registration the VM carries (from its JIT config). */
  runnerOf(name: string): { runnerId: number; name: string } | undefined {
    const config = this.jitConfigOf(name);
    return config ? decodeJitConfig(config) : undefined;
  }

  /** The guest powered off (its runner exited): TERMINATED until deleted. */
  stop(name: string): void {
    const vm = this.mustFindLive(name);
    vm.stoppedAt = Date.now();
  }

  /** GCE deleted the VM itself (maxRunDuration or preemption with instanceTerminationAction DELETE). */
  forget(name: string): void {
    this.mustFindLive(name).deleted = true;
  }

  private mustFindLive(name: string): FakeInstance {
    const vm = this.instance(name);
    if (!vm || vm.deleted) throw new Error(`no VM ${name}`);
    return vm;
  }

  private id(): string {
    return String(4_000_000_000_000_000_000n + BigInt(this.nextId++));
  }

  private status(vm: FakeInstance): string {
    if (vm.stoppedAt !== undefined) return "TERMINATED";
    return Date.now() < vm.createdAt + this.options.provisioningMs ? "PROVISIONING" : "RUNNING";
  }

  private live(project: string, zone: string, name: string): FakeInstance | undefined {
    return this.made.find((i) => !i.deleted && i.project === project && i.zone === zone && i.name === name);
  }

  private answer(method: string, rawPath: string, body: Buffer): Answer {
    const [pathPart = "", query = ""] = rawPath.split("?", 2);
    const path = decodeURIComponent(pathPart);
    const q = new URLSearchParams(query);
    const p = "^/compute/v1/projects/([^/]+)";
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`${p}/zones/([^/]+)/instances$`).exec(path))) {
      if (method === "POST") return this.insert(m[1]!, m[2]!, q, body);
      if (method === "GET") return this.list(m[1]!, m[2]!, q);
    }
    if ((m = new RegExp(`${p}/zones/([^/]+)/instances/([^/]+)$`).exec(path))) {
      if (method === "GET") return this.get(m[1]!, m[2]!, m[3]!);
      if (method === "DELETE") return this.delete(m[1]!, m[2]!, m[3]!, q);
    }
    if (method === "GET" && (m = new RegExp(`${p}/aggregated/instances$`).exec(path))) return this.aggregatedList(m[1]!, q);
    if (method === "GET" && (m = new RegExp(`${p}/zones/([^/]+)/operations$`).exec(path))) return this.listOperations(m[1]!, m[2]!, q);
    if ((m = new RegExp(`${p}/zones/([^/]+)/operations/([^/]+?)(/wait)?$`).exec(path))) {
      const [, project, zone, name, wait] = m;
      if ((method === "GET" && !wait) || (method === "POST" && wait)) return this.getOperation(project!, zone!, name!, Boolean(wait));
    }
    if (method === "GET" && (m = new RegExp(`${p}/(?:global|regions/([^/]+))/instanceTemplates/([^/]+)$`).exec(path))) {
      return this.getTemplate(m[1]!, m[2], m[3]!);
    }
    return { endpoint: `other ${method} ${path}`, status: 404, body: { error: { code: 404, message: "Not Found (bench fake)", errors: [{ message: "Not Found (bench fake)", domain: "global", reason: "notFound" }] } } };
  }

  private insert(project: string, zone: string, q: URLSearchParams, raw: Buffer): Answer {
    const endpoint = "compute insert";
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(raw.toString("utf8") || "{}") as Record<string, unknown>;
    } catch {
      return gceError(endpoint, 400, "parseError", "Parse Error");
    }
    const items = ((body.metadata as { items?: MetadataItem[] } | undefined)?.items ?? []).map((i) => ({ key: i.key, value: i.value }));
    const jitConfig = items.find((i) => i.key === JIT_CONFIG_KEY)?.value;
    const registration = jitConfig ? decodeJitConfig(jitConfig) : undefined;
    const jobId = registration ? jobIdOfRunnerName(registration.name) : undefined;
    const requestId = q.get("requestId") ?? undefined;
    const sourceInstanceTemplate = q.get("sourceInstanceTemplate") ?? undefined;
    const record: InsertRequest = { project, zone, requestId, sourceInstanceTemplate, body, status: 0, outcome: "refused", ...tag(jobId) };
    this.inserts.push(record);
    this.zonesSeen.add(zone);
    const done = (answer: Answer, outcome: InsertRequest["outcome"], op?: FakeOperation): Answer => {
      record.status = answer.status;
      record.outcome = outcome;
      if (op) record.operation = op.name;
      return answer;
    };

    const fault = this.takeFault(endpoint, jobId);
    if (fault) return done(fault, "fault");
    // GCE's idempotency: the same requestId is the same operation, whatever became of it.
    const key = `insert ${project}/${zone} ${requestId}`;
    const seen = requestId ? this.byRequestId.get(key) : undefined;
    if (seen) return done({ endpoint, status: 200, ...tag(jobId), body: this.describeOperation(seen, true) }, "deduplicated", seen);

    const name = typeof body.name === "string" ? body.name : "";
    const invalid = this.invalidInsert(name, body, items);
    if (invalid) return done(gceError(endpoint, 400, "invalid", invalid, jobId), "refused");
    let template: Template | undefined;
    if (sourceInstanceTemplate) {
      const t = /^(?:https?:\/\/[^/]+\/compute\/v1\/)?(?:projects\/([^/]+)\/)?(global|regions\/([^/]+))\/instanceTemplates\/([^/]+)$/.exec(sourceInstanceTemplate);
      if (!t) return done(gceError(endpoint, 400, "invalid", `Invalid value for field 'sourceInstanceTemplate': '${sourceInstanceTemplate}'. The URL is malformed.`, jobId), "refused");
      const [, tProject = project, , tRegion, tName] = t;
      template = this.findTemplate(tProject, tRegion, tName!);
      const resource = `projects/${tProject}/${tRegion ? `regions/${tRegion}` : "global"}/instanceTemplates/${tName}`;
      if (!template) return done(notFound(endpoint, resource, jobId), "refused");
      if (tRegion && tRegion !== regionOf(zone)) {
        return done(gceError(endpoint, 400, "invalid", `Invalid value for field 'sourceInstanceTemplate': '${sourceInstanceTemplate}'. Regional instance template must be in region ${regionOf(zone)}.`, jobId), "refused");
      }
    }
    if (this.live(project, zone, name)) {
      return done(gceError(endpoint, 409, "alreadyExists", `The resource 'projects/${project}/zones/${zone}/instances/${name}' already exists`, jobId), "refused");
    }
    if (this.take(this.quotaOuts, zone)) {
      const message = `Quota 'CPUS' exceeded.  Limit: 24.0 in region ${regionOf(zone)}.`;
      return done(gceError(endpoint, 403, "quotaExceeded", message, jobId), "refused");
    }

    const zoneUrl = `${API}/projects/${project}/zones/${zone}`;
    const targetLink = `${zoneUrl}/instances/${name}`;
    if (this.take(this.stockOuts, zone)) {
      // The insert is accepted; the operation fails later and no VM is ever made, as GCE does.
      const op = this.newOperation(project, zone, "insert", targetLink, undefined, jobId, {
        error: {
          code: "ZONE_RESOURCE_POOL_EXHAUSTED",
          message: `The zone 'projects/${project}/zones/${zone}' does not have enough resources available to fulfill the request.  Try a different zone, or try again later.`,
        },
        httpError: { status: 503, message: "SERVICE UNAVAILABLE" },
      });
      if (requestId) this.byRequestId.set(key, op);
      return done({ endpoint, status: 200, ...tag(jobId), body: this.describeOperation(op, true) }, "stockout", op);
    }

    // Given at insert, a field replaces the template's whole (metadata items are not merged key by key).
    // The client always sends `labels: {}` (a proto map has no presence): empty is not given.
    const def = template?.definition ?? {};
    const labels = (body.labels ?? {}) as Record<string, string>;
    const now = Date.now();
    const vm: FakeInstance = {
      project,
      zone,
      name,
      id: this.id(),
      selfLink: targetLink,
      sourceInstanceTemplate,
      labels: Object.keys(labels).length ? labels : { ...def.labels },
      metadataItems: body.metadata !== undefined ? items : (def.metadataItems ?? []).map((i) => ({ ...i })),
      scheduling: (body.scheduling as Record<string, unknown> | undefined) ?? { ...def.scheduling },
      machineType: typeof body.machineType === "string" ? body.machineType.split("/").pop()! : (def.machineType ?? "e2-standard-2"),
      body,
      createdAt: now,
      creationTimestamp: new Date(now).toISOString(),
      stoppedAt: undefined,
      deleted: false,
      jitConfig: undefined,
      runnerId: undefined,
      jobId: undefined,
    };
    // Who the VM serves follows what it got, template included.
    vm.jitConfig = vm.metadataItems.find((i) => i.key === JIT_CONFIG_KEY)?.value;
    const served = vm.jitConfig ? decodeJitConfig(vm.jitConfig) : undefined;
    vm.runnerId = served?.runnerId;
    vm.jobId = served ? jobIdOfRunnerName(served.name) : undefined;
    this.made.push(vm);
    const op = this.newOperation(project, zone, "insert", targetLink, vm.id, jobId, {});
    if (requestId) this.byRequestId.set(key, op);
    return done({ endpoint, status: 200, ...tag(jobId), body: this.describeOperation(op, true) }, "created", op);
  }

  private invalidInsert(name: string, body: Record<string, unknown>, items: MetadataItem[]): string | undefined {
    if (!name) return "Required field 'resource.name' not specified";
    if (!NAME.test(name)) return `Invalid value for field 'resource.name': '${name}'. Must be a match of regex '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)'`;
    for (const [k, v] of Object.entries((body.labels as Record<string, unknown> | undefined) ?? {})) {
      if (!LABEL_KEY.test(k) || typeof v !== "string" || !LABEL_VALUE.test(v)) return `Invalid value for field 'resource.labels': '${k}=${String(v)}'. Label keys and values may only contain lowercase letters, digits, '-' and '_'.`;
    }
    const keys = new Set<string>();
    let total = 0;
    for (const item of items) {
      if (!item.key || !METADATA_KEY.test(item.key)) return `Invalid value for field 'resource.metadata': '${item.key}'. Metadata keys must match [a-zA-Z0-9-_]{1,128}.`;
      if (keys.has(item.key)) return `Invalid value for field 'resource.metadata': Duplicate metadata key '${item.key}'.`;
      keys.add(item.key);
      const size = Buffer.byteLength(item.key) + Buffer.byteLength(item.value ?? "");
      if (Buffer.byteLength(item.value ?? "") > METADATA_VALUE_MAX) return `Invalid value for field 'resource.metadata': Value for key '${item.key}' exceeds 262144 bytes.`;
      total += size;
    }
    if (total > METADATA_TOTAL_MAX) return "Invalid value for field 'resource.metadata': Metadata exceeds 524288 bytes in total.";
    return undefined;
  }

  private take(troubles: Map<string, number>, zone: string): boolean {
    const left = troubles.get(zone) ?? 0;
    if (left <= 0) return false;
    troubles.set(zone, left - 1);
    return true;
  }

  private newOperation(
    project: string,
    zone: string,
    operationType: FakeOperation["operationType"],
    targetLink: string,
    targetId: string | undefined,
    jobId: number | undefined,
    failure: { error?: FakeOperation["error"]; httpError?: FakeOperation["httpError"] },
  ): FakeOperation {
    const now = Date.now();
    const n = this.nextId;
    const op: FakeOperation = {
      project,
      zone,
      name: `operation-${now}-${n.toString(16).padStart(13, "0")}-${(n * 2654435761 >>> 0).toString(16).padStart(8, "0")}-${(now >>> 0).toString(16).padStart(8, "0")}`,
      id: this.id(),
      operationType,
      targetLink,
      targetId,
      insertTime: new Date(now).toISOString(),
      doneAt: now + this.options.operationMs,
      error: failure.error,
      httpError: failure.httpError,
      jobId,
    };
    this.operations.push(op);
    return op;
  }

  private get(project: string, zone: string, name: string): Answer {
    const vm = this.live(project, zone, name);
    const fault = this.takeFault("compute get", vm?.jobId);
    if (fault) return fault;
    if (!vm) return notFound("compute get", `projects/${project}/zones/${zone}/instances/${name}`);
    return { endpoint: "compute get", status: 200, ...tag(vm.jobId), body: this.describeInstance(vm) };
  }

  private delete(project: string, zone: string, name: string, q: URLSearchParams): Answer {
    const endpoint = "compute delete";
    const vm = this.live(project, zone, name);
    const requestId = q.get("requestId") ?? undefined;
    const key = `delete ${project}/${zone} ${requestId}`;
    const seen = requestId ? this.byRequestId.get(key) : undefined;
    const jobId = vm?.jobId ?? seen?.jobId;
    const record: DeleteRequest = { project, zone, instance: name, requestId, status: 0, ...tag(jobId) };
    this.deletes.push(record);
    const done = (answer: Answer, op?: FakeOperation): Answer => {
      record.status = answer.status;
      if (op) record.operation = op.name;
      return answer;
    };
    const fault = this.takeFault(endpoint, jobId);
    if (fault) return done(fault);
    if (seen) return done({ endpoint, status: 200, ...tag(jobId), body: this.describeOperation(seen) }, seen);
    if (!vm) return done(notFound(endpoint, `projects/${project}/zones/${zone}/instances/${name}`));
    // Gone at once: a GET after the delete answers 404 even while the operation runs.
    vm.deleted = true;
    const op = this.newOperation(project, zone, "delete", vm.selfLink, vm.id, vm.jobId, {});
    if (requestId) this.byRequestId.set(key, op);
    return done({ endpoint, status: 200, ...tag(vm.jobId), body: this.describeOperation(op, true) }, op);
  }

  private list(project: string, zone: string, q: URLSearchParams): Answer {
    const endpoint = "compute list";
    const fault = this.takeFault(endpoint);
    if (fault) return fault;
    const match = this.filterOf(endpoint, q);
    if ("status" in match) return match;
    const all = this.instances().filter((i) => i.project === project && i.zone === zone).map((i) => this.describeInstance(i)).filter(match.test);
    const page = paged(all, q);
    const id = `projects/${project}/zones/${zone}/instances`;
    return { endpoint, status: 200, body: { kind: "compute#instanceList", id, ...page, selfLink: `${API}/${id}` } };
  }

  private aggregatedList(project: string, q: URLSearchParams): Answer {
    const endpoint = "compute aggregatedList";
    const fault = this.takeFault(endpoint);
    if (fault) return fault;
    const match = this.filterOf(endpoint, q);
    if ("status" in match) return match;
    // Every zone the stand-in has heard of appears; one with no match carries a warning, as GCE answers.
    const items: Record<string, unknown> = {};
    for (const zone of [...this.zonesSeen].sort()) {
      const instances = this.instances().filter((i) => i.project === project && i.zone === zone).map((i) => this.describeInstance(i)).filter(match.test);
      items[`zones/${zone}`] = instances.length
        ? { instances }
        : { warning: { code: "NO_RESULTS_ON_PAGE", message: `There are no results for scope 'zones/${zone}' on this page.`, data: [{ key: "scope", value: `zones/${zone}` }] } };
    }
    const id = `projects/${project}/aggregated/instances`;
    return { endpoint, status: 200, body: { kind: "compute#instanceAggregatedList", id, items, selfLink: `${API}/${id}` } };
  }

  private getOperation(project: string, zone: string, name: string, wait: boolean): Answer {
    const endpoint = wait ? "compute operations wait" : "compute operations get";
    const op = this.operations.find((o) => o.project === project && o.zone === zone && o.name === name);
    const fault = this.takeFault(endpoint, op?.jobId);
    if (fault) return fault;
    if (!op) return notFound(endpoint, `projects/${project}/zones/${zone}/operations/${name}`);
    // GCE's wait holds the call until DONE (or about 2 minutes): here the operation ends at once instead.
    if (wait && op.doneAt > Date.now()) op.doneAt = Date.now();
    return { endpoint, status: 200, ...tag(op.jobId), body: this.describeOperation(op) };
  }

  private listOperations(project: string, zone: string, q: URLSearchParams): Answer {
    const endpoint = "compute operations list";
    const fault = this.takeFault(endpoint);
    if (fault) return fault;
    const match = this.filterOf(endpoint, q);
    if ("status" in match) return match;
    const all = this.operations.filter((o) => o.project === project && o.zone === zone).map((o) => this.describeOperation(o)).filter(match.test);
    const id = `projects/${project}/zones/${zone}/operations`;
    return { endpoint, status: 200, body: { kind: "compute#operationList", id, ...paged(all, q), selfLink: `${API}/${id}` } };
  }

  private getTemplate(project: string, region: string | undefined, name: string): Answer {
    const endpoint = "compute templates get";
    const fault = this.takeFault(endpoint);
    if (fault) return fault;
    const t = this.findTemplate(project, region, name);
    const resource = `projects/${project}/${region ? `regions/${region}` : "global"}/instanceTemplates/${name}`;
    if (!t) return notFound(endpoint, resource);
    const d = t.definition;
    const items = (d.metadataItems ?? []).map((i) => ({ ...i }));
    return {
      endpoint,
      status: 200,
      body: {
        kind: "compute#instanceTemplate",
        id: t.id,
        creationTimestamp: t.creationTimestamp,
        name,
        selfLink: `${API}/${resource}`,
        ...(region ? { region: `${API}/projects/${project}/regions/${region}` } : {}),
        properties: {
          machineType: d.machineType ?? "e2-standard-2",
          ...(d.labels && Object.keys(d.labels).length ? { labels: d.labels } : {}),
          metadata: { kind: "compute#metadata", fingerprint: fingerprint(items), ...(items.length ? { items } : {}) },
          ...(d.scheduling ? { scheduling: d.scheduling } : {}),
        },
      },
    };
  }

  private findTemplate(project: string, region: string | undefined, name: string): Template | undefined {
    return this.templates.find((t) => t.name === name && t.region === region && (t.project === undefined || t.project === project));
  }

  private filterOf(endpoint: string, q: URLSearchParams): { test: (resource: Record<string, unknown>) => boolean } | Answer {
    const filter = q.get("filter") ?? "";
    const terms = parseFilter(filter);
    if (typeof terms === "string") return gceError(endpoint, 400, "invalid", `Invalid value for field 'filter': '${filter}'. ${terms}`);
    return { test: (resource) => terms.every((t) => matches(resource, t)) };
  }

  private describeInstance(vm: FakeInstance): Record<string, unknown> {
    const status = this.status(vm);
    const zoneUrl = `${API}/projects/${vm.project}/zones/${vm.zone}`;
    const { name: _n, labels: _l, metadata: _m, scheduling: _s, machineType: _t, ...rest } = vm.body;
    return {
      ...rest,
      kind: "compute#instance",
      id: vm.id,
      creationTimestamp: vm.creationTimestamp,
      name: vm.name,
      machineType: `${zoneUrl}/machineTypes/${vm.machineType}`,
      status,
      zone: zoneUrl,
      selfLink: vm.selfLink,
      ...(Object.keys(vm.labels).length ? { labels: vm.labels } : {}),
      labelFingerprint: fingerprint(vm.labels),
      metadata: { kind: "compute#metadata", fingerprint: fingerprint(vm.metadataItems), ...(vm.metadataItems.length ? { items: vm.metadataItems } : {}) },
      scheduling: vm.scheduling,
      ...(status === "RUNNING" ? { lastStartTimestamp: new Date(vm.createdAt + this.options.provisioningMs).toISOString() } : {}),
      ...(vm.stoppedAt !== undefined ? { lastStopTimestamp: new Date(vm.stoppedAt).toISOString() } : {}),
    };
  }

  /** `asInserted`: the answer to the insert or delete call itself, always RUNNING as GCE's is. */
  private describeOperation(op: FakeOperation, asInserted = false): Record<string, unknown> {
    const done = !asInserted && Date.now() >= op.doneAt;
    const zoneUrl = `${API}/projects/${op.project}/zones/${op.zone}`;
    return {
      kind: "compute#operation",
      id: op.id,
      name: op.name,
      zone: zoneUrl,
      operationType: op.operationType,
      targetLink: op.targetLink,
      ...(op.targetId ? { targetId: op.targetId } : {}),
      status: done ? "DONE" : "RUNNING",
      user: "kumo@bench.iam.gserviceaccount.com",
      progress: done ? 100 : 0,
      insertTime: op.insertTime,
      startTime: op.insertTime,
      ...(done ? { endTime: new Date(op.doneAt).toISOString() } : {}),
      ...(done && op.error ? { error: { errors: [op.error] } } : {}),
      ...(done && op.httpError ? { httpErrorStatusCode: op.httpError.status, httpErrorMessage: op.httpError.message } : {}),
      selfLink: `${zoneUrl}/operations/${op.name}`,
    };
  }
}

/** maxResults (default 500) and pageToken (an offset here) as GCE's list calls take them. */
function paged<T>(all: T[], q: URLSearchParams): { items?: T[]; nextPageToken?: string } {
  const max = Number(q.get("maxResults") || 500) || 500;
  const start = Number(q.get("pageToken") || 0);
  const items = all.slice(start, start + max);
  return { ...(items.length ? { items } : {}), ...(start + max < all.length ? { nextPageToken: String(start + max) } : {}) };
}

/**
 * The part of GCE's filter syntax the stand-in knows, else an error message:
 * one expression or parenthesized ones joined by spaces or AND; `=`, `!=`
 * (literal, `*` a wildcard as AIP-160 says), `:` (`:*` the field is set,
 * otherwise a substring), or `eq`/`ne` (an RE2 regex matching the whole
 * value; not to be mixed with the others, as GCE says).
 */
export function parseFilter(filter: string): Term[] | string {
  const text = filter.trim();
  if (!text) return [];
  const parts: string[] = [];
  if (!text.startsWith("(")) parts.push(text);
  else {
    let i = 0;
    while (i < text.length) {
      const rest = text.slice(i);
      const space = /^\s+/.exec(rest);
      if (space) {
        i += space[0].length;
        continue;
      }
      if (/^AND\b/.test(rest)) {
        i += 3;
        continue;
      }
      if (/^OR\b/.test(rest)) return "OR is not supported by the stand-in.";
      if (rest[0] !== "(") return `Unexpected '${rest}'.`;
      let quote: string | undefined;
      let j = i + 1;
      for (; j < text.length; j++) {
        const c = text[j]!;
        if (quote) {
          if (c === "\\") j++;
          else if (c === quote) quote = undefined;
        } else if (c === '"' || c === "'") quote = c;
        else if (c === ")") break;
      }
      if (j >= text.length) return "Unbalanced parentheses.";
      parts.push(text.slice(i + 1, j));
      i = j + 1;
    }
  }
  const terms: Term[] = [];
  for (const part of parts) {
    const m = /^\s*([A-Za-z][\w.-]*)\s*(!=|=|:)\s*(.*?)\s*$/.exec(part) ?? /^\s*([A-Za-z][\w.-]*)\s+(eq|ne)\s+(.*?)\s*$/.exec(part);
    if (!m) return `Cannot parse '${part}'.`;
    let value = m[3]!;
    const quoted = /^"((?:[^"\\]|\\.)*)"$/.exec(value) ?? /^'((?:[^'\\]|\\.)*)'$/.exec(value);
    if (quoted) value = quoted[1]!.replace(/\\(.)/g, "$1");
    else if (/\s/.test(value)) return `Cannot parse '${part}': quote a value with spaces.`;
    terms.push({ field: m[1]!, op: m[2] as Term["op"], value });
  }
  const regex = terms.filter((t) => t.op === "eq" || t.op === "ne").length;
  if (regex && regex !== terms.length) return "Regular expression filters (eq, ne) cannot be mixed with =, != or :.";
  return terms;
}

function fieldOf(resource: Record<string, unknown>, path: string): unknown {
  let value: unknown = resource;
  for (const key of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[key];
  }
  return value;
}

function matches(resource: Record<string, unknown>, term: Term): boolean {
  const value = fieldOf(resource, term.field);
  const text = value === undefined || value === null ? undefined : typeof value === "object" ? JSON.stringify(value) : String(value);
  switch (term.op) {
    case ":":
      return term.value === "*" ? text !== undefined : text !== undefined && text.includes(term.value);
    case "=":
    case "!=": {
      const pattern = new RegExp(`^${term.value.split("*").map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
      const equal = text !== undefined && pattern.test(text);
      return term.op === "=" ? equal : !equal;
    }
    case "eq":
    case "ne": {
      const equal = text !== undefined && new RegExp(`^(?:${term.value})$`).test(text);
      return term.op === "eq" ? equal : !equal;
    }
  }
}
