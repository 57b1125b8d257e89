// Starts and stops the real Firestore emulator for tests and the benchmark.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createServer } from "node:net";

const BUNDLED = "/usr/lib/google-cloud-sdk/platform/cloud-firestore-emulator/cloud_firestore_emulator";

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on("error", reject);
  });
}

/**
 * Resolves to {host, port, stop(), exportTo(dir)} once the emulator answers.
 * `importData` (an export's .overall_export_metadata file) starts it with that data.
 */
export async function startFirestoreEmulator({ timeoutMs = 60_000, port: wanted, importData } = {}) {
  const port = wanted ?? (await freePort());
  const host = `127.0.0.1:${port}`;
  const bin = process.env.FIRESTORE_EMULATOR_BIN ?? (existsSync(BUNDLED) ? BUNDLED : undefined);
  const extra = importData ? [`--import-data=${importData}`] : [];
  const [cmd, args] = bin
    ? [bin, ["start", "--host=127.0.0.1", `--port=${port}`, ...extra]]
    : ["gcloud", ["emulators", "firestore", "start", `--host-port=${host}`, "--quiet", ...extra]];
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => child.on("exit", resolve));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`Firestore emulator exited (${child.exitCode}):\n${output}`);
    try {
      const res = await fetch(`http://${host}/`);
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      process.kill(-child.pid, "SIGKILL");
      throw new Error(`Firestore emulator did not answer on ${host} within ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    port,
    /** Exports a project's data; returns the metadata file to import it from. */
    async exportTo(dir, projectId) {
      const res = await fetch(`http://${host}/emulator/v1/projects/${projectId}:export`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ database: `projects/${projectId}/databases/(default)`, export_directory: dir }),
      });
      if (!res.ok) throw new Error(`emulator export failed: ${res.status} ${await res.text()}`);
      const { readdirSync } = await import("node:fs");
      const sub = readdirSync(dir).find((d) => d.startsWith("firestore_export"));
      return `${dir}/${sub}/${sub}.overall_export_metadata`;
    },
    async stop() {
      if (child.exitCode !== null) return;
      // The emulator is a Java process under a wrapper script: end the whole group.
      process.kill(-child.pid, "SIGTERM");
      const timer = setTimeout(() => child.exitCode === null && process.kill(-child.pid, "SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
      // The JVM may still answer while it shuts down: wait until the port is closed.
      for (let i = 0; i < 100; i++) {
        try {
          await fetch(`http://${host}/`);
          await new Promise((r) => setTimeout(r, 100));
        } catch {
          break;
        }
      }
    },
  };
}
