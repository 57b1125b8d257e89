import { createGcpLoggingPinoConfig } from "@google-cloud/pino-logging-gcp-config";
import { pino, type DestinationStream, type Logger, type LoggerOptions } from "pino";
import pretty from "pino-pretty";

/** Longest error message and stack kept in a log line: enough to act on, never a payload. */
const MAX_MESSAGE = 500;
const MAX_STACK_LINES = 8;

/** Whether lines go to Cloud Logging: on Cloud Run (service, job or function) or when asked for. */
export function wantsJson(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.LOG_FORMAT) return env.LOG_FORMAT === "json";
  return Boolean(env.K_SERVICE || env.CLOUD_RUN_JOB || env.FUNCTION_TARGET);
}

/**
 * What an error contributes to a log line: its kind, message and status.
 * Pino's default serializer copies every enumerable property, and the errors
 * of @octokit/webhooks carry the whole event (about 10 KB of payload), Octokit's
 * carry request headers: neither belongs in a log.
 */
export function compactError(error: unknown, withStack: boolean): unknown {
  if (!(error instanceof Error)) return error;
  const e = error as Error & { status?: unknown; code?: unknown };
  return {
    type: e.name,
    message: e.message.slice(0, MAX_MESSAGE),
    ...(typeof e.status === "number" ? { status: e.status } : {}),
    ...(typeof e.code === "number" || typeof e.code === "string" ? { code: e.code } : {}),
    ...(withStack && e.stack ? { stack: stackHead(e) } : {}),
  };
}

/** Probot logs each received event at debug: its id, name and action, not its payload. */
function compactEvent(event: unknown): unknown {
  if (typeof event !== "object" || event === null) return event;
  const e = event as { id?: unknown; name?: unknown; payload?: { action?: unknown } };
  return { id: e.id, name: e.name, ...(e.payload?.action ? { action: e.payload.action } : {}) };
}

function stackHead(error: Error): string {
  return (error.stack ?? "").split("\n").slice(0, MAX_STACK_LINES + 1).join("\n").slice(0, 2 * MAX_MESSAGE + 500);
}

/**
 * The process's logger, in Probot's interface. On Google Cloud: JSON lines with
 * `severity` and `message` (Google's pino configuration), errors compacted, the
 * stack in `stack_trace` for Error Reporting. In a terminal: Probot's readable format.
 */
export function createLogger(env: NodeJS.ProcessEnv = process.env, destination?: DestinationStream): Logger {
  const level = env.LOG_LEVEL || "info";
  if (!wantsJson(env)) {
    const options: LoggerOptions = { level, serializers: { err: (e: unknown) => compactError(e, true), event: compactEvent } };
    return pino(options, destination ?? pretty({ ignore: "pid,hostname", sync: true }));
  }
  const config = createGcpLoggingPinoConfig(
    {
      // Given, not detected: detection asks the metadata server, which costs start-up time.
      serviceContext: { service: env.K_SERVICE || env.CLOUD_RUN_JOB || "kumo", ...(env.K_REVISION ? { version: env.K_REVISION } : {}) },
      traceGoogleCloudProjectId: env.GOOGLE_CLOUD_PROJECT ?? "",
      inihibitDiagnosticMessage: true,
    },
    {
      level,
      formatters: {
        // Runs before Google's formatter, which would copy the whole stack of any Error it sees.
        log: (entry: Record<string, unknown>) => {
          if (!(entry.err instanceof Error)) return entry;
          return { ...entry, err: compactError(entry.err, false), stack_trace: stackHead(entry.err) };
        },
      },
      serializers: { err: (e: unknown) => compactError(e, false), event: compactEvent },
    },
  );
  return pino(config, destination ?? pino.destination({ dest: 1, sync: true }));
}
