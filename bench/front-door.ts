// Issue 10's figures: N large bodies with a wrong signature sent at once to one
// server process (declared Content-Length, as curl and fetch send them), then one
// signed webhook. Prints the answers, the time, the process's memory and the log
// volume. `npm run build && node dist/bench/front-door.js [--server=path/to/server.js] [--bodies=12] [--mib=32]`
import { randomUUID } from "node:crypto";
import { request } from "node:http";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { killAllChildren } from "./app-process.js";
import { delivery, newJobId, send } from "./load.js";
import { WEBHOOK_SECRET, World } from "./world.js";

const { values: args } = parseArgs({ options: { server: { type: "string" }, bodies: { type: "string", default: "12" }, mib: { type: "string", default: "32" } } });
const bodies = Number(args.bodies);
const size = Number(args.mib) * 1024 * 1024;
process.env.METADATA_SERVER_DETECTION ??= "none";

function postUnsigned(port: number, expectContinue: boolean): Promise<{ status: number | string; ms: number }> {
  const started = Date.now();
  return new Promise((done) => {
    let settled = false;
    const finish = (status: number | string) => !settled && ((settled = true), done({ status, ms: Date.now() - started }));
    const req = request({
      host: "127.0.0.1",
      port,
      method: "POST",
      path: "/api/github/webhooks",
      headers: { "content-type": "application/json", "content-length": String(size), "x-github-event": "workflow_job", "x-github-delivery": randomUUID(), "x-hub-signature-256": `sha256=${"0".repeat(64)}`, ...(expectContinue ? { expect: "100-continue" } : {}) },
    });
    req.on("response", (res) => (res.resume(), finish(res.statusCode ?? 0)));
    req.on("error", (e) => finish((e as NodeJS.ErrnoException).code ?? "error"));
    const chunk = Buffer.alloc(1024 * 1024, "x");
    let sent = 0;
    const pump = () => {
      while (sent < size && !settled) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      req.end();
    };
    if (expectContinue) {
      req.flushHeaders();
      req.once("continue", pump);
    } else pump();
  });
}

const world = await World.start(args.server ? resolve(args.server) : undefined);
try {
  const app = await world.startApp(world.kumoServer, `kumo-bench-door-${randomUUID().slice(0, 8)}`, { LOG_LEVEL: "info", LOG_FORMAT: "json" });
  let logBytes = 0;
  let longest = 0;
  const count = (chunk: Buffer) => {
    logBytes += chunk.length;
    for (const line of chunk.toString("utf8").split("\n")) longest = Math.max(longest, line.length);
  };
  app.child.stdout!.on("data", count);
  app.child.stderr!.on("data", count);
  await app.ready();
  const rssBefore = app.peakRssMiB();
  const logBefore = logBytes;
  const started = Date.now();
  const answers = await Promise.all(Array.from({ length: bodies }, () => postUnsigned(app.port, false)));
  const asked = await Promise.all(Array.from({ length: bodies }, () => postUnsigned(app.port, true)));
  const wall = Date.now() - started;
  const rssAfter = app.peakRssMiB();
  const logAfter = logBytes;
  const signed = await send(delivery(newJobId(), WEBHOOK_SECRET), app.port, false);
  await new Promise((r) => setTimeout(r, 500));
  const tally: Record<string, number> = {};
  for (const a of answers) tally[String(a.status)] = (tally[String(a.status)] ?? 0) + 1;
  console.log(`front door: ${bodies} × ${args.mib} MiB with a wrong signature at once, twice (sent at once, then with Expect: 100-continue), then one signed webhook (${world.kumoServer})`);
  console.log(`| figure | value |\n| --- | --- |`);
  const askedTally: Record<string, number> = {};
  for (const a of asked) askedTally[String(a.status)] = (askedTally[String(a.status)] ?? 0) + 1;
  // EPIPE/ECONNRESET: the client was still sending when the connection was cut (the answer was written).
  console.log(`| answers, body sent at once | ${JSON.stringify(tally)} |`);
  console.log(`| answers, with Expect: 100-continue (as curl sends large bodies) | ${JSON.stringify(askedTally)} |`);
  console.log(`| all answered in | ${wall} ms (slowest ${Math.max(...answers.map((a) => a.ms))} ms) |`);
  console.log(`| peak RSS before → after the bodies | ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MiB |`);
  console.log(`| log written for the bodies | ${((logAfter - logBefore) / 1024).toFixed(1)} KiB, longest line of the run ${longest} bytes |`);
  console.log(`| the signed webhook after | ${signed.status} in ${Math.round(signed.end - signed.start)} ms |`);
  await app.stop();
} finally {
  killAllChildren();
  await world.stop();
}
