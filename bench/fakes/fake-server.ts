import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";

/** One request a fake answered: which endpoint, when (performance.now() ms), and the job it served if known. */
export interface Call {
  endpoint: string;
  /** Request fully read. */
  start: number;
  /** Answer written, after the configured latency. */
  end: number;
  status: number;
  jobId?: number;
}

export interface Answer {
  endpoint: string;
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  jobId?: number;
}

export type Route = (method: string, path: string, body: Buffer) => Answer;

/**
 * A node:http stand-in on 127.0.0.1 that waits a configurable time per
 * endpoint before answering, and records every call, so the bench can count
 * upstream calls per job and subtract the fakes' time from the app's latency.
 */
export class FakeServer {
  readonly calls: Call[] = [];
  private latencyMs: Record<string, number> = {};
  private readonly server: Server;
  port = 0;

  constructor(private readonly route: Route) {
    this.server = createServer((req, res) => void this.handle(req, res));
    // The app keeps connections to its upstreams alive; so must the fakes.
    this.server.keepAliveTimeout = 60_000;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  setLatency(latencyMs: Record<string, number>): void {
    this.latencyMs = { ...latencyMs };
  }

  latencyOf(endpoint: string): number {
    return this.latencyMs[endpoint] ?? 0;
  }

  reset(): void {
    this.calls.length = 0;
  }

  counts(): Record<string, number> {
    const counts: Record<string, number> = {};
    for (const c of this.calls) counts[c.endpoint] = (counts[c.endpoint] ?? 0) + 1;
    return counts;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const start = performance.now();
    let answer: Answer;
    try {
      answer = this.route(req.method ?? "GET", req.url ?? "/", Buffer.concat(chunks));
    } catch (error) {
      answer = { endpoint: "fake-error", status: 500, body: { message: String(error) } };
    }
    const wait = this.latencyOf(answer.endpoint);
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const text = answer.body === undefined ? "" : typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body);
    res.writeHead(answer.status, { "content-type": "application/json; charset=utf-8", ...answer.headers });
    res.end(text);
    this.calls.push({ endpoint: answer.endpoint, start, end: performance.now(), status: answer.status, ...(answer.jobId !== undefined ? { jobId: answer.jobId } : {}) });
  }
}
