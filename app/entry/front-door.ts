import type { IncomingMessage, ServerResponse } from "node:http";
import { verify } from "@octokit/webhooks-methods";
import type { Logger } from "probot";

export interface FrontDoorOptions {
  /** The webhook route, e.g. /api/github/webhooks. */
  path: string;
  secret: string;
  maxBodyBytes: number;
  log: Logger;
}

/** How long after refusing a body its connection is cut. */
const CUT_AFTER_MS = 1_000;

/** The body a framework (the functions framework) already read, if any. */
type MaybeRead = IncomingMessage & { rawBody?: Uint8Array; body?: unknown };

/**
 * The public webhook route, before Probot sees a request: a body over the limit
 * is refused (413) without reading it when its length is declared, and reading
 * stops at the limit when it is not; an unsigned or wrongly signed body is
 * refused (401). Each refusal is one short log line, never the body. What
 * passes is handed on as `rawBody`, which Probot's middleware uses as it is.
 * Resolves true when it answered the request itself.
 */
export function frontDoor(options: FrontDoorOptions): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const { path, secret, maxBodyBytes, log } = options;
  return async (req: MaybeRead, res) => {
    if (req.method !== "POST" || (req.url ?? "").split("?")[0]!.replace(/\/+$/, "") !== path) return false;
    const refuse = (status: number, reason: string) => {
      log.warn({ deliveryId: header(req, "x-github-delivery"), event: header(req, "x-github-event"), status, reason }, "webhook refused");
      res.writeHead(status, { "content-type": "application/json", connection: "close" }).end(JSON.stringify({ error: reason }));
      // The rest of the body is left unread; the connection is cut a moment later, once the client
      // could read the answer (cutting it at once resets it, and the answer is lost).
      req.pause();
      setTimeout(() => req.socket.destroy(), CUT_AFTER_MS).unref();
      return true;
    };
    const declared = Number(req.headers["content-length"]);
    if (declared > maxBodyBytes) return refuse(413, `body of ${declared} bytes is over the ${maxBodyBytes}-byte limit`);

    let body: Buffer;
    if (req.rawBody instanceof Uint8Array) {
      body = Buffer.from(req.rawBody);
      if (body.length > maxBodyBytes) return refuse(413, `body of ${body.length} bytes is over the ${maxBodyBytes}-byte limit`);
    } else {
      const read = await readUpTo(req, maxBodyBytes);
      if (!read) return refuse(413, `body over the ${maxBodyBytes}-byte limit`);
      body = read;
    }

    const signature = header(req, "x-hub-signature-256");
    if (!signature) return refuse(401, "no x-hub-signature-256 header: not signed by GitHub");
    let valid = false;
    try {
      valid = await verify(secret, body.toString("utf8"), signature);
    } catch {
      // A malformed signature header.
    }
    if (!valid) return refuse(401, "signature does not match WEBHOOK_SECRET");
    Object.assign(req, { rawBody: body, body: typeof req.body === "object" && req.body !== null ? req.body : {} });
    return false;
  };
}

/** The body, or undefined as soon as it grows past `max` (what was read is dropped; the rest flows on). */
function readUpTo(req: IncomingMessage, max: number): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (value: Buffer | undefined) => {
      req.off("data", onData).off("end", onEnd).off("error", reject);
      resolve(value);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) settle(undefined);
      else chunks.push(chunk);
    };
    const onEnd = () => settle(Buffer.concat(chunks));
    req.on("data", onData).on("end", onEnd).on("error", reject);
  });
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
