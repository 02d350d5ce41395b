import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';

/** One request the receiver got. */
export interface ReceivedRequest {
  readonly webhookId: string;
  readonly body: string;
  /** The parsed CloudEvent (undefined if the body was not JSON). */
  readonly event: Record<string, unknown> | undefined;
  readonly headers: http.IncomingHttpHeaders;
  /** Which of the receiver's secrets verified the signature (by index), or undefined. */
  readonly verifiedWith: number | undefined;
  /** The status answered, or 'hang'. */
  readonly answered: number | 'hang';
  readonly at: number;
}

/** What the receiver answers: a status, or `'hang'` (never answers). */
export type Responder = (
  request: ReceivedRequest,
) => number | 'hang' | { status: number; headers?: Record<string, string>; body?: string };

/**
 * A real HTTP receiver on a random loopback port. Verifies every request with the `standardwebhooks`
 * package (the spec's reference implementation) against each of `secrets`, and records it.
 */
export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  secrets: string[] = [];
  respond: Responder = () => 200;
  /** Milliseconds to wait before answering (a slow receiver). */
  delayMs = 0;
  inFlight = 0;
  maxInFlight = 0;
  readonly #server: http.Server;
  readonly #hanging = new Set<http.ServerResponse>();

  constructor() {
    this.#server = http.createServer((req, res) => void this.#handle(req, res));
    this.#server.keepAliveTimeout = 60_000;
  }

  async start(): Promise<void> {
    this.#server.listen(0, '127.0.0.1');
    await once(this.#server, 'listening');
  }

  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/hooks`;
  }

  /** Requests answered with a 2xx, by webhook-id, in arrival order. */
  acknowledged(): ReceivedRequest[] {
    return this.requests.filter((r) => typeof r.answered === 'number' && r.answered < 300);
  }

  async stop(): Promise<void> {
    for (const res of this.#hanging) res.destroy();
    this.#server.closeAllConnections();
    this.#server.close();
  }

  async #handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks).toString('utf8');
      let verifiedWith: number | undefined;
      for (const [index, secret] of this.secrets.entries()) {
        try {
          new Webhook(secret).verify(body, req.headers as Record<string, string>);
          verifiedWith = index;
          break;
        } catch {
          // not this secret
        }
      }
      let event: Record<string, unknown> | undefined;
      try {
        event = JSON.parse(body) as Record<string, unknown>;
      } catch {
        event = undefined;
      }
      const draft: ReceivedRequest = {
        webhookId: String(req.headers['webhook-id']),
        body,
        event,
        headers: req.headers,
        verifiedWith,
        answered: 200,
        at: Date.now(),
      };
      const answer = this.respond(draft);
      const status = typeof answer === 'object' ? answer.status : answer;
      this.requests.push({ ...draft, answered: status });
      if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
      if (status === 'hang') {
        this.#hanging.add(res);
        res.once('close', () => this.#hanging.delete(res));
        return;
      }
      res.writeHead(status, typeof answer === 'object' ? (answer.headers ?? {}) : {});
      res.end(typeof answer === 'object' ? (answer.body ?? '') : status < 300 ? 'ok' : `status ${status}`);
    } finally {
      this.inFlight--;
    }
  }
}
