import { createHash, createSign, generateKeyPairSync, randomInt, type KeyObject } from "node:crypto";
import { Agent as HttpAgent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import type { Call } from "./fake-server.js";

/** HttpMethod as the REST API numbers it (`$alt=json;enum-encoding=int`); 0 (unspecified) means POST. */
const HTTP_METHODS = ["POST", "POST", "GET", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"] as const;

/** google.rpc.Code names by the HTTP status the REST API answers them with. */
const STATUS_NAMES: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ALREADY_EXISTS",
  412: "FAILED_PRECONDITION",
  429: "RESOURCE_EXHAUSTED",
  499: "CANCELLED",
  500: "INTERNAL",
  501: "UNIMPLEMENTED",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

/** Headers a task cannot set: Cloud Tasks sets or drops them. */
const RESERVED_HEADER = /^(host|content-length|user-agent|transfer-encoding|connection|x-cloudtasks-.*|x-google-.*|x-appengine-.*)$/i;

export type TaskStatus = "pending" | "dispatched" | "succeeded" | "failed" | "deleted";

/** A task the queue holds (or held), as created through the REST API. */
export interface FakeTask {
  /** projects/P/locations/L/queues/Q/tasks/ID */
  name: string;
  /** The ID: the name's last segment. */
  id: string;
  /** projects/P/locations/L/queues/Q */
  queue: string;
  url: string;
  method: string;
  /** The headers the task asked for (reserved ones dropped). */
  headers: Record<string, string>;
  /** The body bytes, decoded from base64. */
  body: Buffer;
  oidcToken: { serviceAccountEmail: string; audience: string } | undefined;
  dispatchDeadlineMs: number;
  createTime: Date;
  /** Wall time of the next (or last) attempt. */
  scheduleTime: Date;
  /** Dispatch attempts started (Cloud Tasks' dispatchCount). */
  attempts: number;
  /** Attempts that got an HTTP answer, any status (Cloud Tasks' responseCount). */
  responses: number;
  /** HTTP status of the last answered attempt. */
  lastStatus: number | undefined;
  /** pending: waiting for its (next) attempt; dispatched: an attempt in flight. */
  status: TaskStatus;
  /** performance.now() at which the next attempt may start. */
  nextAttemptAt: number;
  /** Order of creation. */
  seq: number;
}

/** One dispatch attempt. Times are performance.now() ms. */
export interface Dispatch {
  task: string;
  /** 1 for the first attempt. */
  attempt: number;
  start: number;
  end: number;
  /** HTTP status answered; undefined on a connection error or deadline. */
  status: number | undefined;
  error?: string;
  /** Retry-After of a 429/503 answer, in ms. */
  retryAfterMs?: number;
}

export interface QueueOptions {
  /** rateLimits.maxDispatchesPerSecond (Cloud Tasks' default 500; ≤ 500 in Cloud Tasks, not enforced here). */
  maxDispatchesPerSecond: number;
  /** Token bucket size; default ceil(maxDispatchesPerSecond). The bucket starts full. */
  maxBurstSize: number;
  /** rateLimits.maxConcurrentDispatches (default 1000). */
  maxConcurrentDispatches: number;
  /** retryConfig.maxAttempts, first attempt included (default 100; -1: unlimited). */
  maxAttempts: number;
  minBackoffMs: number;
  maxBackoffMs: number;
  /** retryConfig.maxDoublings (default 16): the interval doubles this many times, then grows linearly. */
  maxDoublings: number;
  /** How long a name stays taken after its task ran or was deleted (default 1 h); always while it exists. */
  forgetAfterMs: number;
  /** Used when a task has no dispatchDeadline (Cloud Tasks: 10 min). */
  defaultDispatchDeadlineMs: number;
  /** When set, only this queue (projects/P/locations/L/queues/Q) exists: others answer 404 NOT_FOUND. */
  queue: string | undefined;
  /** Delay before API answers (createTask, getTask, deleteTask), ms. */
  latencyMs: number;
  /** Start with dispatching paused. */
  paused: boolean;
}

export interface IdTokenClaims {
  iss: string;
  aud: string;
  azp: string;
  sub: string;
  email: string;
  email_verified: boolean;
  iat: number;
  exp: number;
  [claim: string]: unknown;
}

export interface SignOptions {
  /** Sign with a key the certs endpoint does not publish (same kid unless `kid` is given). */
  foreignKey?: boolean;
  kid?: string;
  alg?: string;
}

interface Fault {
  status: number;
  message: string;
}

interface ApiAnswer {
  endpoint: string;
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

type CreateTaskBody = {
  task?: {
    name?: string;
    scheduleTime?: string;
    dispatchDeadline?: string;
    httpRequest?: {
      url?: string;
      httpMethod?: number | string;
      headers?: Record<string, string>;
      body?: string;
      oidcToken?: { serviceAccountEmail?: string; audience?: string };
    };
    appEngineHttpRequest?: unknown;
  };
  responseView?: unknown;
};

function apiError(endpoint: string, status: number, message: string): ApiAnswer {
  return { endpoint, status, body: { error: { code: status, message, status: STATUS_NAMES[status] ?? "UNKNOWN" } } };
}

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

/** A protobuf Duration in JSON ("60s", "0.500s"), in ms. */
function parseDuration(text: string | undefined): number | undefined {
  const m = text === undefined ? null : /^(\d+(?:\.\d+)?)s$/.exec(text);
  return m ? Number(m[1]) * 1000 : undefined;
}

/** Retry-After: delta seconds or an HTTP date, in ms. */
function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+(\.\d+)?$/.test(text.trim())) return Number(text.trim()) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/**
 * A Cloud Tasks queue, reached by `@google-cloud/tasks` in REST mode
 * (`fallback: true`, `apiEndpoint: "127.0.0.1"`, `port`, `protocol: "http"`,
 * `authClient: new PassThroughClient()`), that also dispatches its tasks:
 *
 * - `POST /v2/{queue}/tasks` (createTask): 200 with the Task (BASIC view, no
 *   body); 409 ALREADY_EXISTS for a name still remembered; a generated name
 *   when none is given. `GET /v2/{task}` and `DELETE /v2/{task}` too.
 * - Each task is delivered to its `httpRequest.url` with its method, headers and
 *   body plus the `X-CloudTasks-*` headers, `User-Agent: Google-Cloud-Tasks` and,
 *   with an oidcToken, `Authorization: Bearer <ID token>` signed RS256 by a key
 *   served at `GET /oauth2/v1/certs` (PEM) and `/oauth2/v3/certs` (JWK), for
 *   `OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: fake.certsUrl } })`.
 * - Rate (token bucket), concurrency, retries with doubling backoff (at least
 *   Retry-After for 429/503), maxAttempts and the dispatch deadline as a queue
 *   applies them.
 *
 * The API's faults: failNext(n, status); `unreachable = true` drops every API
 * connection without an answer (the certs stay served).
 */
export class FakeCloudTasks {
  /** Every task created, in order (deleted and finished ones included). */
  readonly tasks: FakeTask[] = [];
  /** Every dispatch attempt, in order of completion. */
  readonly dispatches: Dispatch[] = [];
  /** API calls answered (createTask, getTask, deleteTask, certs, other …), as FakeServer records them. */
  readonly calls: Call[] = [];
  readonly options: QueueOptions;
  /** Key id of the signing key, as in the token header and the certs. */
  readonly kid: string;
  port = 0;

  private readonly server: Server;
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;
  private foreign: KeyObject | undefined;
  private readonly byName = new Map<string, FakeTask>();
  /** Names refused until this performance.now() time (Infinity while the task exists). */
  private readonly remembered = new Map<string, number>();
  private readonly faults: Fault[] = [];
  private readonly httpAgent = new HttpAgent({ keepAlive: true });
  private readonly httpsAgent = new HttpsAgent({ keepAlive: true });
  private readonly inFlightRequests = new Set<{ destroy(error?: Error): void }>();
  private waiters: Array<{ resolve: () => void; reject: (error: Error) => void; timer?: NodeJS.Timeout }> = [];
  private tokens: number;
  private refilledAt = performance.now();
  private inFlight = 0;
  private timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private closed = false;
  private _unreachable = false;
  private rejectedDuplicates = 0;

  constructor(options: Partial<QueueOptions> = {}) {
    const rate = options.maxDispatchesPerSecond ?? 500;
    this.options = {
      maxDispatchesPerSecond: rate,
      maxBurstSize: options.maxBurstSize ?? defaultBurst(rate),
      maxConcurrentDispatches: options.maxConcurrentDispatches ?? 1000,
      maxAttempts: options.maxAttempts ?? 100,
      minBackoffMs: options.minBackoffMs ?? 100,
      maxBackoffMs: options.maxBackoffMs ?? 10_000,
      maxDoublings: options.maxDoublings ?? 16,
      forgetAfterMs: options.forgetAfterMs ?? 60 * 60_000,
      defaultDispatchDeadlineMs: options.defaultDispatchDeadlineMs ?? 10 * 60_000,
      queue: options.queue,
      latencyMs: options.latencyMs ?? 0,
      paused: options.paused ?? false,
    };
    this.tokens = this.options.maxBurstSize;
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    this.privateKey = privateKey;
    this.publicKey = publicKey;
    this.kid = createHash("sha1").update(publicKey.export({ type: "spki", format: "der" })).digest("hex");
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 60_000;
  }

  async listen(port = 0): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(port, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Base URL of the API (http://127.0.0.1:PORT). */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Where the PEM keys are served: OAuth2Client's `endpoints.oauth2FederatedSignonPemCertsUrl`. */
  get certsUrl(): string {
    return `${this.url}/oauth2/v1/certs`;
  }

  /** The published public key (SPKI PEM). */
  get publicKeyPem(): string {
    return this.publicKey.export({ type: "spki", format: "pem" }).toString();
  }

  /** When true, every API connection is dropped without an answer (and open ones are closed now). */
  get unreachable(): boolean {
    return this._unreachable;
  }

  set unreachable(value: boolean) {
    this._unreachable = value;
    // Idle connections are ended (not reset: a client's pooled socket would error with nobody listening);
    // every request that arrives meanwhile is dropped without an answer.
    if (value) this.server.closeIdleConnections();
  }

  /** The next `times` API calls (certs excepted) answer `status` as a google.rpc error, before any state changes. */
  failNext(times: number, status = 503, message = `fault injected: ${STATUS_NAMES[status] ?? status}`): void {
    for (let i = 0; i < times; i++) this.faults.push({ status, message });
  }

  /** Change rateLimits; the burst defaults to ceil(rate). */
  setRate(perSecond: number, burst = defaultBurst(perSecond)): void {
    this.refill(performance.now());
    this.options.maxDispatchesPerSecond = perSecond;
    this.options.maxBurstSize = burst;
    this.tokens = Math.min(this.tokens, burst);
    this.pump();
  }

  /** Change any queue setting (maxBurstSize is not derived here: use setRate to change the rate). */
  configure(options: Partial<QueueOptions>): void {
    this.refill(performance.now());
    Object.assign(this.options, options);
    this.tokens = Math.min(this.tokens, this.options.maxBurstSize);
    this.pump();
  }

  /** Stop starting dispatches (those in flight go on), as `gcloud tasks queues pause`. */
  pause(): void {
    this.options.paused = true;
    this.pump();
  }

  resume(): void {
    this.options.paused = false;
    this.pump();
  }

  task(nameOrId: string): FakeTask | undefined {
    return this.byName.get(nameOrId) ?? this.tasks.find((t) => t.id === nameOrId);
  }

  /** Dispatch attempts of one task (by name or id). */
  dispatchesOf(nameOrId: string): Dispatch[] {
    const name = this.task(nameOrId)?.name ?? nameOrId;
    return this.dispatches.filter((d) => d.task === name);
  }

  /** Make the names of finished or deleted tasks reusable now: one (by name or id), or all. */
  forget(nameOrId?: string): void {
    for (const [n, until] of this.remembered) {
      if ((nameOrId === undefined || n === nameOrId || n.endsWith(`/tasks/${nameOrId}`)) && until !== Infinity) this.remembered.delete(n);
    }
  }

  /** Resolves when no task is pending or in flight; rejects after `timeoutMs` if given, or on close(). */
  settled(timeoutMs?: number): Promise<void> {
    if (this.isSettled()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: (typeof this.waiters)[number] = { resolve, reject };
      if (timeoutMs !== undefined) {
        waiter.timer = setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(new Error(`FakeCloudTasks not settled after ${timeoutMs} ms: ${JSON.stringify(this.counts())}`));
        }, timeoutMs);
      }
      this.waiters.push(waiter);
    });
  }

  counts(): { created: number; pending: number; dispatched: number; succeeded: number; failed: number; deleted: number; attempts: number; duplicates: number } {
    const by = (s: TaskStatus) => this.tasks.filter((t) => t.status === s).length;
    return {
      created: this.tasks.length,
      pending: by("pending"),
      dispatched: by("dispatched"),
      succeeded: by("succeeded"),
      failed: by("failed"),
      deleted: by("deleted"),
      attempts: this.dispatches.length,
      duplicates: this.rejectedDuplicates,
    };
  }

  /** The claims a dispatch of `task` would carry. */
  claimsFor(serviceAccountEmail: string, audience: string): IdTokenClaims {
    const now = Math.floor(Date.now() / 1000);
    const sub = BigInt(`0x${createHash("sha256").update(serviceAccountEmail).digest("hex").slice(0, 16)}`).toString().padStart(21, "1");
    return {
      aud: audience,
      azp: sub,
      email: serviceAccountEmail,
      email_verified: true,
      exp: now + 3600,
      iat: now,
      iss: "https://accounts.google.com",
      sub,
    };
  }

  /**
   * A Google-style ID token: RS256 with the published key unless `foreignKey`.
   * Claims default to those of a dispatch for sa@kumo-test.iam.gserviceaccount.com
   * and audience "http://127.0.0.1/"; override any (e.g. `{ exp: past }`).
   */
  signToken(claims: Partial<IdTokenClaims> = {}, options: SignOptions = {}): string {
    const base = this.claimsFor(claims.email ?? "sa@kumo-test.iam.gserviceaccount.com", claims.aud ?? "http://127.0.0.1/");
    const header = { alg: options.alg ?? "RS256", kid: options.kid ?? this.kid, typ: "JWT" };
    const signed = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify({ ...base, ...claims }))}`;
    const key = options.foreignKey ? (this.foreign ??= generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey) : this.privateKey;
    const signature = createSign("RSA-SHA256").update(signed).sign(key);
    return `${signed}.${base64url(signature)}`;
  }

  /** Forget all tasks, dispatches, calls and faults (in-flight dispatches are abandoned). */
  reset(): void {
    for (const r of this.inFlightRequests) r.destroy(new Error("reset"));
    this.inFlightRequests.clear();
    this.tasks.length = 0;
    this.dispatches.length = 0;
    this.calls.length = 0;
    this.faults.length = 0;
    this.byName.clear();
    this.remembered.clear();
    this.inFlight = 0;
    this.rejectedDuplicates = 0;
    this.tokens = this.options.maxBurstSize;
    this.refilledAt = performance.now();
    this.pump();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    for (const r of this.inFlightRequests) r.destroy(new Error("queue closed"));
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    for (const w of this.waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(new Error("FakeCloudTasks closed"));
    }
    // Idle keep-alive connections are ended, not reset: a client's pooled socket that is reset errors with nobody listening.
    this.server.closeIdleConnections();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    const cut = setTimeout(() => this.server.closeAllConnections(), 1_000);
    await closed;
    clearTimeout(cut);
  }

  // ---- API ----

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const start = performance.now();
    const [rawPath = "/", query = ""] = (req.url ?? "/").split("?");
    const path = decodeURIComponent(rawPath);
    const method = req.method ?? "GET";
    if (method === "GET" && path === "/oauth2/v1/certs") {
      return this.send(res, start, { endpoint: "certs", status: 200, body: { [this.kid]: this.publicKeyPem }, headers: { "cache-control": "public, max-age=300" } }, 0);
    }
    if (method === "GET" && path === "/oauth2/v3/certs") {
      const jwk = this.publicKey.export({ format: "jwk" });
      return this.send(res, start, { endpoint: "certs", status: 200, body: { keys: [{ ...jwk, kid: this.kid, alg: "RS256", use: "sig" }] }, headers: { "cache-control": "public, max-age=300" } }, 0);
    }
    if (this._unreachable || this.closed) {
      req.socket.destroy();
      return;
    }
    const enumsAsInt = decodeURIComponent(query).includes("enum-encoding=int");
    let answer: ApiAnswer;
    try {
      answer = this.route(method, path, Buffer.concat(chunks), enumsAsInt);
    } catch (error) {
      answer = apiError("fake-error", 500, String(error));
    }
    await this.send(res, start, answer, answer.endpoint === "createTask" || answer.endpoint === "getTask" || answer.endpoint === "deleteTask" ? this.options.latencyMs : 0);
  }

  private async send(res: ServerResponse, start: number, answer: ApiAnswer, wait: number): Promise<void> {
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    if (res.destroyed) return;
    res.writeHead(answer.status, { "content-type": "application/json; charset=UTF-8", ...answer.headers });
    res.end(JSON.stringify(answer.body));
    this.calls.push({ endpoint: answer.endpoint, start, end: performance.now(), status: answer.status });
  }

  private route(method: string, path: string, body: Buffer, enumsAsInt: boolean): ApiAnswer {
    let m: RegExpExecArray | null;
    const queueRe = "projects/[^/]+/locations/[^/]+/queues/[^/:]+";
    if (method === "POST" && (m = new RegExp(`^/v2/(${queueRe})/tasks$`).exec(path))) {
      return this.takeFault("createTask") ?? this.createTask(m[1]!, body, enumsAsInt);
    }
    if ((m = new RegExp(`^/v2/((${queueRe})/tasks/[^/:]+)$`).exec(path)) && (method === "GET" || method === "DELETE")) {
      const endpoint = method === "GET" ? "getTask" : "deleteTask";
      const fault = this.takeFault(endpoint);
      if (fault) return fault;
      if (this.options.queue !== undefined && m[2] !== this.options.queue) return apiError(endpoint, 404, `Queue ${m[2]} does not exist.`);
      const task = this.byName.get(m[1]!);
      if (!task || task.status === "deleted" || task.status === "succeeded" || task.status === "failed") {
        return apiError(endpoint, 404, "The task no longer exists, though a task with this name existed recently. The task either successfully completed or was deleted.");
      }
      if (method === "GET") return { endpoint, status: 200, body: this.describe(task, enumsAsInt) };
      task.status = "deleted";
      this.remembered.set(task.name, performance.now() + this.options.forgetAfterMs);
      this.changed();
      return { endpoint, status: 200, body: {} };
    }
    return apiError(`other ${method} ${path}`, 404, "Not Found (cloud tasks fake)");
  }

  private takeFault(endpoint: string): ApiAnswer | undefined {
    const fault = this.faults.shift();
    return fault ? apiError(endpoint, fault.status, fault.message) : undefined;
  }

  private createTask(queue: string, raw: Buffer, enumsAsInt: boolean): ApiAnswer {
    const endpoint = "createTask";
    if (this.options.queue !== undefined && queue !== this.options.queue) return apiError(endpoint, 404, `Queue ${queue} does not exist.`);
    let request: CreateTaskBody;
    try {
      request = JSON.parse(raw.toString("utf8") || "{}") as CreateTaskBody;
    } catch {
      return apiError(endpoint, 400, "Invalid JSON payload received.");
    }
    const t = request.task ?? {};
    if (t.appEngineHttpRequest) return apiError(endpoint, 400, "App Engine tasks are not supported by this fake.");
    const http = t.httpRequest;
    if (!http?.url || !/^https?:\/\//.test(http.url)) return apiError(endpoint, 400, "HttpRequest.url must be an absolute http(s) URL.");
    let name = t.name;
    if (name) {
      const id = name.startsWith(`${queue}/tasks/`) ? name.slice(queue.length + 7) : undefined;
      if (id === undefined) return apiError(endpoint, 400, `Task name ${name} is not in queue ${queue}.`);
      if (!/^[A-Za-z0-9_-]{1,500}$/.test(id)) return apiError(endpoint, 400, `Invalid task ID ${id}: [A-Za-z0-9_-]{1,500} expected.`);
    } else {
      name = `${queue}/tasks/${generatedId()}`;
    }
    const now = performance.now();
    const until = this.remembered.get(name);
    if (until !== undefined && until > now) {
      this.rejectedDuplicates++;
      return apiError(endpoint, 409, "Requested entity already exists");
    }
    const methodName = typeof http.httpMethod === "number" ? HTTP_METHODS[http.httpMethod] : http.httpMethod;
    if (!methodName || !(HTTP_METHODS as readonly string[]).includes(methodName)) return apiError(endpoint, 400, `Invalid httpMethod ${String(http.httpMethod)}.`);
    const scheduleAt = t.scheduleTime ? Date.parse(t.scheduleTime) : Date.now();
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(http.headers ?? {})) {
      if (!RESERVED_HEADER.test(k) && !(http.oidcToken && /^authorization$/i.test(k))) headers[k] = v;
    }
    const oidc = http.oidcToken;
    if (oidc && !oidc.serviceAccountEmail) return apiError(endpoint, 400, "OidcToken.service_account_email is required.");
    const task: FakeTask = {
      name,
      id: name.slice(queue.length + 7),
      queue,
      url: http.url,
      method: methodName,
      headers,
      body: Buffer.from(http.body ?? "", "base64"),
      oidcToken: oidc ? { serviceAccountEmail: oidc.serviceAccountEmail!, audience: oidc.audience || http.url } : undefined,
      dispatchDeadlineMs: parseDuration(t.dispatchDeadline) ?? this.options.defaultDispatchDeadlineMs,
      createTime: new Date(),
      scheduleTime: new Date(Number.isNaN(scheduleAt) ? Date.now() : scheduleAt),
      attempts: 0,
      responses: 0,
      lastStatus: undefined,
      status: "pending",
      nextAttemptAt: now + Math.max(0, (Number.isNaN(scheduleAt) ? Date.now() : scheduleAt) - Date.now()),
      seq: this.seq++,
    };
    this.tasks.push(task);
    this.byName.set(name, task);
    this.remembered.set(name, Infinity);
    this.pump();
    return { endpoint, status: 200, body: this.describe(task, enumsAsInt) };
  }

  /** The Task as the REST API answers it (BASIC view: no body). */
  private describe(task: FakeTask, enumsAsInt: boolean): Record<string, unknown> {
    const method = enumsAsInt ? HTTP_METHODS.indexOf(task.method as (typeof HTTP_METHODS)[number], 1) : task.method;
    return {
      name: task.name,
      httpRequest: {
        url: task.url,
        httpMethod: method,
        headers: task.headers,
        ...(task.oidcToken ? { oidcToken: task.oidcToken } : {}),
      },
      scheduleTime: task.scheduleTime.toISOString(),
      createTime: task.createTime.toISOString(),
      dispatchDeadline: `${task.dispatchDeadlineMs / 1000}s`,
      dispatchCount: task.attempts,
      responseCount: task.responses,
      view: enumsAsInt ? 1 : "BASIC",
    };
  }

  // ---- Dispatch ----

  private refill(now: number): void {
    const { maxDispatchesPerSecond: rate, maxBurstSize: burst } = this.options;
    this.tokens = Math.min(burst, this.tokens + ((now - this.refilledAt) / 1000) * rate);
    this.refilledAt = now;
  }

  /** Start every attempt the queue allows now, and wake up when the next one may start. */
  private pump(): void {
    if (this.closed) return;
    const now = performance.now();
    this.refill(now);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.options.paused) return;
    const waiting = this.tasks.filter((t) => t.status === "pending").sort((a, b) => a.nextAttemptAt - b.nextAttemptAt || a.seq - b.seq);
    let next = Infinity;
    for (const task of waiting) {
      if (task.nextAttemptAt > now) {
        next = Math.min(next, task.nextAttemptAt);
        break;
      }
      if (this.inFlight >= this.options.maxConcurrentDispatches) break; // an attempt ending pumps again
      if (this.tokens < 1) {
        const rate = this.options.maxDispatchesPerSecond;
        if (rate > 0) next = Math.min(next, now + ((1 - this.tokens) / rate) * 1000);
        break;
      }
      this.tokens -= 1;
      this.start(task);
    }
    if (next < Infinity) {
      this.timer = setTimeout(() => this.pump(), Math.max(1, Math.ceil(next - now)));
    }
  }

  private start(task: FakeTask): void {
    task.status = "dispatched";
    task.attempts++;
    task.scheduleTime = new Date();
    this.inFlight++;
    const attempt = task.attempts;
    const url = new URL(task.url);
    const headers: Record<string, string> = {
      ...task.headers,
      "User-Agent": "Google-Cloud-Tasks",
      "X-CloudTasks-QueueName": task.queue.split("/").pop()!,
      "X-CloudTasks-TaskName": task.id,
      "X-CloudTasks-TaskRetryCount": String(attempt - 1),
      "X-CloudTasks-TaskExecutionCount": String(this.dispatchesOf(task.name).filter((d) => d.status !== undefined && d.status < 500).length),
      "X-CloudTasks-TaskETA": (task.scheduleTime.getTime() / 1000).toFixed(6),
      "Content-Length": String(task.body.length),
    };
    if (task.lastStatus !== undefined) headers["X-CloudTasks-TaskPreviousResponse"] = String(task.lastStatus);
    if (task.body.length > 0 && !Object.keys(task.headers).some((k) => k.toLowerCase() === "content-type")) headers["Content-Type"] = "application/octet-stream";
    if (task.oidcToken) headers.Authorization = `Bearer ${this.signToken(this.claimsFor(task.oidcToken.serviceAccountEmail, task.oidcToken.audience))}`;
    const started = performance.now();
    let finished = false;
    const finish = (status: number | undefined, error?: string, retryAfterMs?: number) => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      this.inFlightRequests.delete(req);
      this.settle(task, { task: task.name, attempt, start: started, end: performance.now(), status, ...(error ? { error } : {}), ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) });
    };
    const send = url.protocol === "https:" ? httpsRequest : httpRequest;
    const req = send(url, { method: task.method, headers, agent: url.protocol === "https:" ? this.httpsAgent : this.httpAgent }, (res) => {
      res.on("data", () => undefined);
      res.on("error", (e) => finish(undefined, String(e)));
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        finish(status, undefined, status === 429 || status === 503 ? parseRetryAfter(res.headers["retry-after"]) : undefined);
      });
    });
    this.inFlightRequests.add(req);
    const deadline = setTimeout(() => req.destroy(new Error(`dispatch deadline ${task.dispatchDeadlineMs} ms exceeded`)), task.dispatchDeadlineMs);
    req.on("error", (e) => finish(undefined, e.message));
    req.end(task.method === "GET" || task.method === "HEAD" ? undefined : task.body);
  }

  private settle(task: FakeTask, dispatch: Dispatch): void {
    if (this.closed || !this.byName.has(task.name) || this.byName.get(task.name) !== task) return; // reset or closed meanwhile
    this.inFlight--;
    this.dispatches.push(dispatch);
    if (dispatch.status !== undefined) {
      task.responses++;
      task.lastStatus = dispatch.status;
    }
    const now = performance.now();
    if (task.status === "deleted") {
      // deleted while in flight: nothing more to do
    } else if (dispatch.status !== undefined && dispatch.status >= 200 && dispatch.status < 300) {
      task.status = "succeeded";
      this.remembered.set(task.name, now + this.options.forgetAfterMs);
    } else if (this.options.maxAttempts !== -1 && task.attempts >= this.options.maxAttempts) {
      task.status = "failed";
      this.remembered.set(task.name, now + this.options.forgetAfterMs);
    } else {
      const wait = Math.max(this.backoff(task.attempts), dispatch.retryAfterMs ?? 0);
      task.status = "pending";
      task.nextAttemptAt = now + wait;
      task.scheduleTime = new Date(Date.now() + wait);
    }
    this.pump();
    this.changed();
  }

  /** Wait before the retry that follows `failures` failed attempts: doubling maxDoublings times, then linear, capped. */
  private backoff(failures: number): number {
    const { minBackoffMs: min, maxBackoffMs: max, maxDoublings: doublings } = this.options;
    const k = failures - 1;
    const wait = k <= doublings ? min * 2 ** k : min * 2 ** doublings * (1 + k - doublings);
    return Math.min(max, wait);
  }

  private isSettled(): boolean {
    return !this.tasks.some((t) => t.status === "pending" || t.status === "dispatched");
  }

  private changed(): void {
    if (!this.isSettled()) return;
    for (const w of this.waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.resolve();
    }
  }
}

function defaultBurst(rate: number): number {
  return Number.isFinite(rate) ? Math.max(1, Math.ceil(rate)) : Number.MAX_SAFE_INTEGER;
}

/** Cloud Tasks names unnamed tasks with a long decimal number. */
function generatedId(): string {
  let id = String(randomInt(1, 10));
  for (let i = 0; i < 19; i++) id += String(randomInt(0, 10));
  return id;
}
