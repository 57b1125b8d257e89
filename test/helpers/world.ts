import nock from "nock";
import { CLOUD_RUN_ENDPOINT } from "./cloud-run.js";
import { deliveryId, INSTALLATION_ID, ORG, REPO, workflowJobPayload } from "./fixtures.js";
import { GITHUB, jitConfigFor } from "./github.js";
import type { Harness } from "./harness.js";

type Fault = { status: number; body: unknown; headers?: Record<string, string> } | undefined;

interface Registration {
  id: number;
  name: string;
  busy: boolean;
  deleted: boolean;
  /** The runner connected (GitHub lists it online). */
  online?: boolean;
  labels?: string[];
}

interface Delivery {
  id: number;
  guid: string;
  status: string;
  delivered_at: string;
  redelivery: boolean;
  event: string;
  action: string;
  payload: unknown;
}

/**
 * A stateful stand-in for GitHub and Cloud Run behind nock: it remembers
 * registrations, executions, job statuses and webhook deliveries, and injects
 * faults by request count, so a fault test can check invariants over the
 * whole system instead of single calls.
 */
export class World {
  readonly registrations = new Map<number, Registration>();
  /** execution name → runner name and whether it still runs */
  readonly executions = new Map<string, { runnerName: string; running: boolean }>();
  readonly jobStatus = new Map<number, string>();
  readonly deliveries: Delivery[] = [];
  readonly redeliveryQueue: Delivery[] = [];
  /** The most executions running at one time. */
  peakRunning = 0;
  jitFault: (n: number) => Fault = () => undefined;
  runJobFault: (n: number) => Fault = () => undefined;
  listRunnersFault: () => Fault = () => undefined;
  deleteRunnerFault: () => Fault = () => undefined;
  private jitCount = 0;
  private runJobCount = 0;
  private nextRunnerId = 5000;
  private nextDelivery = 1;
  private nextExecution = 1;

  /** The org's .github/kumo.yml; a test may change it (and drop the app's cache). */
  constructor(public settingsYaml: string) {}

  install(): void {
    const gh = nock(GITHUB).persist();
    gh.post(/\/app\/installations\/\d+\/access_tokens/).reply(201, () => ({ token: "ghs_world", expires_at: new Date(Date.now() + 3_600_000).toISOString() }));
    gh.get(/\/repos\/[^/]+\/\.github\/contents\//).reply(200, () => this.settingsYaml, { "content-type": "application/vnd.github.v3.raw; charset=utf-8" });
    gh.get(`/orgs/${ORG}/actions/runner-groups`).query(true).reply(200, { total_count: 1, runner_groups: [{ id: 7, name: "cloudrun" }] });
    gh.post(`/orgs/${ORG}/actions/runners/generate-jitconfig`).reply((_uri, raw) => {
      const fault = this.jitFault(++this.jitCount);
      if (fault) return [fault.status, fault.body, fault.headers ?? {}];
      const body = (typeof raw === "string" ? JSON.parse(raw) : raw) as { name: string; labels: string[] };
      const id = this.nextRunnerId++;
      this.registrations.set(id, { id, name: body.name, busy: false, deleted: false, labels: body.labels });
      return [201, { runner: { id, name: body.name, labels: body.labels, status: "offline", busy: false }, encoded_jit_config: jitConfigFor(body.name) }];
    });
    gh.delete(new RegExp(`/orgs/${ORG}/actions/runners/\\d+$`)).reply((uri) => {
      const fault = this.deleteRunnerFault();
      if (fault) return [fault.status, fault.body];
      const r = this.registrations.get(Number(uri.split("/").pop()));
      if (!r || r.deleted) return [404, { message: "Not Found" }];
      if (r.busy) return [422, { message: "Runner is still running a job" }];
      r.deleted = true;
      return [204, ""];
    });
    gh.get(`/orgs/${ORG}/actions/runners`).query(true).reply(() => {
      const fault = this.listRunnersFault();
      if (fault) return [fault.status, fault.body];
      const alive = [...this.registrations.values()].filter((r) => !r.deleted);
      return [200, { total_count: alive.length, runners: alive.map((r) => ({ id: r.id, name: r.name, busy: r.busy, status: r.online || r.busy ? "online" : "offline", os: "Linux", labels: (r.labels ?? []).map((name) => ({ name, type: "custom" })) })) }];
    });
    gh.get(new RegExp(`/repos/${ORG}/${REPO}/actions/jobs/\\d+$`)).reply((uri) => {
      const id = Number(uri.split("/").pop());
      const status = this.jobStatus.get(id);
      return status ? [200, { id, status, conclusion: null, runner_id: null, runner_name: null, started_at: null, completed_at: null }] : [404, { message: "Not Found" }];
    });
    gh.get("/app/installations").query(true).reply(200, [{ id: INSTALLATION_ID, account: { login: ORG, type: "Organization" } }]);
    gh.get("/app/hook/deliveries").query(true).reply(200, () => [...this.deliveries].reverse().map(({ payload: _p, ...d }) => d));
    gh.post(/\/app\/hook\/deliveries\/\d+\/attempts$/).reply((uri) => {
      const original = this.deliveries.find((d) => d.id === Number(uri.split("/").at(-2)));
      if (!original) return [404, { message: "Not Found" }];
      this.redeliveryQueue.push(original);
      return [202, {}];
    });

    const cr = nock(CLOUD_RUN_ENDPOINT).persist();
    cr.post(/:run/).reply((uri, raw) => {
      const fault = this.runJobFault(++this.runJobCount);
      if (fault) return [fault.status, fault.body];
      const body = (typeof raw === "string" ? JSON.parse(raw) : raw) as { overrides: { containerOverrides: Array<{ env: Array<{ value: string }> }> } };
      const runnerName = Buffer.from(body.overrides.containerOverrides[0]!.env[0]!.value, "base64").toString().replace("SECRET-JIT-CONFIG-for-", "");
      const job = decodeURIComponent(uri.split("?")[0]!).replace(/^\/v2\//, "").replace(/:run$/, "");
      const name = `${job}/executions/x-${this.nextExecution++}`;
      this.executions.set(name, { runnerName, running: true });
      this.peakRunning = Math.max(this.peakRunning, this.running());
      return [200, { name: "op", metadata: { "@type": "type.googleapis.com/google.cloud.run.v2.Execution", name } }];
    });
    cr.get(/\/executions\/[^/:?]+/).query(true).reply((uri) => {
      const name = decodeURIComponent(uri.split("?")[0]!).replace(/^\/v2\//, "");
      const e = this.executions.get(name);
      if (!e) return [404, { error: { code: 404, message: "not found", status: "NOT_FOUND" } }];
      return [200, { name, runningCount: e.running ? 1 : 0, ...(e.running ? {} : { completionTime: new Date().toISOString(), cancelledCount: 1 }) }];
    });
    cr.post(/\/executions\/[^/:]+:cancel/).reply((uri) => {
      const name = decodeURIComponent(uri.split("?")[0]!).replace(/^\/v2\//, "").replace(/:cancel$/, "");
      const e = this.executions.get(name);
      if (e) e.running = false;
      return [200, { name: "op", metadata: { "@type": "type.googleapis.com/google.cloud.run.v2.Execution", name } }];
    });
  }

  /** Delivers a webhook as GitHub does: the outcome is logged, a failure is never retried by itself. */
  async deliver(h: Harness, payload: { action: string; workflow_job: { id: number } }, guid = deliveryId(), redelivery = false): Promise<boolean> {
    if (payload.action === "queued" && !this.jobStatus.has(payload.workflow_job.id)) this.jobStatus.set(payload.workflow_job.id, "queued");
    let ok = true;
    try {
      await h.deliver("workflow_job", payload, guid);
    } catch {
      ok = false;
    }
    this.deliveries.push({
      id: this.nextDelivery++,
      guid,
      status: ok ? "OK" : "Invalid HTTP Response: 500",
      delivered_at: new Date().toISOString(),
      redelivery,
      event: "workflow_job",
      action: payload.action,
      payload,
    });
    return ok;
  }

  /** GitHub performs the redeliveries reconcile asked for. */
  async flushRedeliveries(h: Harness): Promise<void> {
    const queue = this.redeliveryQueue.splice(0);
    await Promise.all(queue.map((d) => this.deliver(h, d.payload as never, d.guid, true)));
  }

  /** Executions running now. */
  running(): number {
    return [...this.executions.values()].filter((e) => e.running).length;
  }

  /** A runner ran its job: the execution ends and GitHub sends completed. */
  async finish(h: Harness, jobId: number, execution: string | undefined, labels: string[]): Promise<boolean> {
    const e = execution ? this.executions.get(execution) : undefined;
    if (e) e.running = false;
    this.jobStatus.set(jobId, "completed");
    const payload = workflowJobPayload("completed", { id: jobId, labels });
    return this.deliver(h, payload as never);
  }

  /** The runner of this registration connected to GitHub (busy: and took a job). */
  connect(runnerName: string, busy = false): void {
    const r = [...this.registrations.values()].find((x) => x.name === runnerName && !x.deleted);
    if (!r) throw new Error(`no registration ${runnerName}`);
    r.online = true;
    r.busy = busy;
  }

  /** Registers a runner as if generate-jitconfig succeeded just before the app died. */
  registerOrphan(name: string): number {
    const id = this.nextRunnerId++;
    this.registrations.set(id, { id, name, busy: false, deleted: false });
    return id;
  }

  /** The system-wide invariants after reconcile. */
  violations(prefix = "kumo"): string[] {
    const problems: string[] = [];
    const alive = [...this.registrations.values()].filter((r) => !r.deleted);
    const running = [...this.executions.entries()].filter(([, e]) => e.running);
    for (const [jobId, status] of this.jobStatus) {
      if (status !== "queued") continue;
      const mine = alive.filter((r) => r.name.startsWith(`${prefix}-${jobId}-`));
      const live = mine.filter((r) => running.some(([, e]) => e.runnerName === r.name));
      if (live.length !== 1 || mine.length !== 1) problems.push(`job ${jobId}: ${mine.length} registrations, ${live.length} live runners`);
    }
    for (const r of alive) {
      if (!running.some(([, e]) => e.runnerName === r.name)) problems.push(`registration ${r.name} has no running execution`);
    }
    for (const [name, e] of running) {
      if (!alive.some((r) => r.name === e.runnerName)) problems.push(`execution ${name} runs for deleted registration ${e.runnerName}`);
    }
    return problems;
  }

  /** Executions started per runner name prefix (job): more than one live would be a duplicate. */
  executionsForJob(jobId: number, prefix = "kumo"): number {
    return [...this.executions.values()].filter((e) => e.runnerName.startsWith(`${prefix}-${jobId}-`)).length;
  }
}
