import { afterEach, beforeEach, describe, expect, it } from "@jest/globals";
import { InstancesClient, InstanceTemplatesClient, RegionInstanceTemplatesClient, ZoneOperationsClient, type protos } from "@google-cloud/compute";
import { PassThroughClient } from "google-auth-library";
import { FakeComputeEngine, parseFilter } from "../../bench/fakes/compute-engine.js";
import { encodeJitConfig } from "../../bench/fakes/github.js";

const PROJECT = "kumo-test";
const ZONE = "europe-west1-b";
const OTHER_ZONE = "europe-west1-c";
const REGIONAL = `projects/${PROJECT}/regions/europe-west1/instanceTemplates/runner-vm`;
const GLOBAL = `projects/${PROJECT}/global/instanceTemplates/runner-vm-global`;
const API = "https://www.googleapis.com/compute/v1";

type Options = ConstructorParameters<typeof InstancesClient>[0];
type IInstance = protos.google.cloud.compute.v1.IInstance;

let fake: FakeComputeEngine;
let instances: InstancesClient;
let operations: ZoneOperationsClient;
let templates: InstanceTemplatesClient;
let regionTemplates: RegionInstanceTemplatesClient;

/** The app's way (googleClientOptions): REST to the stand-in without credentials. */
function options(port: number): Options {
  return { fallback: true, apiEndpoint: "127.0.0.1", port, protocol: "http", authClient: new PassThroughClient() } as Options;
}

/** A runner VM as the launcher asks for one: the job's JIT config in metadata, Kumo's label. */
function runnerVm(name: string, jobId: number, runnerId = jobId * 10): IInstance {
  return {
    name,
    labels: { "kumo-runner": "kumo" },
    metadata: { items: [{ key: "startup-script", value: "#!/bin/sh\necho hi" }, { key: "kumo-jit-config", value: encodeJitConfig(runnerId, `kumo-${jobId}-1-abc`) }] },
    scheduling: { maxRunDuration: { seconds: 3600 }, instanceTerminationAction: "DELETE", provisioningModel: "SPOT" },
  };
}

function insert(name: string, jobId: number, extra: { zone?: string; requestId?: string; sourceInstanceTemplate?: string; instanceResource?: IInstance } = {}) {
  return instances.insert({
    project: PROJECT,
    zone: extra.zone ?? ZONE,
    requestId: extra.requestId ?? `req-${name}-${extra.zone ?? ZONE}`,
    sourceInstanceTemplate: extra.sourceInstanceTemplate ?? REGIONAL,
    instanceResource: extra.instanceResource ?? runnerVm(name, jobId),
  });
}

beforeEach(async () => {
  fake = await new FakeComputeEngine().listen();
  fake.defineTemplate(REGIONAL, { metadataItems: [{ key: "startup-script", value: "#!/bin/sh\necho template" }], scheduling: { provisioningModel: "SPOT" }, labels: { team: "ci" } });
  fake.defineTemplate(GLOBAL, { metadataItems: [{ key: "enable-oslogin", value: "true" }] });
  const o = options(fake.port);
  instances = new InstancesClient(o);
  operations = new ZoneOperationsClient(o);
  templates = new InstanceTemplatesClient(o);
  regionTemplates = new RegionInstanceTemplatesClient(o);
});

afterEach(async () => {
  await Promise.all([instances.close(), operations.close(), templates.close(), regionTemplates.close()]);
  await fake.close();
});

describe("FakeComputeEngine", () => {
  it("records an insert exactly and answers a RUNNING zonal operation; the VM exists and says which job it serves", async () => {
    const [op, second] = await insert("kumo-42-1-abc", 42, { requestId: "0b5b3f0e-1111-4222-a333-444455556666" });
    // Not an ExtendedOperation: a plain object whose `name` is the operation's numeric id.
    expect(op.done).toBe(false);
    expect(second).toBeNull();
    const latest = op.latestResponse as protos.google.cloud.compute.v1.IOperation;
    expect(op.name).toBe(latest.id);
    expect(latest).toMatchObject({
      kind: "compute#operation",
      name: expect.stringMatching(/^operation-\d+-/),
      status: "RUNNING",
      operationType: "insert",
      zone: `${API}/projects/${PROJECT}/zones/${ZONE}`,
      targetLink: `${API}/projects/${PROJECT}/zones/${ZONE}/instances/kumo-42-1-abc`,
      progress: 0,
    });
    expect(latest.id).toMatch(/^\d{19}$/);

    expect(fake.inserts).toEqual([
      {
        project: PROJECT,
        zone: ZONE,
        requestId: "0b5b3f0e-1111-4222-a333-444455556666",
        sourceInstanceTemplate: REGIONAL,
        // proto3 JSON as the client sends it: int64 seconds as a string.
        body: {
          name: "kumo-42-1-abc",
          labels: { "kumo-runner": "kumo" },
          metadata: { items: [{ key: "startup-script", value: "#!/bin/sh\necho hi" }, { key: "kumo-jit-config", value: encodeJitConfig(420, "kumo-42-1-abc") }] },
          scheduling: { instanceTerminationAction: "DELETE", maxRunDuration: { seconds: "3600" }, provisioningModel: "SPOT" },
        },
        status: 200,
        outcome: "created",
        operation: latest.name,
        jobId: 42,
      },
    ]);

    const [vm] = await instances.get({ project: PROJECT, zone: ZONE, instance: "kumo-42-1-abc" });
    expect(vm).toMatchObject({
      kind: "compute#instance",
      name: "kumo-42-1-abc",
      status: "RUNNING",
      zone: `${API}/projects/${PROJECT}/zones/${ZONE}`,
      selfLink: `${API}/projects/${PROJECT}/zones/${ZONE}/instances/kumo-42-1-abc`,
      machineType: `${API}/projects/${PROJECT}/zones/${ZONE}/machineTypes/e2-standard-2`,
      labels: { "kumo-runner": "kumo" },
      scheduling: { instanceTerminationAction: "DELETE", provisioningModel: "SPOT", maxRunDuration: { seconds: "3600" } },
    });
    expect(vm.id).toMatch(/^\d{19}$/);
    expect(new Date(vm.creationTimestamp!).getTime()).toBeGreaterThan(Date.now() - 60_000);
    expect(vm.metadata?.fingerprint).toMatch(/^[A-Za-z0-9+/]{11}=$/);
    expect(vm.metadata?.items?.map((i) => i.key)).toEqual(["startup-script", "kumo-jit-config"]);

    expect(fake.jitConfigOf("kumo-42-1-abc")).toBe(encodeJitConfig(420, "kumo-42-1-abc"));
    expect(fake.jitConfigOf("kumo-42-1-abc", "startup-script")).toBe("#!/bin/sh\necho hi");
    expect(fake.runnerOf("kumo-42-1-abc")).toEqual({ runnerId: 420, name: "kumo-42-1-abc" });
    expect(fake.instance("kumo-42-1-abc")).toMatchObject({ jobId: 42, runnerId: 420, zone: ZONE, sourceInstanceTemplate: REGIONAL });
    expect(fake.instancesOf(42)).toHaveLength(1);

    const [done] = await operations.get({ project: PROJECT, zone: ZONE, operation: latest.name! });
    expect(done).toMatchObject({ status: "DONE", progress: 100, targetId: vm.id });
    // Fields GCE leaves out decode as undefined.
    expect(done.error).toBeUndefined();
    expect(fake.callsTo("compute insert", 200)).toEqual([expect.objectContaining({ jobId: 42 })]);
    expect(fake.counts()).toEqual({ "compute insert": 1, "compute get": 1, "compute operations get": 1 });
  });

  it("answers the same operation to a repeated requestId (one VM), and 409 to a new requestId for a name in use", async () => {
    const [first] = await insert("kumo-7-1-abc", 7, { requestId: "r-1" });
    const [again] = await insert("kumo-7-1-abc", 7, { requestId: "r-1" });
    expect(again.latestResponse).toMatchObject({ name: (first.latestResponse as { name: string }).name });
    expect(again.name).toBe(first.name);
    expect(fake.instances()).toHaveLength(1);
    expect(fake.inserts.map((i) => i.outcome)).toEqual(["created", "deduplicated"]);

    const conflict = await insert("kumo-7-1-abc", 7, { requestId: "r-2" }).catch((e: unknown) => e);
    expect(conflict).toMatchObject({ code: 10, message: `The resource 'projects/${PROJECT}/zones/${ZONE}/instances/kumo-7-1-abc' already exists` });
    expect(fake.instances()).toHaveLength(1);
    // Same name in another zone is another VM.
    await insert("kumo-7-1-abc", 7, { zone: "europe-west1-d", requestId: "r-3" });
    expect(fake.instances().map((i) => i.zone)).toEqual([ZONE, "europe-west1-d"]);
    expect(fake.callsTo("compute insert").map((c) => c.status)).toEqual([200, 200, 409, 200]);
  });

  it("lets a stocked-out zone accept the insert, then fail the operation with ZONE_RESOURCE_POOL_EXHAUSTED and no VM", async () => {
    fake.stockOut(ZONE);
    const [op] = await insert("kumo-9-1-abc", 9);
    const name = (op.latestResponse as { name: string }).name;
    expect(op.latestResponse).toMatchObject({ status: "RUNNING" });
    await expect(instances.get({ project: PROJECT, zone: ZONE, instance: "kumo-9-1-abc" })).rejects.toMatchObject({ code: 5 });

    const [got] = await operations.get({ project: PROJECT, zone: ZONE, operation: name });
    const [waited] = await operations.wait({ project: PROJECT, zone: ZONE, operation: name });
    for (const o of [got, waited]) {
      expect(o).toMatchObject({ status: "DONE", httpErrorStatusCode: 503, httpErrorMessage: "SERVICE UNAVAILABLE" });
      expect(o.error?.errors).toEqual([expect.objectContaining({ code: "ZONE_RESOURCE_POOL_EXHAUSTED", message: expect.stringContaining("does not have enough resources") })]);
    }
    expect(fake.instances()).toEqual([]);
    expect(fake.inserts[0]).toMatchObject({ outcome: "stockout", operation: name, jobId: 9 });
    // The same requestId still answers the failed operation; another zone has stock.
    const [again] = await insert("kumo-9-1-abc", 9);
    expect((again.latestResponse as { name: string }).name).toBe(name);
    await insert("kumo-9-1-abc", 9, { zone: "europe-west1-d" });
    expect(fake.instances().map((i) => i.zone)).toEqual(["europe-west1-d"]);

    // The operation list a launcher may search for the reason.
    const [ops] = await operations.list({ project: PROJECT, zone: ZONE, filter: `(operationType = "insert") AND (targetLink = "${API}/projects/${PROJECT}/zones/${ZONE}/instances/kumo-9-1-abc")` });
    expect(ops.map((o) => o.error?.errors?.[0]?.code)).toEqual(["ZONE_RESOURCE_POOL_EXHAUSTED"]);
    // `=` compares literally (AIP-160); a regex needs `eq`.
    const [literal] = await operations.list({ project: PROJECT, zone: ZONE, filter: '(operationType = "insert") AND (targetLink = ".*/instances/kumo-9-1-abc")' });
    const [regex] = await operations.list({ project: PROJECT, zone: ZONE, filter: "(operationType eq insert) (targetLink eq .*/instances/kumo-9-1-abc)" });
    expect([literal.length, regex.length]).toEqual([0, 1]);
    expect(fake.counts()).toMatchObject({ "compute insert": 3, "compute get": 1, "compute operations get": 1, "compute operations wait": 1, "compute operations list": 3 });

    fake.reset();
    await insert("kumo-9-1-abc", 9);
    expect(fake.inserts[0]?.outcome).toBe("created");
  });

  it("refuses an insert at once with 403 in a zone out of quota, a given number of times", async () => {
    fake.quotaExceeded(ZONE, 1);
    const error = (await insert("kumo-5-1-abc", 5).catch((e: unknown) => e)) as Record<string, unknown>;
    // PERMISSION_DENIED by the HTTP status; the legacy `errors[].reason` does not reach the caller.
    expect(error).toMatchObject({ code: 7, httpStatusCode: 403, message: "Quota 'CPUS' exceeded.  Limit: 24.0 in region europe-west1." });
    expect(error.status).toBeUndefined();
    expect(error.reason).toBeUndefined();
    expect(fake.instances()).toEqual([]);
    expect(fake.operations).toEqual([]);
    await insert("kumo-5-1-abc", 5, { requestId: "after-quota" });
    expect(fake.callsTo("compute insert").map((c) => c.status)).toEqual([403, 200]);
  });

  it("gets, deletes (requestId deduplicated) and answers 404 for a VM gone; a stopped VM is TERMINATED", async () => {
    await insert("kumo-3-1-abc", 3);
    fake.stop("kumo-3-1-abc");
    const [stopped] = await instances.get({ project: PROJECT, zone: ZONE, instance: "kumo-3-1-abc" });
    expect(stopped.status).toBe("TERMINATED");
    expect(stopped.lastStopTimestamp).toBeTruthy();

    const [op] = await instances.delete({ project: PROJECT, zone: ZONE, instance: "kumo-3-1-abc", requestId: "del-1" });
    expect(op.latestResponse).toMatchObject({ operationType: "delete", status: "RUNNING", targetLink: `${API}/projects/${PROJECT}/zones/${ZONE}/instances/kumo-3-1-abc` });
    const notFound = await instances.get({ project: PROJECT, zone: ZONE, instance: "kumo-3-1-abc" }).catch((e: unknown) => e);
    expect(notFound).toMatchObject({ code: 5, message: `The resource 'projects/${PROJECT}/zones/${ZONE}/instances/kumo-3-1-abc' was not found` });
    const [again] = await instances.delete({ project: PROJECT, zone: ZONE, instance: "kumo-3-1-abc", requestId: "del-1" });
    expect(again.name).toBe(op.name);
    await expect(instances.delete({ project: PROJECT, zone: ZONE, instance: "kumo-3-1-abc", requestId: "del-2" })).rejects.toMatchObject({ code: 5 });
    expect(fake.deletes.map((d) => [d.instance, d.requestId, d.status, d.jobId])).toEqual([
      ["kumo-3-1-abc", "del-1", 200, 3],
      ["kumo-3-1-abc", "del-1", 200, 3],
      ["kumo-3-1-abc", "del-2", 404, undefined],
    ]);
    expect(fake.instance("kumo-3-1-abc")?.deleted).toBe(true);
    expect(fake.instances()).toEqual([]);
    // The name is free again.
    await insert("kumo-3-1-abc", 3, { requestId: "new" });
    expect(fake.instances()).toHaveLength(1);
    // maxResults pages; list() follows nextPageToken.
    const [ops] = await operations.list({ project: PROJECT, zone: ZONE, maxResults: 2 });
    expect(ops.map((o) => o.operationType)).toEqual(["insert", "delete", "insert"]);
    expect(fake.counts()).toEqual({ "compute insert": 2, "compute get": 2, "compute delete": 3, "compute operations list": 2 });
  });

  it("lists by label across zones through aggregatedListAsync, with a warning for a zone without any", async () => {
    await insert("kumo-1-1-abc", 1);
    await insert("kumo-2-1-abc", 2, { zone: OTHER_ZONE });
    await insert("other-vm", 0, { instanceResource: { name: "other-vm", labels: { team: "web" } } });
    await insert("gone-vm", 0, { zone: "europe-west1-d", instanceResource: { name: "gone-vm", labels: { "kumo-runner": "kumo" } } });
    fake.forget("gone-vm");
    fake.stop("kumo-2-1-abc");

    async function listed(filter: string): Promise<Array<[string, string[], string | undefined]>> {
      const out: Array<[string, string[], string | undefined]> = [];
      for await (const [scope, list] of instances.aggregatedListAsync({ project: PROJECT, filter })) {
        out.push([scope, (list.instances ?? []).map((i) => `${i.name}:${i.status}`), list.warning?.code ?? undefined]);
      }
      return out;
    }
    const expected = [
      ["zones/europe-west1-b", ["kumo-1-1-abc:RUNNING"], undefined],
      ["zones/europe-west1-c", ["kumo-2-1-abc:TERMINATED"], undefined],
      ["zones/europe-west1-d", [], "NO_RESULTS_ON_PAGE"],
    ];
    expect(await listed('labels.kumo-runner = "kumo"')).toEqual(expected);
    expect(await listed("labels.kumo-runner=kumo")).toEqual(expected);
    expect(await listed("labels.kumo-runner:*")).toEqual(expected);
    expect((await listed("(labels.team:*) (name != nothing)"))[0]).toEqual(["zones/europe-west1-b", ["other-vm:RUNNING"], undefined]);
    expect(await listed('(labels.kumo-runner = "kumo") AND (status = "RUNNING")')).toEqual([expected[0], ["zones/europe-west1-c", [], "NO_RESULTS_ON_PAGE"], expected[2]]);
    await expect(listed("labels.a = b OR labels.c = d")).rejects.toMatchObject({ code: 3 });

    const [zonal] = await instances.list({ project: PROJECT, zone: ZONE, filter: "labels.kumo-runner:*" });
    expect(zonal.map((i) => i.name)).toEqual(["kumo-1-1-abc"]);
    expect(fake.counts()).toMatchObject({ "compute aggregatedList": 6, "compute list": 1 });
    expect(fake.callsTo("compute aggregatedList", 400)).toHaveLength(1);
  });

  it("answers global and regional templates, 404 for an unknown one, and builds VMs from them", async () => {
    const [regional] = await regionTemplates.get({ project: PROJECT, region: "europe-west1", instanceTemplate: "runner-vm" });
    expect(regional).toMatchObject({
      kind: "compute#instanceTemplate",
      name: "runner-vm",
      region: `${API}/projects/${PROJECT}/regions/europe-west1`,
      selfLink: `${API}/${REGIONAL}`,
      properties: { machineType: "e2-standard-2", labels: { team: "ci" }, scheduling: { provisioningModel: "SPOT" }, metadata: { items: [{ key: "startup-script", value: "#!/bin/sh\necho template" }] } },
    });
    const [global] = await templates.get({ project: PROJECT, instanceTemplate: "runner-vm-global" });
    expect(global.properties?.metadata?.items).toEqual([expect.objectContaining({ key: "enable-oslogin", value: "true" })]);
    expect(global.region).toBeUndefined();
    await expect(templates.get({ project: PROJECT, instanceTemplate: "runner-vm" })).rejects.toMatchObject({ code: 5 });
    await expect(regionTemplates.get({ project: PROJECT, region: "us-central1", instanceTemplate: "runner-vm" })).rejects.toMatchObject({ code: 5 });

    // Fields not given at insert come from the template; given ones replace it whole.
    await insert("bare", 0, { instanceResource: { name: "bare" } });
    expect(fake.instance("bare")).toMatchObject({ labels: { team: "ci" }, scheduling: { provisioningModel: "SPOT" }, metadataItems: [{ key: "startup-script", value: "#!/bin/sh\necho template" }] });
    await insert("global-one", 0, { sourceInstanceTemplate: GLOBAL, instanceResource: { name: "global-one", metadata: { items: [{ key: "x", value: "1" }] } } });
    expect(fake.instance("global-one")?.metadataItems).toEqual([{ key: "x", value: "1" }]);
    // A short name defined with a region serves any project; a full URL works as GCE takes it.
    fake.defineTemplate("short", { region: "europe-west1" });
    await insert("from-url", 0, { sourceInstanceTemplate: `${API}/projects/${PROJECT}/regions/europe-west1/instanceTemplates/short`, instanceResource: { name: "from-url" } });

    const unknown = await insert("nope", 0, { sourceInstanceTemplate: `projects/${PROJECT}/global/instanceTemplates/missing`, instanceResource: { name: "nope" } }).catch((e: unknown) => e);
    expect(unknown).toMatchObject({ code: 5, message: `The resource 'projects/${PROJECT}/global/instanceTemplates/missing' was not found` });
    // A regional template serves only its region's zones.
    await expect(insert("far", 0, { zone: "us-central1-a", instanceResource: { name: "far" } })).rejects.toMatchObject({ code: 3 });
    expect(fake.instances().map((i) => i.name)).toEqual(["bare", "global-one", "from-url"]);
    expect(fake.counts()).toEqual({ "compute templates get": 4, "compute insert": 5 });
  });

  it("refuses names and labels GCE refuses", async () => {
    await expect(insert("Kumo_Bad", 0, { instanceResource: { name: "Kumo_Bad" } })).rejects.toMatchObject({ code: 3, message: expect.stringContaining("resource.name") });
    await expect(insert("ok", 0, { instanceResource: { name: "ok", labels: { repo: "Octo/Repo" } } })).rejects.toMatchObject({ code: 3, message: expect.stringContaining("resource.labels") });
    await expect(insert("dup", 0, { instanceResource: { name: "dup", metadata: { items: [{ key: "a", value: "1" }, { key: "a", value: "2" }] } } })).rejects.toMatchObject({ code: 3 });
    expect(fake.callsTo("compute insert", 400)).toHaveLength(3);
    expect(fake.instances()).toEqual([]);
  });

  it("keeps a VM PROVISIONING for provisioningMs, and a RUNNING operation until operationMs or a wait", async () => {
    fake.configure({ provisioningMs: 150, operationMs: 60_000 });
    const [op] = await insert("slow", 0, { instanceResource: { name: "slow" } });
    const name = (op.latestResponse as { name: string }).name;
    expect(fake.statusOf("slow")).toBe("PROVISIONING");
    const [first] = await instances.get({ project: PROJECT, zone: ZONE, instance: "slow" });
    expect(first.status).toBe("PROVISIONING");
    expect((await operations.get({ project: PROJECT, zone: ZONE, operation: name }))[0].status).toBe("RUNNING");
    // GCE's wait returns when the operation is DONE: here at once.
    expect((await operations.wait({ project: PROJECT, zone: ZONE, operation: name }))[0].status).toBe("DONE");
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await instances.get({ project: PROJECT, zone: ZONE, instance: "slow" }))[0]).toMatchObject({ status: "RUNNING", lastStartTimestamp: expect.any(String) });
  });

  it("answers injected faults: insert is not retried by the client, get is (503 is retryable for idempotent calls)", async () => {
    fake.failNext("compute insert", { status: 503, body: { error: { code: 503, message: "backend unavailable" } } });
    await expect(insert("kumo-8-1-abc", 8)).rejects.toMatchObject({ code: 14, message: "backend unavailable" });
    expect(fake.instances()).toEqual([]);
    expect(fake.inserts[0]).toMatchObject({ outcome: "fault", status: 503, jobId: 8 });
    await insert("kumo-8-1-abc", 8);

    fake.failNext("compute get", { status: 503, body: { error: { code: 503, message: "try again" } } });
    const [vm] = await instances.get({ project: PROJECT, zone: ZONE, instance: "kumo-8-1-abc" });
    expect(vm.name).toBe("kumo-8-1-abc");
    fake.failNext("compute operations wait", { status: 500, body: { error: { code: 500, message: "internal" } } });
    await expect(operations.wait({ project: PROJECT, zone: ZONE, operation: fake.operations[0]!.name })).rejects.toMatchObject({ code: 13 });

    // What the stand-in does not serve is a 404 counted apart.
    await expect(instances.start({ project: PROJECT, zone: ZONE, instance: "kumo-8-1-abc" })).rejects.toMatchObject({ code: 5 });
    expect(fake.calls.map((c) => [c.endpoint, c.status, c.jobId])).toEqual([
      ["compute insert", 503, 8],
      ["compute insert", 200, 8],
      ["compute get", 503, 8],
      ["compute get", 200, 8],
      ["compute operations wait", 500, 8],
      [`other POST /compute/v1/projects/${PROJECT}/zones/${ZONE}/instances/kumo-8-1-abc/start`, 404, undefined],
    ]);
  });

  it("parses the filters it knows and refuses the rest", () => {
    expect(parseFilter('labels.kumo-runner = "kumo"')).toEqual([{ field: "labels.kumo-runner", op: "=", value: "kumo" }]);
    expect(parseFilter("name eq 'kumo-.*'")).toEqual([{ field: "name", op: "eq", value: "kumo-.*" }]);
    expect(parseFilter('(a = "x)y") (b:*)')).toEqual([
      { field: "a", op: "=", value: "x)y" },
      { field: "b", op: ":", value: "*" },
    ]);
    expect(parseFilter("(name eq x) (status = RUNNING)")).toMatch(/cannot be mixed/);
    expect(parseFilter("(a = b")).toMatch(/Unbalanced/);
  });
});
