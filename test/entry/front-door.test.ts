import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, jest, test } from "@jest/globals";
import { BENCH_ORG } from "../../bench/fakes/github.js";
import { peakRssMiBOf } from "../../bench/proc.js";
import {
  benchJobPayload,
  closeFirestores,
  freePort,
  notCloudLogging,
  postWebhook,
  processEnv,
  readJob,
  startScript,
  startStandIns,
  stopAll,
  uniqueProject,
  waitFor,
  type Proc,
  type StandIns,
} from "../helpers/processes.js";

// The public webhook route of `npm start`, tried from outside as an attacker or a
// careless operator would, against the process as it is deployed.
jest.setTimeout(60_000);

let nextJobId = 7_300_000;
const MiB = 1024 * 1024;

/** Resident set size of a process now, MiB. */
function rssMiB(pid: number): number {
  return Number(/VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? NaN) / 1024;
}

/**
 * POSTs `size` bytes with a wrong signature over a raw socket (every error of it
 * is this function's own): `declared` sends Content-Length, otherwise the body is
 * chunked; `expectContinue` waits for the server's 100 Continue before the body.
 * Resolves to the answer's status (0 when the connection was cut before one) and the time to it.
 */
function postLarge(port: number, size: number, declared: boolean, expectContinue = false): Promise<{ status: number; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    let settled = false;
    let received = "";
    const socket = connect(port, "127.0.0.1");
    const done = (status: number) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      resolve({ status, ms: Date.now() - started });
    };
    socket.on("error", () => done(0));
    socket.on("close", () => done(0));
    const chunk = Buffer.alloc(MiB, "x");
    let sent = 0;
    const frame = (data: Buffer) => (declared ? data : Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from("\r\n")]));
    const pump = () => {
      while (sent < size && !settled) {
        sent += chunk.length;
        if (!socket.write(frame(chunk))) return void socket.once("drain", pump);
      }
      if (!settled && !declared) socket.write("0\r\n\r\n");
    };
    socket.on("data", (data) => {
      received += data.toString("latin1");
      const status = /^HTTP\/1\.1 (\d{3})/.exec(received)?.[1];
      if (status === "100") {
        received = received.slice(received.indexOf("\r\n\r\n") + 4);
        pump();
      } else if (status) done(Number(status));
    });
    socket.write(
      [
        "POST /api/github/webhooks HTTP/1.1",
        `Host: 127.0.0.1:${port}`,
        "Content-Type: application/json",
        "X-GitHub-Event: workflow_job",
        `X-GitHub-Delivery: ${randomUUID()}`,
        `X-Hub-Signature-256: sha256=${"0".repeat(64)}`,
        declared ? `Content-Length: ${size}` : "Transfer-Encoding: chunked",
        ...(expectContinue ? ["Expect: 100-continue"] : []),
        "",
        "",
      ].join("\r\n"),
    );
    if (!expectContinue) pump();
  });
}

describe("the public webhook route of npm start", () => {
  let s: StandIns;
  let server: Proc;
  let project: string;
  let port: number;
  let base: string;

  beforeAll(async () => {
    s = await startStandIns();
    project = uniqueProject();
    port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = startScript("start", processEnv(s, { project, port, extra: { KUMO_DELIVERY_DEADLINE_MS: "1000" } }));
    await server.waitForHttp(port, "/ping");
  });
  afterEach(() => s.github.setLatency({}));
  afterAll(async () => {
    await stopAll();
    await s?.close();
    await closeFirestores();
  });

  test("twelve 32 MB bodies at once, announced with Expect: 100-continue: 413 each before a byte of them is sent", async () => {
    const before = rssMiB(server.child.pid!);
    const results = await Promise.all(Array.from({ length: 12 }, () => postLarge(port, 32 * MiB, true, true)));
    expect(results.map((r) => r.status)).toEqual(Array(12).fill(413));
    expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(5_000);
    expect(rssMiB(server.child.pid!) - before).toBeLessThan(16);
  });

  test("twelve 32 MB bodies at once with a declared length: refused (413, or the connection cut while the client still sends), fast, and the process grows by less than 32 MiB", async () => {
    const before = rssMiB(server.child.pid!);
    const results = await Promise.all(Array.from({ length: 12 }, () => postLarge(port, 32 * MiB, true)));
    // The answer races the client's own writes on loopback: a client busy writing may see the cut first.
    // Never Probot's 202 after 9 s, as before the front door.
    for (const r of results) expect([413, 0]).toContain(r.status);
    expect(Math.max(...results.map((r) => r.ms))).toBeLessThan(9_000);
    // Before the front door: 12 such bodies took the process past 1.4 GiB.
    expect(rssMiB(server.child.pid!) - before).toBeLessThan(32);
    expect((await fetch(`${base}/ping`)).status).toBe(200);
  });

  test("twelve 32 MB chunked bodies at once: reading stops at the limit (512 KiB), refused, and the process grows by less than 48 MiB", async () => {
    const before = rssMiB(server.child.pid!);
    const from = server.lines.length;
    const results = await Promise.all(Array.from({ length: 12 }, () => postLarge(port, 32 * MiB, false)));
    // The answer may race the client's writes: the connection is closed after it. The server's own
    // word is the proof that each was refused at the limit (one 413 line each).
    for (const r of results) expect([413, 0]).toContain(r.status);
    const refusals = () => server.lines.slice(from).filter((l) => /"status":413/.test(l.text) && /body over the \d+-byte limit/.test(l.text)).length;
    await waitFor("twelve 413 refusals logged", () => refusals() >= 12 || undefined, 15_000);
    expect(refusals()).toBe(12);
    expect(rssMiB(server.child.pid!) - before).toBeLessThan(48);
    expect(peakRssMiBOf(server.child.pid!)).toBeLessThan(400);
    expect((await fetch(`${base}/ping`)).status).toBe(200);
  });

  test("a wrong signature → 401 with one short WARNING line (delivery id, event, reason), and nothing is created", async () => {
    const jobId = nextJobId++;
    const marker = `body-marker-${randomUUID()}`;
    const payload = { ...benchJobPayload("queued", jobId), marker };
    const from = server.lines.length;
    const res = await postWebhook(`${base}/api/github/webhooks`, "workflow_job", payload, { secret: "not-the-secret" });
    expect(res.status).toBe(401);
    await waitFor("the refusal's log line", () => server.lines.length > from);
    // A later request's answer means the refusal wrote all it was going to write.
    expect((await fetch(`${base}/ping`)).status).toBe(200);
    // Only this request's lines: another test's refusals may still be arriving.
    const lines = server.lines.slice(from).filter((l) => !/"status":413/.test(l.text));
    expect(lines).toHaveLength(1);
    const entry = JSON.parse(lines[0]!.text);
    expect(entry).toMatchObject({ severity: "WARNING", message: "webhook refused", deliveryId: res.guid, event: "workflow_job", status: 401, reason: "signature does not match WEBHOOK_SECRET" });
    expect(lines[0]!.text.length).toBeLessThan(600);
    expect(await readJob(project, jobId)).toBeUndefined();
    expect(s.github.callsTo("jit").filter((c) => c.jobId === jobId)).toHaveLength(0);
  });

  test("no log line ever holds a request body, refused or accepted", async () => {
    const marker = `body-marker-${randomUUID()}`;
    const withMarker = (jobId: number) => ({ ...benchJobPayload("queued", jobId), repository: { ...benchJobPayload("queued", jobId).repository, description: marker } });
    expect((await postWebhook(`${base}/api/github/webhooks`, "workflow_job", withMarker(nextJobId++), { secret: "wrong" })).status).toBe(401);
    expect((await postWebhook(`${base}/api/github/webhooks`, "workflow_job", withMarker(nextJobId++))).status).toBe(200);
    // Signed, but a launch that fails: Probot logs the failed delivery.
    s.cloudRun.failNext("runJob", { status: 403, body: { error: { code: 403, message: "denied", status: "PERMISSION_DENIED" } } });
    expect((await postWebhook(`${base}/api/github/webhooks`, "workflow_job", withMarker(nextJobId++))).status).toBe(500);
    expect(server.lines.filter((l) => l.text.includes(marker))).toEqual([]);
    expect(notCloudLogging(server.lines)).toEqual([]);
  });

  test("one deadline per delivery: a delivery that cannot finish in time answers 500 before Probot's 9 s, never 202", async () => {
    const jobId = nextJobId++;
    s.github.setLatency({ jit: 3_000 });
    const started = Date.now();
    const res = await postWebhook(`${base}/api/github/webhooks`, "workflow_job", benchJobPayload("queued", jobId));
    expect(res.status).toBe(500);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect(server.lines.some((l) => l.text.includes("DeadlineError"))).toBe(true);
  });
});

describe("settings are read only from the org's .github repository", () => {
  let s: StandIns;
  beforeAll(async () => {
    s = await startStandIns();
  });
  afterAll(async () => {
    await stopAll();
    await s?.close();
    await closeFirestores();
  });

  test("_extends in the org's kumo.yml is refused with a clear error: the file it names is never read, nothing starts", async () => {
    s.github.settingsYaml = "_extends: app\n";
    const project = uniqueProject();
    const port = await freePort();
    const server = startScript("start", processEnv(s, { project, port }));
    await server.waitForHttp(port, "/ping");
    const jobId = nextJobId++;
    const res = await postWebhook(`http://127.0.0.1:${port}/api/github/webhooks`, "workflow_job", benchJobPayload("queued", jobId));
    expect(res.status).toBe(200);
    const error = await waitFor("the settings error", () => server.logEntries().find((e) => e.severity === "ERROR" && /kumo\.yml/.test(String(e.message))));
    expect(error.errors).toEqual([`_extends: not supported; Kumo reads its settings only from ${BENCH_ORG}/.github/.github/kumo.yml`]);
    // One read of the org's own file; none of bench-org/app's (it would be another settings call).
    expect(s.github.callsTo("settings")).toHaveLength(1);
    expect(Object.keys(s.github.counts()).filter((endpoint) => endpoint.startsWith("other"))).toEqual([]);
    expect(s.github.callsTo("jit")).toHaveLength(0);
    expect(await readJob(project, jobId)).toBeUndefined();
  });
});

describe("production refuses to start without its secrets", () => {
  let s: StandIns;
  beforeAll(async () => {
    s = await startStandIns();
  });
  afterAll(async () => {
    await stopAll();
    await s?.close();
  });

  test.each([
    ["no WEBHOOK_SECRET", { WEBHOOK_SECRET: undefined }, /WEBHOOK_SECRET is not set/],
    ["Probot's default secret", { WEBHOOK_SECRET: "development" }, /WEBHOOK_SECRET is Probot's public default/],
    ["no private key", { PRIVATE_KEY: undefined }, /PRIVATE_KEY is not set/],
  ])("%s → exit 1 and one ERROR line naming it", async (_name, extra, message) => {
    const p = startScript("start", processEnv(s, { project: uniqueProject(), port: await freePort(), extra }));
    const { code } = await p.waitForExit(15_000);
    expect(code).toBe(1);
    const errors = p.logEntries().filter((e) => e.severity === "ERROR");
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(message);
    expect(notCloudLogging(p.lines)).toEqual([]);
  });
});
