import { afterEach, beforeEach, describe, expect, it } from "@jest/globals";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { CloudTasksClient } from "@google-cloud/tasks";
import { OAuth2Client, PassThroughClient } from "google-auth-library";
import { FakeCloudTasks } from "../../bench/fakes/cloud-tasks.js";

const QUEUE = "projects/kumo-test/locations/europe-west1/queues/launch";
const SA = "kumo-tasks@kumo-test.iam.gserviceaccount.com";

interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
  at: number;
}

/** The app's end of the dispatches: a node:http server whose answer each test decides. */
class Receiver {
  readonly received: Received[] = [];
  answer: (r: Received, res: ServerResponse) => void = (_r, res) => res.writeHead(200).end("ok");
  private readonly server: Server = createServer((req, res) => void this.handle(req, res));
  port = 0;

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}/tasks/launch`;
  }

  async close(): Promise<void> {
    // Idle connections end gracefully; one still held (a test that never answers) is cut shortly after.
    this.server.closeIdleConnections();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const cut = setTimeout(() => this.server.closeAllConnections(), 200);
    await closed;
    clearTimeout(cut);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const r = { method: req.method ?? "", path: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks), at: performance.now() };
    this.received.push(r);
    this.answer(r, res);
  }
}

let fake: FakeCloudTasks;
let receiver: Receiver;
let client: CloudTasksClient;

function clientFor(port: number): CloudTasksClient {
  return new CloudTasksClient({ fallback: true, apiEndpoint: "127.0.0.1", port, protocol: "http", authClient: new PassThroughClient() } as ConstructorParameters<typeof CloudTasksClient>[0]);
}

function createTask(id: string | undefined, payload: unknown = { jobId: 1 }, audience = receiver.url) {
  return client.createTask({
    parent: QUEUE,
    task: {
      ...(id ? { name: `${QUEUE}/tasks/${id}` } : {}),
      httpRequest: {
        url: receiver.url,
        httpMethod: "POST",
        headers: { "content-type": "application/json" },
        body: Buffer.from(JSON.stringify(payload)),
        oidcToken: { serviceAccountEmail: SA, audience },
      },
      dispatchDeadline: { seconds: 60 },
    },
  });
}

function verifier(): OAuth2Client {
  return new OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: fake.certsUrl } });
}

function bearer(r: Received): string {
  return String(r.headers.authorization).replace(/^Bearer /, "");
}

beforeEach(async () => {
  fake = await new FakeCloudTasks({ queue: QUEUE }).listen();
  receiver = await new Receiver().listen();
  client = clientFor(fake.port);
});

afterEach(async () => {
  await client.close();
  await fake.close();
  await receiver.close();
});

describe("FakeCloudTasks", () => {
  it("takes createTask from the real client in REST mode and dispatches it with body, headers and a verifiable OIDC token", async () => {
    const [task] = await createTask("job-1-attempt-1", { jobId: 1 });
    expect(task.name).toBe(`${QUEUE}/tasks/job-1-attempt-1`);
    expect(task.httpRequest?.url).toBe(receiver.url);
    expect(task.httpRequest?.httpMethod).toBe("POST");
    expect(Number(task.scheduleTime?.seconds)).toBeGreaterThan(0);
    await fake.settled(5_000);

    expect(receiver.received).toHaveLength(1);
    const r = receiver.received[0]!;
    expect(r.method).toBe("POST");
    expect(r.path).toBe("/tasks/launch");
    expect(JSON.parse(r.body.toString())).toEqual({ jobId: 1 });
    expect(r.headers["content-type"]).toBe("application/json");
    expect(r.headers["user-agent"]).toBe("Google-Cloud-Tasks");
    expect(r.headers["x-cloudtasks-queuename"]).toBe("launch");
    expect(r.headers["x-cloudtasks-taskname"]).toBe("job-1-attempt-1");
    expect(r.headers["x-cloudtasks-taskretrycount"]).toBe("0");
    expect(r.headers["x-cloudtasks-taskexecutioncount"]).toBe("0");

    const ticket = await verifier().verifyIdToken({ idToken: bearer(r), audience: receiver.url });
    const payload = ticket.getPayload()!;
    expect(payload.iss).toBe("https://accounts.google.com");
    expect(payload.aud).toBe(receiver.url);
    expect(payload.email).toBe(SA);
    expect(payload.email_verified).toBe(true);
    expect(payload.exp - payload.iat).toBe(3600);
    expect(ticket.getEnvelope()).toMatchObject({ alg: "RS256", kid: fake.kid, typ: "JWT" });

    const recorded = fake.task("job-1-attempt-1")!;
    expect(recorded).toMatchObject({ status: "succeeded", attempts: 1, url: receiver.url, method: "POST", oidcToken: { serviceAccountEmail: SA, audience: receiver.url } });
    expect(recorded.body.toString()).toBe(JSON.stringify({ jobId: 1 }));
    expect(fake.counts()).toMatchObject({ created: 1, succeeded: 1, pending: 0, attempts: 1 });
    expect(fake.dispatches[0]).toMatchObject({ attempt: 1, status: 200 });
  });

  it("refuses a name in use with ALREADY_EXISTS (code 6), and names an unnamed task", async () => {
    await createTask("dup");
    await expect(createTask("dup")).rejects.toMatchObject({ code: 6 });
    await fake.settled(5_000);
    await expect(createTask("dup")).rejects.toMatchObject({ code: 6 }); // remembered after it ran
    fake.forget("dup");
    await createTask("dup");
    const [unnamed] = await createTask(undefined);
    expect(unnamed.name).toMatch(new RegExp(`^${QUEUE}/tasks/\\d{20}$`));
    await fake.settled(5_000);
    expect(fake.counts()).toMatchObject({ created: 3, succeeded: 3, duplicates: 2 });
  });

  // `unreachable` is exercised through the app in test/entry/launch-queue.test.ts: here, under a loaded
  // machine, the client library let a reset surface as an uncaught error of the test process.
  it("answers injected faults", async () => {
    fake.failNext(1, 503);
    await expect(createTask("a")).rejects.toMatchObject({ code: 14 });
    await createTask("a");
    expect(fake.counts().created).toBe(1);
    expect(fake.calls.map((c) => [c.endpoint, c.status])).toEqual([
      ["createTask", 503],
      ["createTask", 200],
    ]);
  });

  it("retries a 503 with doubling backoff until a 2xx", async () => {
    let n = 0;
    receiver.answer = (_r, res) => void res.writeHead(++n <= 2 ? 503 : 204).end();
    await createTask("flaky");
    await fake.settled(5_000);
    const at = receiver.received.map((r) => r.at);
    expect(at).toHaveLength(3);
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(95);
    expect(at[2]! - at[1]!).toBeGreaterThanOrEqual(195);
    expect(receiver.received.map((r) => r.headers["x-cloudtasks-taskretrycount"])).toEqual(["0", "1", "2"]);
    expect(receiver.received[2]!.headers["x-cloudtasks-taskpreviousresponse"]).toBe("503");
    expect(fake.dispatchesOf("flaky").map((d) => d.status)).toEqual([503, 503, 204]);
    expect(fake.task("flaky")).toMatchObject({ status: "succeeded", attempts: 3 });
  });

  it("waits at least Retry-After after a 429", async () => {
    let n = 0;
    receiver.answer = (_r, res) => void (++n === 1 ? res.writeHead(429, { "retry-after": "1" }).end() : res.writeHead(200).end());
    await createTask("busy");
    await fake.settled(5_000);
    const [first, second] = receiver.received;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(995);
    expect(fake.dispatches[0]).toMatchObject({ status: 429, retryAfterMs: 1000 });
  });

  it("gives up after maxAttempts, and retries an attempt past its dispatch deadline", async () => {
    fake.configure({ maxAttempts: 2, minBackoffMs: 10 });
    receiver.answer = (_r, res) => void res.writeHead(500).end();
    await createTask("doomed");
    await fake.settled(5_000);
    expect(fake.task("doomed")).toMatchObject({ status: "failed", attempts: 2 });

    let n = 0;
    receiver.answer = (_r, res) => void (++n === 1 ? undefined : res.writeHead(200).end()); // the first one hangs
    await client.createTask({ parent: QUEUE, task: { name: `${QUEUE}/tasks/slow`, httpRequest: { url: receiver.url, httpMethod: "POST", body: Buffer.from("x") }, dispatchDeadline: { seconds: 0, nanos: 300_000_000 } } });
    await fake.settled(5_000);
    expect(fake.dispatchesOf("slow").map((d) => d.status)).toEqual([undefined, 200]);
    expect(fake.dispatchesOf("slow")[0]!.error).toMatch(/deadline/);
  });

  it("holds the rate (token bucket) and the concurrency limit", async () => {
    fake.setRate(5, 1);
    await Promise.all(Array.from({ length: 10 }, (_, i) => createTask(`rate-${i}`)));
    await fake.settled(15_000);
    const at = receiver.received.map((r) => r.at);
    expect(Math.max(...at) - Math.min(...at)).toBeGreaterThanOrEqual(1750);

    fake.setRate(500);
    fake.configure({ maxConcurrentDispatches: 2 });
    let open = 0;
    let most = 0;
    receiver.answer = (_r, res) => {
      most = Math.max(most, ++open);
      setTimeout(() => {
        open--;
        res.writeHead(200).end();
      }, 50);
    };
    await Promise.all(Array.from({ length: 6 }, (_, i) => createTask(`conc-${i}`)));
    await fake.settled(15_000);
    // Never above the limit (a loaded machine may not fill it).
    expect(most).toBeGreaterThanOrEqual(1);
    expect(most).toBeLessThanOrEqual(2);
    expect(fake.counts().succeeded).toBe(16);
  });

  it("pauses and resumes dispatching", async () => {
    fake.pause();
    await createTask("held");
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(receiver.received).toHaveLength(0);
    expect(fake.counts().pending).toBe(1);
    fake.resume();
    await fake.settled(5_000);
    expect(receiver.received).toHaveLength(1);
  });

  it("forges tokens that verification refuses: another key, wrong audience, expired; a wrong email is for the app to check", async () => {
    const audience = receiver.url;
    const oauth = verifier();
    await expect(oauth.verifyIdToken({ idToken: fake.signToken({ aud: audience, email: SA }), audience })).resolves.toBeDefined();
    await expect(oauth.verifyIdToken({ idToken: fake.signToken({ aud: audience }, { foreignKey: true }), audience })).rejects.toThrow(/Invalid token signature/);
    await expect(oauth.verifyIdToken({ idToken: fake.signToken({ aud: "https://elsewhere.example/" }), audience })).rejects.toThrow(/Wrong recipient/);
    const past = Math.floor(Date.now() / 1000) - 7200;
    await expect(oauth.verifyIdToken({ idToken: fake.signToken({ aud: audience, iat: past, exp: past + 3600 }), audience })).rejects.toThrow(/too late/);
    await expect(oauth.verifyIdToken({ idToken: fake.signToken({ aud: audience, iss: "https://evil.example" }), audience })).rejects.toThrow(/Invalid issuer/);
    const wrongEmail = await oauth.verifyIdToken({ idToken: fake.signToken({ aud: audience, email: "other@evil.iam.gserviceaccount.com" }), audience });
    expect(wrongEmail.getPayload()?.email).toBe("other@evil.iam.gserviceaccount.com");
  });
});
