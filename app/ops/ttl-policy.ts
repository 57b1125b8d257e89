// The default import: `v1` is a lazy getter of the CommonJS module, which Node's ESM named exports do not see.
import firestore from "@google-cloud/firestore";
import { googleClientOptions } from "../launcher/google-client-options.js";

type AdminClient = InstanceType<typeof firestore.v1.FirestoreAdminClient>;

/**
 * Reads Firestore TTL policies through the Firestore Admin API: Google's, with
 * application default credentials, or, with `endpoint` (http(s)://host:port),
 * REST to a stand-in without credentials, as CLOUD_RUN_API_ENDPOINT does for Cloud Run.
 */
export class TtlPolicyReader {
  private constructor(
    private readonly client: AdminClient,
    private readonly project: string | undefined,
    private readonly database: string,
  ) {}

  static create(options: { endpoint?: string; project?: string; database?: string }): TtlPolicyReader {
    const client = new firestore.v1.FirestoreAdminClient(googleClientOptions(options.endpoint));
    return new TtlPolicyReader(client, options.project, options.database ?? "(default)");
  }

  /** The TTL policy's state on `collectionGroup.field` ("ACTIVE", "CREATING", "NEEDS_REPAIR"), or undefined when there is none. */
  async state(collectionGroup: string, field: string): Promise<string | undefined> {
    const project = this.project ?? (await this.client.getProjectId());
    const [answer] = await this.client.getField({
      name: `projects/${project}/databases/${this.database}/collectionGroups/${collectionGroup}/fields/${field}`,
    });
    const state = answer.ttlConfig?.state;
    if (state === undefined || state === null) return answer.ttlConfig ? "STATE_UNSPECIFIED" : undefined;
    // gRPC answers the enum's name, a decoded REST answer may keep its number.
    return typeof state === "number" ? (TTL_STATES[state] ?? String(state)) : String(state);
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

const TTL_STATES: Record<number, string> = { 0: "STATE_UNSPECIFIED", 1: "CREATING", 2: "ACTIVE", 3: "NEEDS_REPAIR" };
