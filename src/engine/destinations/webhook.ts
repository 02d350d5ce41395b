import { Webhook } from 'standardwebhooks';
import { Agent, buildConnector, request } from 'undici';
import { type AddressPolicy, guardedLookup, isAddressAllowed } from './address-guard.ts';

/** Bytes of a response body kept with a failed attempt (attempt log, dead letter). */
export const RESPONSE_SNIPPET_BYTES = 512;

/** One signed webhook request. */
export interface WebhookRequest {
  readonly url: string;
  /** The `webhook-id`: the event id, the same on every retry of the event. */
  readonly id: string;
  /** The body (a CloudEvent in structured JSON). */
  readonly body: string;
  /**
   * Secrets to sign with: the current one, and during a rotation's overlap the previous one as well —
   * the `webhook-signature` header then carries both signatures, space-separated.
   */
  readonly secrets: readonly string[];
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

/** What came back, or did not. */
export interface WebhookResponse {
  /** HTTP status; undefined when no response arrived (timeout, connection refused…). */
  readonly status: number | undefined;
  readonly durationMs: number;
  /** First bytes of the response body. */
  readonly snippet: string;
  /** `Retry-After` in ms, when the response carried one. */
  readonly retryAfterMs: number | undefined;
  /** Why no response arrived. */
  readonly error: Error | undefined;
}

/**
 * Sends webhooks per the Standard Webhooks spec: POST, `webhook-id`, `webhook-timestamp` and
 * `webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, signed by the `standardwebhooks`
 * package). One keep-alive agent per sender; every socket is checked against the address policy after
 * it connected (and names before it connects), so DNS rebinding cannot reach a private address.
 */
export class WebhookSender {
  readonly #agent: Agent;
  readonly #policy: AddressPolicy;

  constructor(policy: AddressPolicy) {
    this.#policy = policy;
    const connect = buildConnector({ lookup: guardedLookup(policy) });
    this.#agent = new Agent({
      connections: 64,
      connect: (options, callback) => {
        connect(options, (error, socket) => {
          if (error || !socket) {
            callback(error ?? new Error('no socket'), null);
            return;
          }
          const address = socket.remoteAddress ?? '';
          if (!isAddressAllowed(address, options.hostname, this.#policy)) {
            socket.destroy();
            callback(
              Object.assign(new Error(`destination address ${address} is not allowed (private network)`), {
                code: 'EADDRNOTALLOWED',
              }),
              null,
            );
            return;
          }
          callback(null, socket);
        });
      },
    });
  }

  /** Sends one request; never throws (a failure to get a response is in `error`). */
  async send(input: WebhookRequest): Promise<WebhookResponse> {
    const started = performance.now();
    const timestamp = new Date();
    const signature = input.secrets
      .map((secret) => new Webhook(secret).sign(input.id, timestamp, input.body))
      .join(' ');
    const timeout = AbortSignal.timeout(input.timeoutMs);
    const signal = input.signal ? AbortSignal.any([timeout, input.signal]) : timeout;
    try {
      const response = await request(input.url, {
        method: 'POST',
        dispatcher: this.#agent,
        signal,
        headersTimeout: input.timeoutMs,
        bodyTimeout: input.timeoutMs,
        headers: {
          ...input.headers,
          'content-type': 'application/cloudevents+json; charset=utf-8',
          'user-agent': 'postbox-webhooks',
          'webhook-id': input.id,
          'webhook-timestamp': String(Math.floor(timestamp.getTime() / 1000)),
          'webhook-signature': signature,
        },
        body: input.body,
      });
      const snippet = await readSnippet(response.body);
      return {
        status: response.statusCode,
        durationMs: performance.now() - started,
        snippet,
        retryAfterMs: parseRetryAfter(response.headers['retry-after']),
        error: undefined,
      };
    } catch (error) {
      const err = error instanceof Error ? error : new Error(String(error));
      const timedOut = timeout.aborted || (err as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT';
      return {
        status: undefined,
        durationMs: performance.now() - started,
        snippet: '',
        retryAfterMs: undefined,
        error: timedOut ? new Error(`no response within ${input.timeoutMs} ms`) : err,
      };
    }
  }

  /** Closes idle connections. */
  async close(): Promise<void> {
    await this.#agent.close().catch(() => undefined);
  }
}

async function readSnippet(body: AsyncIterable<Buffer> & { destroy(): unknown }): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= RESPONSE_SNIPPET_BYTES) break;
    }
  } catch {
    // a body cut short still leaves its status
  } finally {
    body.destroy();
  }
  return Buffer.concat(chunks).subarray(0, RESPONSE_SNIPPET_BYTES).toString('utf8');
}

/** `Retry-After`: seconds, or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (!text) return undefined;
  if (/^\d+$/.test(text.trim())) return Number(text.trim()) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** How a webhook response counts. */
export type WebhookVerdict =
  /** 2xx. */
  | 'delivered'
  /** 410 Gone: the receiver wants no more; the destination is disabled. */
  | 'gone'
  /** 408, 429, 5xx, timeouts, connection errors: retried, and counted by the circuit. */
  | 'unavailable'
  /** Other statuses (4xx, 3xx): retried per the policy, then dead-lettered; the receiver is up. */
  | 'rejected';

/** Classifies a response per the rules (see {@link WebhookVerdict}). */
export function classifyResponse(status: number | undefined): WebhookVerdict {
  if (status === undefined) return 'unavailable';
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 410) return 'gone';
  if (status === 408 || status === 429 || status >= 500) return 'unavailable';
  return 'rejected';
}
