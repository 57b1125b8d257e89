/**
 * A process cannot run as configured (a variable missing or wrong, credentials
 * refused, a service unreachable). Its message names what to fix; entry points
 * print it as one line and exit 1.
 */
export class ConfigError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ConfigError";
  }
}

/**
 * Why a launch did not happen. `retryable` failures leave the job pending for
 * the reconcile pass; the others need a person (wrong settings, missing
 * permission) and are recorded as failed with the reason.
 */
export class LaunchError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "LaunchError";
  }
}

type HttpLikeError = { status?: number; message?: string; response?: { headers?: Record<string, string | undefined> } };

/** Classifies an Octokit RequestError from GitHub. */
export function fromGitHubError(what: string, error: unknown): LaunchError {
  if (error instanceof LaunchError) return error;
  const e = (error ?? {}) as HttpLikeError;
  const status = e.status ?? 0;
  const headers = e.response?.headers ?? {};
  const retryAfter = Number(headers["retry-after"]);
  const rateLimited =
    status === 429 || (status === 403 && (/rate limit/i.test(e.message ?? "") || headers["x-ratelimit-remaining"] === "0" || !Number.isNaN(retryAfter)));
  const spammed = status === 422 && /spam/i.test(e.message ?? "");
  const retryable = rateLimited || spammed || status >= 500 || status === 0;
  const label = rateLimited ? "rate limited" : status ? `HTTP ${status}` : "network error";
  return new LaunchError(`${what}: ${label}: ${firstLine(e.message)}`, retryable, Number.isNaN(retryAfter) ? undefined : retryAfter * 1000, {
    cause: error,
  });
}

const GRPC_NAMES: Record<number, string> = {
  2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND", 7: "PERMISSION_DENIED",
  8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION", 10: "ABORTED", 13: "INTERNAL", 14: "UNAVAILABLE", 16: "UNAUTHENTICATED",
};
// Worth retrying: UNAVAILABLE, RESOURCE_EXHAUSTED (quota), DEADLINE_EXCEEDED, ABORTED, INTERNAL, UNKNOWN.
const RETRYABLE_GRPC = new Set([14, 8, 4, 10, 13, 2]);

/** Classifies a google-gax error of a Google API (Cloud Run, Compute Engine, Cloud Tasks). */
export function fromGoogleError(what: string, error: unknown): LaunchError {
  if (error instanceof LaunchError) return error;
  const code = (error as { code?: unknown })?.code;
  const retryable = typeof code !== "number" || RETRYABLE_GRPC.has(code);
  const message = error instanceof Error ? error.message : String(error);
  const status = typeof code === "number" ? `${GRPC_NAMES[code] ?? `code ${code}`}: ` : "";
  return new LaunchError(`${what}: ${status}${firstLine(message)}`, retryable, undefined, { cause: error });
}

/** A message's first line, bounded: enough to act on, never a request or payload it may carry below. */
export function firstLine(message: string | undefined, max = 300): string {
  return (message ?? "").split("\n")[0]!.slice(0, max);
}

/** The first line of whatever was thrown. */
export function errorLine(error: unknown, max = 300): string {
  return firstLine(error instanceof Error ? error.message : String(error), max);
}
