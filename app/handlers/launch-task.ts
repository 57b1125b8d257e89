import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger, Probot } from "probot";
import { z } from "zod";
import type { KumoDeps } from "../deps.js";
import { errorLine } from "../errors.js";
import { explainRecord } from "../explain/check-run.js";
import type { Octokit } from "../github/octokit.js";
import { launchWaitingAfter } from "../launch/capacity.js";
import { launchRunner } from "../launch/launch-runner.js";
import { launchWarmRunner } from "../launch/launch-warm.js";
import { TaskAuthError, TaskTokenVerifier } from "../launch-queue/cloud-tasks.js";

const Task = z.object({ jobId: z.number().int().positive(), attempt: z.number().int().positive() }).strict();
const WarmTask = z
  .object({
    warm: z
      .object({
        key: z.string().regex(/^[0-9a-f]{24}$/),
        id: z.string().regex(/^[0-9a-f]{8}$/),
        turn: z.number().int().positive(),
        org: z.string().min(1),
        installationId: z.number().int().positive(),
        target: z.object({
          labels: z.array(z.string()).min(1),
          group: z.string(),
          groupId: z.number().int().positive(),
          job: z.string().min(1),
          backend: z.literal("compute-engine").optional(),
          zones: z.array(z.string()).optional(),
          maxRunMinutes: z.number().int().positive().optional(),
        }),
      })
      .strict(),
  })
  .strict();
/** A task's body is `{"jobId":…,"attempt":…}` or a warm launch (a few hundred bytes). */
const MAX_BODY = 8192;

/**
 * The launch route (KUMO_TASKS_URL's path), where the launch queue's tasks
 * arrive: Cloud Tasks' OIDC token is checked, the claim is taken in a
 * transaction (a task delivered twice launches once), then the same launch as
 * inline. The answer tells Cloud Tasks what to do: 2xx done (launched, waiting,
 * failed for good, or nothing left to do), 429 with Retry-After when GitHub
 * asked to slow down, 503 for other failures that may pass. Undefined without a queue.
 */
export function launchTaskRoute(deps: KumoDeps, probot: Pick<Probot, "auth">, log: Logger) {
  const queue = deps.config.launchQueue;
  if (!queue) return undefined;
  const path = new URL(queue.url).pathname;
  const verifier = new TaskTokenVerifier(queue);
  return async (req: IncomingMessage, res: ServerResponse): Promise<boolean> => {
    if (req.method !== "POST" || (req.url ?? "").split("?")[0] !== path) return false;
    const task = String(req.headers["x-cloudtasks-taskname"] ?? "");
    const answer = (status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
      res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(body));
      return true;
    };
    try {
      await verifier.verify(req.headers.authorization);
    } catch (error) {
      if (!(error instanceof TaskAuthError)) throw error;
      log.warn({ task, status: error.status, reason: error.message }, "launch task refused");
      return answer(error.status, { error: error.message });
    }
    const body = await readJson(req);
    const warm = WarmTask.safeParse(body);
    if (warm.success) return answer(...(await warmLaunch(deps, probot, log.child({ task }), warm.data.warm)));
    const parsed = Task.safeParse(body);
    if (!parsed.success) return answer(400, { error: "expected {jobId, attempt} or {warm}" });
    const { jobId, attempt } = parsed.data;

    let claim;
    try {
      claim = await deps.store.takeTask(jobId, attempt);
    } catch (error) {
      if (/has no record/.test((error as Error).message)) return answer(200, { skipped: "no such job" });
      throw error;
    }
    if (!claim.claimed) {
      log.info({ jobId, attempt, task, state: claim.record.state, attempts: claim.record.attempts }, "launch task has nothing left to do");
      return answer(200, { skipped: claim.record.state });
    }
    const { record } = claim;
    const target = record.target!;
    const jobLog = log.child({ jobId, runId: record.runId, repo: record.repo, task });
    let octokit: Octokit;
    try {
      octokit = (await probot.auth(record.installationId)) as Octokit;
    } catch (error) {
      // Left pending, not taken: the queue's retry (or reconcile) takes it again.
      const reason = `installation token: ${errorLine(error, 200)}`;
      await deps.store.markNotLaunched(jobId, attempt, { state: "pending", reason });
      jobLog.error({ attempt, reason }, "runner not launched");
      return answer(503, { pending: reason });
    }
    const outcome = await launchRunner(deps, octokit, jobLog, { ...record, target }, { fromQueue: true });
    await launchWaitingAfter(deps, octokit, log, record, target, outcome);
    if (outcome.launched) return answer(200, { launched: outcome.runnerName });
    if (outcome.state === "failed") {
      await explainRecord(deps, octokit, jobLog, record, { kind: "launch-failed", reason: outcome.reason, final: true }, true);
      return answer(200, { failed: outcome.reason });
    }
    if (outcome.state !== "pending") return answer(200, { [outcome.state]: outcome.reason });
    // Cloud Tasks retries the task; meanwhile this budget is not spent.
    const retryAfterMs = (await deps.store.get(jobId))?.leaseUntil?.getTime();
    const seconds = retryAfterMs ? Math.max(1, Math.ceil((retryAfterMs - Date.now()) / 1000)) : undefined;
    return seconds ? answer(429, { pending: outcome.reason }, { "retry-after": String(seconds) }) : answer(503, { pending: outcome.reason });
  };
}

/** A warm pool's launch task: made once, and only while the pool still counts it (a later pass may have dropped it). */
async function warmLaunch(
  deps: KumoDeps,
  probot: Pick<Probot, "auth">,
  log: Logger,
  task: z.infer<typeof WarmTask>["warm"],
): Promise<[number, Record<string, unknown>]> {
  // Taken in a transaction: a task delivered twice launches once.
  if (!(await deps.store.takeWarmLaunch(task.key, task.id))) return [200, { skipped: "warm launch taken or dropped" }];
  let octokit: Octokit;
  try {
    octokit = (await probot.auth(task.installationId)) as Octokit;
  } catch (error) {
    // Dropped: the next reconcile pass decides again.
    await deps.store.dropWarmLaunch(task.key, task.id);
    return [200, { failed: `installation token: ${errorLine(error, 200)}` }];
  }
  const outcome = await launchWarmRunner(deps, octokit, log.child({ org: task.org }), { key: task.key, id: task.id, turn: task.turn, org: task.org }, task.target);
  // A failed warm launch is forgotten; the next reconcile pass tops the pool up, so no queue retry.
  return outcome.launched ? [200, { launched: outcome.runnerName }] : [200, { failed: outcome.reason }];
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) return undefined;
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    return undefined;
  }
}
