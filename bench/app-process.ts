import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { performance } from "node:perf_hooks";
import { cpuMsOf, peakRssMiBOf } from "./proc.js";

/** Every child the bench started, so an error or Ctrl-C still ends them all. */
const children = new Set<ChildProcess>();

export function killAllChildren(): void {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/**
 * A server process (Kumo's dist/app/entry/server.js or the bare Probot app)
 * started with its own environment. Keeps a tally of the warn/error log lines
 * it writes (JSON, NODE_ENV=production) for the report.
 */
export class AppProcess {
  readonly child: ChildProcess;
  readonly spawnedAt = performance.now();
  readonly logTally = new Map<string, number>();
  private tail = "";

  constructor(
    readonly script: string,
    readonly port: number,
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, [script], { env, stdio: ["ignore", "pipe", "pipe"] });
    children.add(this.child);
    this.child.on("exit", () => children.delete(this.child));
    let pending = "";
    const onData = (chunk: Buffer) => {
      pending += chunk.toString("utf8");
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) this.record(line);
    };
    this.child.stdout!.on("data", onData);
    this.child.stderr!.on("data", onData);
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Peak resident set size so far (the kernel's high-water mark), MiB. */
  peakRssMiB(): number {
    return peakRssMiBOf(this.pid);
  }

  /** CPU time used so far (user + system), ms. */
  cpuMs(): number {
    return cpuMsOf(this.pid);
  }

  /** Resolves once GET /ping answers; fails with the process output if it exits or takes too long. */
  async ready(timeoutMs = 20_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (performance.now() < deadline) {
      if (this.child.exitCode !== null) throw new Error(`${this.script} exited (${this.child.exitCode}):\n${this.tail}`);
      try {
        const res = await fetch(`http://127.0.0.1:${this.port}/ping`);
        if (res.ok) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`${this.script} did not answer /ping within ${timeoutMs} ms:\n${this.tail}`);
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 3000);
    await exited;
    clearTimeout(timer);
  }

  output(): string {
    return this.tail;
  }

  private record(line: string): void {
    this.tail = (this.tail + line + "\n").slice(-8000);
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string };
      if ((entry.level ?? 0) < 40) return;
      // Group by message without ids so the tally stays short.
      const key = `${entry.level === 40 ? "warn" : "error"}: ${String(entry.msg).replace(/\d{3,}/g, "N").slice(0, 120)}`;
      this.logTally.set(key, (this.logTally.get(key) ?? 0) + 1);
    } catch {
      const key = `raw: ${line.slice(0, 120)}`;
      if (line.trim()) this.logTally.set(key, (this.logTally.get(key) ?? 0) + 1);
    }
  }
}
