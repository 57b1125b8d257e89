import { firestoreWhere, readConfig } from "../config.js";
import { ConfigError, errorLine } from "../errors.js";
import { createLogger } from "../logging.js";
import { buildStatus, formatStatusText, OPEN_STATES, parseStatusArgs, STATUS_FIELDS, STATUS_USAGE, webUrlFrom } from "../ops/status.js";
import { boundedStore, StoreTimeoutError } from "../store/bounded-store.js";
import { FirestoreJobStore } from "../store/firestore-job-store.js";
import { exitWithError } from "./exit.js";

// `npm run status`: what Kumo's Firestore records say, read-only, for operators.
// Exit 0 with the report (failed jobs included: it is a report), 1 with one
// ERROR line when Firestore cannot be read, 2 with the usage on a bad argument.

/** Most records one report reads: received in the window, and open ones of any age. */
const RECENT_LIMIT = 20_000;
const OPEN_LIMIT = 2_000;

const log = createLogger();
const now = new Date();
const args = parseStatusArgs(process.argv.slice(2), now);
if ("error" in args) {
  process.stderr.write(`status: ${args.error}\n${STATUS_USAGE}\n`);
  process.exit(2);
}
if ("help" in args) {
  process.stdout.write(`${STATUS_USAGE}\n`);
  process.exit(0);
}

try {
  const config = readConfig();
  const store = boundedStore(
    FirestoreJobStore.fromEnv({ projectId: config.project, databaseId: config.firestoreDatabaseId, leaseMs: config.launchLeaseMs }),
    config.storeTimeoutMs,
  );
  const [recent, open, slots] = await Promise.all([
    store.listReceivedSince(args.since, RECENT_LIMIT, STATUS_FIELDS),
    store.list(OPEN_STATES, OPEN_LIMIT),
    store.listSlots(),
  ]).catch((error: unknown) => {
    throw new ConfigError(`Firestore ${error instanceof StoreTimeoutError ? "did not answer" : "could not be read"} (${firestoreWhere(config)}): ${errorLine(error)}`, { cause: error });
  });
  const report = buildStatus({
    now,
    since: args.since,
    ...(args.window ? { window: args.window } : {}),
    records: [...recent, ...open],
    slots,
    webUrl: webUrlFrom(process.env),
    truncated: recent.length >= RECENT_LIMIT || open.length >= OPEN_LIMIT,
  });
  const text = args.json ? `${JSON.stringify(report, null, 2)}\n` : formatStatusText(report);
  // Written out before exiting: a pipe may take a large report in several writes.
  await new Promise<void>((resolve, reject) => process.stdout.write(text, (error) => (error ? reject(error) : resolve())));
  process.exit(0);
} catch (error) {
  exitWithError(log, "status", error);
}
