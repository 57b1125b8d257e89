import type { ColdStartResult } from "./cold-start.js";
import { round } from "./metrics.js";
import type { ScenarioResult } from "./scenarios.js";

export interface Target {
  target: string;
  measured: string;
  met: boolean;
}

function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((r) => r.map((c) => (typeof c === "number" ? String(round(c)) : c)))];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: string[]) => `| ${r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(" | ")} |`;
  return [line(cells[0]!), `|${widths.map((w) => "-".repeat(w + 2)).join("|")}|`, ...cells.slice(1).map(line)].join("\n");
}

const perJob = (n: number | undefined, jobs: number) => (n ? round(n / jobs, 3) : 0);

export function targets(results: ScenarioResult[], cold: ColdStartResult | undefined): Target[] {
  const find = (name: string, pacer: string) => results.find((r) => r.scenario.name === name && r.scenario.pacer === pacer);
  const out: Target[] = [];
  const c50 = find("concurrency-50", "unpaced");
  if (c50) {
    const { overhead: o, overheadAppOnly: a } = c50;
    out.push({ target: "overhead p50 ≤ 15 ms at 50 concurrent (unpaced)", measured: `${round(o.p50)} ms`, met: o.p50 <= 15 });
    out.push({ target: "overhead p99 ≤ 60 ms at 50 concurrent (unpaced)", measured: `${round(o.p99)} ms`, met: o.p99 <= 60 });
    out.push({ target: "  the same without the Firestore emulator's time (app-only), p50 / p99", measured: `${round(a.p50)} / ${round(a.p99)} ms`, met: a.p50 <= 15 && a.p99 <= 60 });
  }
  const steady = find("steady", "unpaced");
  if (steady) {
    const { overhead: o } = steady;
    out.push({ target: `  for reference, at steady ${steady.concurrency} (about 2 in flight), p50 / p99`, measured: `${round(o.p50)} / ${round(o.p99)} ms`, met: o.p50 <= 15 && o.p99 <= 60 });
  }
  for (const r of results.filter((x) => x.scenario.name.startsWith("burst"))) {
    out.push({ target: `webhook p99 < 2 s, ${r.scenario.name} (${r.scenario.pacer})`, measured: `${round(r.latency.p99)} ms`, met: r.latency.p99 < 2000 });
  }
  for (const r of results.filter((x) => x.scenario.name === "steady")) {
    const nonJit = Object.entries(r.githubCalls).filter(([k]) => k !== "jit").reduce((n, [, v]) => n + v, 0);
    out.push({ target: `steady (${r.scenario.pacer}): 0 GitHub calls per job beyond JIT`, measured: `${nonJit} calls for ${r.outcome.jobs} jobs`, met: nonJit === 0 });
  }
  const bad = results.filter((r) => r.outcome.duplicates > 0 || r.outcome.unaccounted > 0 || (r.scenario.pacer === "unpaced" && r.outcome.runnersCreated !== r.outcome.jobs));
  out.push({
    target: "runners == jobs (unpaced) / runners + pending == jobs (github-limit), 0 duplicates, every scenario",
    measured: bad.length ? `failed: ${bad.map((r) => `${r.scenario.name}/${r.scenario.pacer}`).join(", ")}` : `${results.length} of ${results.length} scenarios`,
    met: bad.length === 0,
  });
  if (cold) {
    out.push({
      target: "cold start ≤ 1.5 × bare Probot (first webhook answered)",
      measured: `${cold.kumoMedian.firstAnswerMs} vs ${cold.bareMedian.firstAnswerMs} ms = ${cold.ratio}×`,
      met: cold.ratio <= 1.5,
    });
  }
  for (const r of results.filter((x) => x.scenario.name === "burst")) {
    const rss = Math.max(...r.peakRssMiB);
    out.push({ target: `peak RSS ≤ 256 MiB, burst (${r.scenario.pacer})`, measured: `${rss} MiB`, met: rss <= 256 });
  }
  return out;
}

export function render(results: ScenarioResult[], cold: ColdStartResult | undefined, latency: Record<string, number>, goals: Target[]): string {
  const parts: string[] = [];
  parts.push(`Fake latencies (ms): ${Object.entries(latency).map(([k, v]) => `${k} ${v}`).join(", ")}; critical path of a launched job = jit + runJob.`);
  parts.push(
    "\nWebhook latency (ms, answered deliveries) and the app's peak RSS\n" +
      table(
        ["scenario", "pacer", "inst", "deliv", "jobs", "sending", "wall s", "settle s", "answers", "p50", "p95", "p99", "max", "RSS MiB"],
        results.map((r) => [
          r.scenario.name,
          r.scenario.pacer,
          r.scenario.instances,
          r.deliveries,
          r.outcome.jobs,
          r.concurrency,
          round(r.wallMs / 1000, 2),
          round(r.settleMs / 1000, 2),
          Object.entries(r.statuses).map(([k, v]) => `${k}×${v}`).join(" "),
          r.latency.p50,
          r.latency.p95,
          r.latency.p99,
          r.latency.max,
          r.peakRssMiB.join("+"),
        ]),
      ),
  );
  parts.push(
    "\nOverhead (ms). ovh = latency − fakes' configured latencies on the critical path (Firestore emulator time included);\n" +
      "app-only = ovh − Firestore emulator time on the critical path. CPU ms per delivery: app / emulator / bench; loop = bench event-loop delay p99.\n" +
      table(
        ["scenario", "pacer", "ovh p50", "ovh p95", "ovh p99", "ovh max", "app-only p50", "app-only p95", "app-only p99", "FS ms/job", "CPU app/emu/bench", "loop ms"],
        results.map((r) => {
          const fsMs = Object.values(r.firestoreRpcs).reduce((n, v) => n + v.ms, 0);
          return [
            r.scenario.name,
            r.scenario.pacer,
            r.overhead.p50,
            r.overhead.p95,
            r.overhead.p99,
            r.overhead.max,
            r.overheadAppOnly.p50,
            r.overheadAppOnly.p95,
            r.overheadAppOnly.p99,
            round(fsMs / r.outcome.jobs),
            `${r.cpuMsPerDelivery.app}/${r.cpuMsPerDelivery.emulator}/${r.cpuMsPerDelivery.bench}`,
            r.benchLoopDelayP99Ms,
          ];
        }),
      ),
  );
  parts.push(
    "\nUpstream calls per job (measured window, after warm-up)\n" +
      table(
        ["scenario", "pacer", "GH token", "GH settings", "GH groups", "GH jit", "GH delete", "GH other", "CR runJob", "FS RPCs", "FS by method", "GH non-JIT after 1st answer"],
        results.map((r) => {
          const jobs = r.outcome.jobs;
          const other = Object.entries(r.githubCalls).filter(([k]) => k.startsWith("other")).reduce((n, [, v]) => n + v, 0);
          const fsTotal = Object.values(r.firestoreRpcs).reduce((n, v) => n + v.calls, 0);
          const fsBy = Object.entries(r.firestoreRpcs)
            .sort((a, b) => b[1].calls - a[1].calls)
            .map(([k, v]) => `${k} ${perJob(v.calls, jobs)}`)
            .join(", ");
          return [
            r.scenario.name,
            r.scenario.pacer,
            perJob(r.githubCalls.token, jobs),
            perJob(r.githubCalls.settings, jobs),
            perJob(r.githubCalls.runnerGroups, jobs),
            perJob(r.githubCalls.jit, jobs),
            perJob(r.githubCalls.deleteRunner, jobs),
            perJob(other, jobs),
            perJob(r.cloudRunCalls.runJob, jobs),
            perJob(fsTotal, jobs),
            fsBy,
            r.githubNonJitAfterFirst,
          ];
        }),
      ),
  );
  parts.push(
    "\nRunners vs jobs (runners = Cloud Run executions; pending = no runner, left to reconcile, from Firestore)\n" +
      table(
        ["scenario", "pacer", "jobs", "runners", "pending", "lost", "dups", "JIT regs", "deleted", "orphan regs", "Firestore states", "ok"],
        results.map((r) => {
          const o = r.outcome;
          const ok = o.duplicates === 0 && o.unaccounted === 0 && o.orphanRegistrations === 0 && (r.scenario.pacer !== "unpaced" || o.runnersCreated === o.jobs);
          return [r.scenario.name, r.scenario.pacer, o.jobs, o.runnersCreated, o.pendingWithoutRunner, o.unaccounted, o.duplicates, o.registrations, o.registrationsDeleted, o.orphanRegistrations, Object.entries(o.states).map(([k, v]) => `${k} ${v}`).join(", "), ok ? "yes" : "NO"];
        }),
      ),
  );
  if (cold) {
    parts.push(
      `\nCold start (median of ${cold.runs}, fakes at 0 ms; spawn → listening, spawn → first webhook answered)\n` +
        table(
          ["app", "", "listening ms", "first answer ms", "peak RSS MiB"],
          [
            ["kumo", "", cold.kumoMedian.listenMs, cold.kumoMedian.firstAnswerMs, cold.kumoMedian.peakRssMiB],
            ["bare probot", "", cold.bareMedian.listenMs, cold.bareMedian.firstAnswerMs, cold.bareMedian.peakRssMiB],
            ["ratio", "", round(cold.kumoMedian.listenMs / cold.bareMedian.listenMs, 2), cold.ratio, round(cold.kumoMedian.peakRssMiB / cold.bareMedian.peakRssMiB, 2)],
          ],
        ),
    );
  }
  parts.push("\nTargets\n" + table(["target", "measured", "met"], goals.map((g) => [g.target, g.measured, g.met ? "yes" : "NO"])));
  return parts.join("\n");
}
