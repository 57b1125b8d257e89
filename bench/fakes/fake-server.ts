import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from "node:http";
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

export type Route = (method: string, path: string, body: Buffer, headers: IncomingHttpHeaders) => Answer;

/** What a fault answers instead of the endpoint (the endpoint's state is left untouched). */
export interface Fault {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/**
 * A node:http stand-in on 127.0.0.1 that waits a configurable time per
 * endpoint before answering, and records every call, so the bench can count
 * upstream calls per job and subtract the fakes' time from the app's latency.
 */
export class FakeServer {
  readonly calls: Call[] = [];
  private latencyMs: Record<string, number> = {};
  private readonly faults = new Map<string, Fault[]>();
  private readonly inFlightBy = new Map<string, number>();
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

  /** The next `times` calls of `endpoint` answer `fault` instead (a fake checks this before changing any state). */
  failNext(endpoint: string, fault: Fault, times = 1): void {
    this.faults.set(endpoint, [...(this.faults.get(endpoint) ?? []), ...Array.from({ length: times }, () => fault)]);
  }

  /** The fault planned for this call of `endpoint`, if any, as the answer to give. */
  protected takeFault(endpoint: string, jobId?: number): Answer | undefined {
    const fault = this.faults.get(endpoint)?.shift();
    if (!fault) return undefined;
    return { endpoint, status: fault.status, body: fault.body, ...(fault.headers ? { headers: fault.headers } : {}), ...(jobId !== undefined ? { jobId } : {}) };
  }

  /** Calls of `endpoint` read but not yet answered (held by the configured latency). */
  inFlight(endpoint: string): number {
    return this.inFlightBy.get(endpoint) ?? 0;
  }

  /** Answered calls of `endpoint`, optionally only those with `status`. */
  callsTo(endpoint: string, status?: number): Call[] {
    return this.calls.filter((c) => c.endpoint === endpoint && (status === undefined || c.status === status));
  }

  reset(): void {
    this.calls.length = 0;
    this.faults.clear();
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
      answer = this.route(req.method ?? "GET", req.url ?? "/", Buffer.concat(chunks), req.headers);
    } catch (error) {
      answer = { endpoint: "fake-error", status: 500, body: { message: String(error) } };
    }
    const wait = this.latencyOf(answer.endpoint);
    this.inFlightBy.set(answer.endpoint, this.inFlight(answer.endpoint) + 1);
    try {
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const text = answer.body === undefined ? "" : typeof answer.body === "string" ? answer.body : JSON.stringify(answer.body);
      res.writeHead(answer.status, { "content-type": "application/json; charset=utf-8", ...answer.headers });
      res.end(text);
    } finally {
      this.inFlightBy.set(answer.endpoint, this.inFlight(answer.endpoint) - 1);
    }
    this.calls.push({ endpoint: answer.endpoint, start, end: performance.now(), status: answer.status, ...(answer.jobId !== undefined ? { jobId: answer.jobId } : {}) });
  }
}
