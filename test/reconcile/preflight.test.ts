import { describe, expect, test } from "@jest/globals";
import { ConfigError } from "../../app/errors.js";
import type { ReconcileContext } from "../../app/reconcile/context.js";
import { preflight } from "../../app/reconcile/preflight.js";

/** A pass context whose GitHub and Firestore answer as given. */
function ctx(github: () => Promise<unknown>, firestore: () => Promise<unknown>, config: Record<string, unknown> = {}): ReconcileContext {
  return {
    appOctokit: { rest: { apps: { getAuthenticated: github } } },
    deps: { store: { getMark: firestore }, config: { project: "kumo-prod", ...config } },
  } as unknown as ReconcileContext;
}
const ok = () => Promise.resolve({});
const fails = (error: object) => () => Promise.reject(error);
const NO_EMULATOR = {};

describe("reconcile preflight: GitHub accepts the app and Firestore answers, or one line says what to fix", () => {
  test("both answer: the pass goes on", async () => {
    await expect(preflight(ctx(ok, () => Promise.resolve(undefined)), NO_EMULATOR)).resolves.toBeUndefined();
  });

  test.each([
    ["401", { status: 401, message: "A JSON web token could not be decoded" }, "GitHub refused the app's credentials (HTTP 401: A JSON web token could not be decoded): check APP_ID and PRIVATE_KEY"],
    ["403", { status: 403, message: "Forbidden" }, "GitHub refused the app's credentials (HTTP 403: Forbidden): check APP_ID and PRIVATE_KEY"],
    ["a key that cannot be read", { message: "error:1E08010C:DECODER routines::unsupported\nmore" }, "GitHub refused the app's credentials (error:1E08010C:DECODER routines::unsupported): check APP_ID and PRIVATE_KEY"],
    ["a JWT that cannot be made", { message: "JWT could not be signed" }, "GitHub refused the app's credentials (JWT could not be signed): check APP_ID and PRIVATE_KEY"],
    ["a private key missing", { message: "secretOrPrivateKey must have a value" }, "GitHub refused the app's credentials (secretOrPrivateKey must have a value): check APP_ID and PRIVATE_KEY"],
    ["a broken PEM", { message: "invalid pem" }, "GitHub refused the app's credentials (invalid pem): check APP_ID and PRIVATE_KEY"],
    ["a 5xx", { status: 502, message: "Bad Gateway" }, "GitHub API did not answer (HTTP 502: Bad Gateway): check GHE_HOST and the network"],
    ["no answer", { message: "getaddrinfo ENOTFOUND api.github.com" }, "GitHub API did not answer (getaddrinfo ENOTFOUND api.github.com): check GHE_HOST and the network"],
    ["an error without message", {}, "GitHub API did not answer (unknown error): check GHE_HOST and the network"],
    ["a 500 mentioning a key", { status: 500, message: "key service down" }, "GitHub API did not answer (HTTP 500: key service down): check GHE_HOST and the network"],
  ])("GitHub: %s", async (_name, error, message) => {
    const failure = await preflight(ctx(fails(error), ok), NO_EMULATOR).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(ConfigError);
    expect((failure as Error).message).toBe(message);
    expect((failure as Error).cause).toBe(error);
  });

  test("GitHub is reported first when both fail", async () => {
    await expect(preflight(ctx(fails({ status: 401, message: "Bad credentials" }), fails(new Error("UNAVAILABLE"))), NO_EMULATOR)).rejects.toThrow(/^GitHub refused/);
  });

  test("Firestore: which database, and why", async () => {
    const cause = new Error("7 PERMISSION_DENIED: Missing or insufficient permissions.\nat …");
    const failure = (await preflight(ctx(ok, fails(cause), { firestoreDatabaseId: "kumo" }), NO_EMULATOR).catch((e: unknown) => e)) as Error;
    expect(failure).toBeInstanceOf(ConfigError);
    expect(failure.message).toBe("Firestore did not answer (GOOGLE_CLOUD_PROJECT=kumo-prod, database kumo): 7 PERMISSION_DENIED: Missing or insufficient permissions.");
    expect(failure.cause).toBe(cause);
    await expect(preflight(ctx(ok, fails(new Error("14 UNAVAILABLE")), {}), { FIRESTORE_EMULATOR_HOST: "127.0.0.1:1" })).rejects.toThrow(
      "Firestore did not answer (emulator at FIRESTORE_EMULATOR_HOST=127.0.0.1:1): 14 UNAVAILABLE",
    );
  });
});
