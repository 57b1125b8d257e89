import { createHmac, randomUUID } from "node:crypto";
import { Agent, request } from "node:http";
import { createRequire } from "node:module";
import { performance } from "node:perf_hooks";
import { BENCH_INSTALLATION, BENCH_ORG, BENCH_REPO } from "./fakes/github.js";

type Example = { action: string; workflow_job: Record<string, unknown>; repository: Record<string, any>; [key: string]: unknown };

// The package's main is a JSON file: real payloads GitHub sent.
const examples = createRequire(import.meta.url)("@octokit/webhooks-examples") as Array<{ name: string; examples: Example[] }>;
const queuedExample = examples.find((e) => e.name === "workflow_job")!.examples.find((e) => e.action === "queued")!;

export interface Delivery {
  guid: string;
  jobId: number;
  body: Buffer;
  signature: string;
  /** Index of the app instance it goes to. */
  instance: number;
}

export interface Sent {
  delivery: Delivery;
  start: number;
  end: number;
  status: number;
  error?: string;
}

let nextJobId = 50_000_000;
export const newJobId = (): number => nextJobId++;

/** A real `workflow_job.queued` payload, moved to the bench org, with the installation the example lacks. */
export function queuedPayload(jobId: number): Record<string, unknown> {
  const payload = structuredClone(queuedExample);
  payload.workflow_job = { ...payload.workflow_job, id: jobId, labels: ["kumo", "small"] };
  payload.installation = { id: BENCH_INSTALLATION, node_id: "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==" };
  payload.organization = { login: BENCH_ORG, id: 9919, node_id: "O_kgDOAAAmvw" };
  payload.repository = {
    ...payload.repository,
    name: BENCH_REPO,
    full_name: `${BENCH_ORG}/${BENCH_REPO}`,
    owner: { ...payload.repository.owner, login: BENCH_ORG, type: "Organization" },
  };
  return payload;
}

/** Signs once, ahead of the clock: the bench measures the app, not its own HMAC. */
export function delivery(jobId: number, secret: string, instance = 0, guid: string = randomUUID()): Delivery {
  const body = Buffer.from(JSON.stringify(queuedPayload(jobId)));
  const signature = `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
  return { guid, jobId, body, signature, instance };
}

/** POSTs one signed delivery the way GitHub does. */
export function send(d: Delivery, port: number, agent: Agent | false, timeoutMs = 30_000): Promise<Sent> {
  const start = performance.now();
  return new Promise((resolve) => {
    const finish = (status: number, error?: string) => resolve({ delivery: d, start, end: performance.now(), status, ...(error ? { error } : {}) });
    const req = request(
      {
        host: "127.0.0.1",
        port,
        method: "POST",
        path: "/api/github/webhooks",
        agent,
        timeout: timeoutMs,
        headers: {
          "content-type": "application/json",
          "content-length": d.body.length,
          "user-agent": "GitHub-Hookshot/bench",
          "x-github-event": "workflow_job",
          "x-github-delivery": d.guid,
          "x-github-hook-installation-target-type": "integration",
          "x-hub-signature-256": d.signature,
        },
      },
      (res) => {
        res.resume();
        res.on("end", () => finish(res.statusCode ?? 0));
        res.on("error", (e) => finish(0, e.message));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", (e) => finish(0, (e as NodeJS.ErrnoException).code ?? e.message));
    req.end(d.body);
  });
}

/** Sends every delivery with at most `concurrency` in flight (closed loop). */
export async function sendBounded(deliveries: Delivery[], ports: number[], concurrency: number): Promise<Sent[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const results: Sent[] = new Array(deliveries.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < deliveries.length; i = next++) {
      const d = deliveries[i]!;
      results[i] = await send(d, ports[d.instance]!, agent);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, deliveries.length) }, worker));
  agent.destroy();
  return results;
}

/** Sends at a fixed rate whatever the answers (open loop), as GitHub does. */
export async function sendAtRate(deliveries: Delivery[], ports: number[], perSecond: number, maxSockets = 50): Promise<Sent[]> {
  const agent = new Agent({ keepAlive: true, maxSockets });
  const started = performance.now();
  const inFlight: Array<Promise<Sent>> = [];
  for (let i = 0; i < deliveries.length; i++) {
    const due = started + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const d = deliveries[i]!;
    inFlight.push(send(d, ports[d.instance]!, agent));
  }
  const results = await Promise.all(inFlight);
  agent.destroy();
  return results;
}
