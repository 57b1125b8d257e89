import { spawn, type ChildProcess } from "node:child_process";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Firestore } from "@google-cloud/firestore";
import { FakeCloudRun } from "../../bench/fakes/cloud-run.js";
import { BENCH_APP_ID, BENCH_ORG, BENCH_REPO, FakeGitHub, signWebhook } from "../../bench/fakes/github.js";
import { workflowJobPayload } from "./fixtures.js";

// Kumo's entry points run as the processes they are deployed as: spawned with an
// environment of their own, against the Firestore emulator and HTTP stand-ins
// for GitHub and Cloud Run (bench/fakes), which a child process can reach and nock cannot.

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const WEBHOOK_SECRET = "kumo-processes-secret";
export const PRIVATE_KEY = generateKeyPairSync("rsa", {
  modulusLength: 2048,
  privateKeyEncoding: { type: "pkcs8", format: "pem" },
  publicKeyEncoding: { type: "spki", format: "pem" },
}).privateKey;

export interface StandIns {
  github: FakeGitHub;
  cloudRun: FakeCloudRun;
  close(): Promise<void>;
}

export async function startStandIns(): Promise<StandIns> {
  const [github, cloudRun] = await Promise.all([new FakeGitHub().listen(), new FakeCloudRun().listen()]);
  return {
    github,
    cloudRun,
    async close() {
      await github.settled();
      await Promise.allSettled([github.close(), cloudRun.close()]);
    },
  };
}

/** A Firestore project of its own: tests never see each other's records. */
export function uniqueProject(): string {
  return `kumo-proc-${randomUUID().slice(0, 8)}`;
}

// The bench's: one way to find a free port on 127.0.0.1.
export { freePort } from "../../bench/app-process.js";

/**
 * Exactly the environment a deployment gives the app, pointed at the stand-ins
 * and the emulator. `extra` adds or overrides; an undefined value removes a variable.
 */
export function processEnv(
  standIns: Pick<StandIns, "github" | "cloudRun">,
  options: { project: string; port: number; extra?: Record<string, string | undefined> },
): Record<string, string> {
  const emulator = process.env.FIRESTORE_EMULATOR_HOST;
  if (!emulator) throw new Error("FIRESTORE_EMULATOR_HOST is not set: run the tests through jest's global setup");
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    APP_ID: String(BENCH_APP_ID),
    PRIVATE_KEY,
    WEBHOOK_SECRET,
    GHE_HOST: `127.0.0.1:${standIns.github.port}`,
    GHE_PROTOCOL: "http",
    GOOGLE_CLOUD_PROJECT: options.project,
    CLOUD_RUN_REGION: "us-central1",
    CLOUD_RUN_API_ENDPOINT: `http://127.0.0.1:${standIns.cloudRun.port}`,
    FIRESTORE_EMULATOR_HOST: emulator,
    // No GCE metadata server here: Google's clients must not wait for one.
    METADATA_SERVER_DETECTION: "none",
    NODE_ENV: "production",
    HOST: "127.0.0.1",
    PORT: String(options.port),
    LOG_FORMAT: "json",
    LOG_LEVEL: "info",
    ...options.extra,
  };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/**
 * The command of an npm script from package.json, which must be `node <file> [args…]`:
 * the tests run what `npm start` / `npm run reconcile` run, so a script pointing
 * to a missing or broken file fails them.
 */
export function npmScript(name: string): { file: string; args: string[] } {
  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts?: Record<string, string> };
  const script = pkg.scripts?.[name];
  if (!script) throw new Error(`package.json has no script "${name}"`);
  const [command, file, ...args] = script.trim().split(/\s+/);
  if (command !== "node" || !file) throw new Error(`script "${name}" is not "node <file> …": ${script}`);
  if (!existsSync(join(ROOT, file))) throw new Error(`script "${name}" runs ${file}, which does not exist (npm run build?)`);
  return { file, args };
}

export interface Line {
  stream: "stdout" | "stderr";
  text: string;
}

/** Every child this file started, so afterAll can end them all. */
const children = new Set<Proc>();

/** A child process with its output collected line by line. */
export class Proc {
  readonly child: ChildProcess;
  readonly lines: Line[] = [];
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(
    readonly name: string,
    file: string,
    args: string[],
    readonly env: Record<string, string>,
    cwd = ROOT,
  ) {
    this.child = spawn(process.execPath, [file, ...args], { cwd, env, stdio: ["ignore", "pipe", "pipe"] });
    children.add(this);
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        children.delete(this);
        resolve({ code, signal });
      });
      // A spawn failure emits error and no exit.
      this.child.once("error", () => {
        children.delete(this);
        resolve({ code: null, signal: null });
      });
    });
    for (const stream of ["stdout", "stderr"] as const) {
      let pending = "";
      const source = this.child[stream]!;
      source.setEncoding("utf8");
      source.on("data", (chunk: string) => {
        pending += chunk;
        const lines = pending.split("\n");
        pending = lines.pop() ?? "";
        for (const text of lines) if (text.trim()) this.lines.push({ stream, text });
      });
      source.on("end", () => {
        if (pending.trim()) this.lines.push({ stream, text: pending });
        pending = "";
      });
    }
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The last lines it wrote, for failure messages. */
  output(last = 60): string {
    return this.lines
      .slice(-last)
      .map((l) => `[${this.name} ${l.stream}] ${l.text}`)
      .join("\n");
  }

  /** Lines that parse as a JSON object, parsed. */
  logEntries(stream?: Line["stream"]): Array<Record<string, any>> {
    return this.lines.filter((l) => !stream || l.stream === stream).flatMap((l) => {
      const entry = parseObject(l.text);
      return entry ? [entry] : [];
    });
  }

  /** Polls `url` (on 127.0.0.1:port) until it answers `ok(status)`; fails with the output if the process exits first. */
  async waitForHttp(port: number, path = "/ping", options: { timeoutMs?: number; ok?: (status: number) => boolean } = {}): Promise<void> {
    const ok = options.ok ?? ((s) => s === 200);
    const timeoutMs = options.timeoutMs ?? 20_000;
    const deadline = Date.now() + timeoutMs;
    let last = "no answer";
    while (Date.now() < deadline) {
      if (!this.running) throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before answering ${path}:\n${this.output()}`);
      try {
        const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(2_000) });
        await res.arrayBuffer();
        if (ok(res.status)) return;
        last = `HTTP ${res.status}`;
      } catch (error) {
        last = (error as Error).message;
      }
      await sleep(50);
    }
    throw new Error(`${this.name} did not answer ${path} within ${timeoutMs} ms (${last}):\n${this.output()}`);
  }

  /** Its exit; after `timeoutMs` it is killed (SIGKILL) and this fails with its output. */
  async waitForExit(timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
    const result = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (result === "timeout") {
      this.child.kill("SIGKILL");
      await this.exited;
      throw new Error(`${this.name} did not exit within ${timeoutMs} ms; killed:\n${this.output()}`);
    }
    // Let the last chunks of its pipes arrive.
    await Promise.all([once(this.child.stdout), once(this.child.stderr)]);
    return result;
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): void {
    if (this.running) this.child.kill(signal);
  }

  /** Ends it: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!this.running) return;
    this.kill("SIGTERM");
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

function once(stream: NodeJS.ReadableStream | null | undefined): Promise<void> {
  if (!stream || (stream as { readableEnded?: boolean }).readableEnded || (stream as { destroyed?: boolean }).destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    stream.once("end", resolve);
    stream.once("close", resolve);
  });
}

/** `npm start` or `npm run reconcile`: the script's file, run by this Node. */
export function startScript(script: "start" | "reconcile", env: Record<string, string>): Proc {
  const { file, args } = npmScript(script);
  return new Proc(script, file, args, env);
}

/**
 * The Cloud Run functions entry loaded as a source deployment loads it: the
 * functions framework's own binary in the project root, which loads package.json's `main`.
 */
export function startFunction(env: Record<string, string>, port: number, target = "kumo"): Proc {
  const pkgDir = join(ROOT, "node_modules/@google-cloud/functions-framework");
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8")) as { bin: Record<string, string> };
  const bin = join(pkgDir, pkg.bin["functions-framework"]!);
  return new Proc("function", bin, [`--target=${target}`, `--port=${port}`], { ...env, FUNCTION_TARGET: target, K_SERVICE: target, PORT: String(port) });
}

/** Ends every child still running (afterAll). */
export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => c.stop(2_000)));
}

// Whatever happens to the test run, no child outlives it.
process.once("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` until it returns something truthy; fails after `timeoutMs` saying `what`. */
export async function waitFor<T>(what: string, condition: () => T | Promise<T>, timeoutMs = 10_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await condition();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A real workflow_job payload (@octokit/webhooks-examples) for the stand-in's org and repository. */
export function benchJobPayload(action: "queued" | "in_progress" | "completed", jobId: number) {
  return workflowJobPayload(action, { id: jobId, labels: ["kumo", "small"], org: BENCH_ORG, repo: BENCH_REPO });
}

/** POSTs a webhook signed like GitHub's; resolves to the status and answer. */
export async function postWebhook(
  url: string,
  event: string,
  payload: unknown,
  options: { secret?: string; guid?: string; timeoutMs?: number } = {},
): Promise<{ status: number; text: string; guid: string }> {
  const body = JSON.stringify(payload);
  const guid = options.guid ?? randomUUID();
  const res = await fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "user-agent": "GitHub-Hookshot/test",
      "x-github-event": event,
      "x-github-delivery": guid,
      "x-hub-signature-256": signWebhook(body, options.secret ?? WEBHOOK_SECRET),
    },
    body,
    signal: AbortSignal.timeout(options.timeoutMs ?? 15_000),
  });
  return { status: res.status, text: await res.text(), guid };
}

const firestores = new Map<string, Firestore>();

/** The record `kumo-jobs/<job id>` of a project, as plain data (Timestamps as they come). */
export async function readJob(project: string, jobId: number): Promise<Record<string, any> | undefined> {
  let db = firestores.get(project);
  if (!db) firestores.set(project, (db = new Firestore({ projectId: project })));
  return (await db.collection("kumo-jobs").doc(String(jobId)).get()).data();
}

/** Changes fields of `kumo-jobs/<job id>` behind the app's back (e.g. to age a record past a grace period). */
export async function updateJob(project: string, jobId: number, fields: Record<string, unknown>): Promise<void> {
  let db = firestores.get(project);
  if (!db) firestores.set(project, (db = new Firestore({ projectId: project })));
  await db.collection("kumo-jobs").doc(String(jobId)).update(fields);
}

export async function closeFirestores(): Promise<void> {
  await Promise.allSettled([...firestores.values()].map((db) => db.terminate()));
  firestores.clear();
}

function parseObject(text: string): Record<string, any> | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, any>) : undefined;
  } catch {
    return undefined;
  }
}

const SEVERITIES = ["DEFAULT", "DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL", "ALERT", "EMERGENCY"];

/** Lines that are not Cloud Logging structured JSON (an object with a known `severity` and a string `message`). */
export function notCloudLogging(lines: Line[]): string[] {
  return lines
    .filter((l) => {
      const entry = parseObject(l.text);
      return !entry || !SEVERITIES.includes(entry.severity as string) || typeof entry.message !== "string";
    })
    .map((l) => `${l.stream}: ${l.text}`);
}
