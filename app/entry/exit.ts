import type { Logger } from "probot";
import { ConfigError } from "../errors.js";

/**
 * Ends a process that cannot do its work: one ERROR line, exit code 1. A
 * ConfigError already says what to fix; anything else keeps its stack for
 * Error Reporting.
 */
export function exitWithError(log: Logger, what: string, error: unknown): never {
  if (error instanceof ConfigError) log.error(`${what}: ${error.message}`);
  else log.error({ err: error }, `${what} failed: ${(error as Error)?.message ?? String(error)}`);
  process.exit(1);
}
