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

// gRPC codes from Cloud Run: UNAVAILABLE, RESOURCE_EXHAUSTED (quota), DEADLINE_EXCEEDED, ABORTED, INTERNAL, UNKNOWN.
const RETRYABLE_GRPC = new Set([14, 8, 4, 10, 13, 2]);

/** Classifies a google-gax error from the Cloud Run Admin API. */
export function fromCloudRunError(what: string, error: unknown): LaunchError {
  if (error instanceof LaunchError) return error;
  const code = (error as { code?: unknown })?.code;
  const retryable = typeof code !== "number" || RETRYABLE_GRPC.has(code);
  const message = error instanceof Error ? error.message : String(error);
  return new LaunchError(`${what}: ${typeof code === "number" ? `code ${code}: ` : ""}${firstLine(message)}`, retryable, undefined, { cause: error });
}

function firstLine(message: string | undefined): string {
  return (message ?? "").split("\n")[0]!.slice(0, 300);
}
