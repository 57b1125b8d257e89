import { FakeServer, type Answer } from "./fake-server.js";

export type TtlState = "CREATING" | "ACTIVE" | "NEEDS_REPAIR";

/**
 * The Firestore Admin API v1 in REST mode (`FirestoreAdminClient` with `fallback: true`),
 * which the Firestore emulator lacks: `GET /v1/projects/P/databases/D/collectionGroups/C/fields/F`
 * answers the field with its TTL policy, if it has one (`ttl`, keyed `C.F`, any project
 * and database). Anything else answers 404, counted as `other …`.
 */
export class FakeFirestoreAdmin extends FakeServer {
  /** TTL policy state by `collectionGroup.field`; absent: no policy. */
  readonly ttl = new Map<string, TtlState>();

  constructor() {
    super((method, path) => this.answer(method, path));
  }

  private answer(method: string, rawPath: string): Answer {
    const path = decodeURIComponent(rawPath.split("?")[0] ?? "");
    const m = /^\/v1\/(projects\/[^/]+\/databases\/[^/]+\/collectionGroups\/([^/]+)\/fields\/([^/]+))$/.exec(path);
    if (method === "GET" && m) {
      const [, name, collectionGroup, field] = m;
      const state = this.ttl.get(`${collectionGroup}.${field}`);
      return {
        endpoint: "getField",
        status: 200,
        body: {
          name,
          // A field without its own index settings inherits the collection's (`fields/*`).
          indexConfig: { usesAncestorConfig: true, ancestorField: name!.replace(/[^/]+$/, "*") },
          ...(state ? { ttlConfig: { state } } : {}),
        },
      };
    }
    return { endpoint: `other ${method} ${path}`, status: 404, body: { error: { code: 404, message: "Not Found (bench fake)", status: "NOT_FOUND" } } };
  }
}
