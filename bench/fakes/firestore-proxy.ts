import {
  connect,
  constants,
  createServer,
  type ClientHttp2Session,
  type Http2Server,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from "node:http2";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";

/** One RPC as the proxy saw it; the job is read from the document name in the request (`…/kumo-jobs/<id>`). */
export interface Rpc {
  method: string;
  start: number;
  end: number;
  /** gRPC status code, 0 = OK (6 = ALREADY_EXISTS, 10 = ABORTED). */
  grpcStatus: number;
  jobId?: number;
}

/**
 * A counting pass-through in front of the Firestore emulator. The app's
 * Firestore client speaks gRPC over cleartext HTTP/2 to FIRESTORE_EMULATOR_HOST;
 * pointing that at this proxy lets the bench count the real RPCs per method
 * (Commit, BatchGetDocuments, Rollback…) and their time, without touching the app.
 */
export class FirestoreProxy {
  private readonly server: Http2Server;
  private upstream: ClientHttp2Session | undefined;
  readonly rpcs: Rpc[] = [];
  port = 0;

  constructor(private readonly emulatorHost: string) {
    this.server = createServer();
    this.server.on("stream", (stream, headers) => this.forward(stream, headers));
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async listen(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  reset(): void {
    this.rpcs.length = 0;
  }

  /** RPCs per method (`Commit`, `BatchGetDocuments`, …; failed ones as `Commit/6`) and their total time, ms. */
  counts(): Record<string, { calls: number; ms: number }> {
    const out: Record<string, { calls: number; ms: number }> = {};
    for (const r of this.rpcs) {
      const key = r.grpcStatus ? `${r.method}/${r.grpcStatus}` : r.method;
      const entry = (out[key] ??= { calls: 0, ms: 0 });
      entry.calls += 1;
      entry.ms += r.end - r.start;
    }
    return out;
  }

  async close(): Promise<void> {
    this.upstream?.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private session(): ClientHttp2Session {
    if (!this.upstream || this.upstream.closed || this.upstream.destroyed) {
      this.upstream = connect(`http://${this.emulatorHost}`);
      this.upstream.on("error", () => undefined);
    }
    return this.upstream;
  }

  private forward(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    const method = String(headers[":path"] ?? "").split("/").pop() ?? "?";
    const start = performance.now();
    let jobId: number | undefined;
    let head = "";
    stream.on("data", (chunk: Buffer) => {
      // The document name is near the start of the protobuf request.
      if (jobId !== undefined || head.length > 4096) return;
      head += chunk.toString("latin1");
      const m = /kumo-jobs\/(\d+)/.exec(head);
      if (m) jobId = Number(m[1]);
    });
    const done = (status: unknown) => {
      this.rpcs.push({ method, start, end: performance.now(), grpcStatus: Number(status ?? 0), ...(jobId !== undefined ? { jobId } : {}) });
    };
    const outgoing: OutgoingHttpHeaders = { ...headers };
    delete outgoing[":authority"];
    const up = this.session().request(outgoing);
    let trailers: OutgoingHttpHeaders = {};
    stream.pipe(up);
    up.on("response", (responseHeaders, flags) => {
      // gRPC "trailers-only" answers (errors such as ALREADY_EXISTS) end with the headers.
      if (flags & constants.NGHTTP2_FLAG_END_STREAM) {
        stream.respond(responseHeaders, { endStream: true });
        done(responseHeaders["grpc-status"]);
        return;
      }
      stream.respond(responseHeaders, { waitForTrailers: true });
      up.pipe(stream);
    });
    up.on("trailers", (t) => {
      trailers = { ...t };
    });
    stream.on("wantTrailers", () => {
      stream.sendTrailers(trailers);
      done(trailers["grpc-status"]);
    });
    up.on("error", () => stream.close(constants.NGHTTP2_INTERNAL_ERROR));
    stream.on("error", () => up.close(constants.NGHTTP2_CANCEL));
    stream.on("close", () => {
      if (!up.closed) up.close(constants.NGHTTP2_CANCEL);
    });
  }
}
