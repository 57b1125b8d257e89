import { firestoreWhere } from "../config.js";
import { ConfigError, errorLine, firstLine } from "../errors.js";
import type { ReconcileContext } from "./context.js";

/**
 * Before a pass: GitHub accepts the app's credentials and Firestore answers.
 * Without either the pass can repair nothing, so it stops with one line that
 * says what to fix rather than a failure in every step.
 */
export async function preflight(ctx: ReconcileContext, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const [github, firestore] = await Promise.allSettled([ctx.appOctokit.rest.apps.getAuthenticated(), ctx.deps.store.getMark("deliveries")]);
  if (github.status === "rejected") {
    const e = github.reason as { status?: number; message?: string };
    const why = firstLine(e.message ?? "unknown error");
    if (e.status === 401 || e.status === 403 || e.status === undefined && /key|jwt|pem|decoder/i.test(why)) {
      throw new ConfigError(`GitHub refused the app's credentials (${e.status ? `HTTP ${e.status}: ` : ""}${why}): check APP_ID and PRIVATE_KEY`, { cause: e });
    }
    throw new ConfigError(`GitHub API did not answer (${e.status ? `HTTP ${e.status}: ` : ""}${why}): check GHE_HOST and the network`, { cause: e });
  }
  if (firestore.status === "rejected") {
    throw new ConfigError(`Firestore did not answer (${firestoreWhere(ctx.deps.config, env)}): ${errorLine(firestore.reason)}`, { cause: firestore.reason });
  }
}
