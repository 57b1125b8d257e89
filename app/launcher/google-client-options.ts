import type { JobsClient } from "@google-cloud/run";
import { PassThroughClient } from "google-auth-library";

// How every Google client of Kumo is made (Cloud Run, Compute Engine, Cloud Tasks, Firestore admin).

export type ClientOptions = ConstructorParameters<typeof JobsClient>[0];

/**
 * Client options: Google's API over REST (google-gax's `fallback`) with application
 * default credentials, or, when `endpoint` is an http(s)://host:port URL, REST to
 * that endpoint without credentials (local stand-ins and tests, like FIRESTORE_EMULATOR_HOST).
 * REST rather than gRPC: a client's first call then costs ~33 ms of CPU instead of
 * ~140 (gRPC builds a package definition of the API's whole proto tree), paid by the
 * first webhook of every new instance and by every reconcile run; Kumo's calls are
 * unary, and REST is the transport the tests and the bench exercise.
 */
export function googleClientOptions(endpoint?: string): ClientOptions {
  if (!endpoint) return { fallback: true } as ClientOptions;
  const url = new URL(endpoint);
  const protocol = url.protocol.replace(":", "");
  return {
    fallback: true,
    apiEndpoint: url.hostname,
    // apiEndpoint alone would be sent to port 443.
    port: Number(url.port || (protocol === "https" ? 443 : 80)),
    protocol,
    authClient: new PassThroughClient(),
  } as ClientOptions;
}

