import type { ServerResponse } from 'node:http';
import type { WebSocket } from 'ws';
import type { Logger } from '../logger.ts';

/** WebSocket close code for a client that does not read what it subscribed to. */
export const CLOSE_CLIENT_TOO_SLOW = 4008;

/** Options of {@link SlowClientGuard}. */
export interface SlowClientOptions {
  /**
   * WebSocket: unread bytes a connection may have queued when another message is to be sent. Default 4 MiB.
   * (SSE needs no such cap: its response is only written to while the client keeps up.)
   */
  readonly maxBufferedBytes?: number;
  /** How long queued data may wait without the client reading any of it, ms. Default `10000`. */
  readonly sendTimeoutMs?: number;
  /** How long a cut SSE response gets to deliver its final error before its socket is destroyed, ms. Default `5000`. */
  readonly graceMs?: number;
}

/** Defaults of {@link SlowClientOptions}. */
export const DEFAULT_SLOW_CLIENT_OPTIONS: Required<SlowClientOptions> = Object.freeze({
  maxBufferedBytes: 4 * 1024 * 1024,
  sendTimeoutMs: 10_000,
  graceMs: 5000,
});

/** What the guard knows about a connection, for its log line. */
export interface ClientInfo {
  readonly clientAddress: string;
  /** Principal id, once known. */
  principal?: string | undefined;
}

/** The sending side of one watched WebSocket: every graphql-ws message goes through {@link send}. */
export interface WebSocketSendGate {
  /** Sends, resolving once the data is handed to the network (or at once if the connection was cut). */
  send(data: string): Promise<void>;
  /** Stops watching (the socket closed). */
  dispose(): void;
}

/** Limits a close reason to the 123 bytes a WebSocket close frame allows. */
export function closeReason(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= 123) return text;
  return `${bytes
    .subarray(0, 120)
    .toString('utf8')
    .replace(/\uFFFD$/, '')}...`;
}

/** Where an event stream stands after `chunk` (see {@link SlowClientGuard.watchEventStream}). */
function streamPositionAfter(chunk: unknown): 'between' | 'after-event-line' | 'unknown' {
  const bytes =
    typeof chunk === 'string' ? Buffer.from(chunk) : chunk instanceof Uint8Array ? chunk : new Uint8Array();
  const newline = 10;
  if (bytes.length >= 2 && bytes[bytes.length - 1] === newline && bytes[bytes.length - 2] === newline) {
    return 'between';
  }
  if (bytes.length < 40 && /^event: [a-z]+\n$/.test(Buffer.from(bytes).toString('utf8'))) {
    return 'after-event-line';
  }
  return 'unknown';
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

interface Watched {
  check(now: number): void;
}

/**
 * Disconnects subscribers that stop reading, so a stalled client costs a bounded amount of memory and is
 * told why instead of being kept forever.
 *
 * Behind each transport something already waits for the network (graphql-ws awaits every send; the SSE
 * response is pumped with backpressure), and the subscription feed falls back to re-reading the log when
 * a subscriber falls behind (log-tailer.ts). What remains is the transport's own buffer (one message per
 * WebSocket operation) and a connection held open indefinitely by a client that reads nothing. A connection
 * is cut when data has waited `sendTimeoutMs` without the client reading any of it, or (WebSocket) when
 * it is more than `maxBufferedBytes` behind as the next message is sent:
 * - WebSocket: closed with {@link CLOSE_CLIENT_TOO_SLOW} and the reason `client too slow: …`; its
 *   subscriptions end at once (the close frame reaches the client if it reads again; `ws` destroys the
 *   socket 30 s later otherwise).
 * - SSE: a final `next` event with a `CLIENT_TOO_SLOW` error and a `complete` event are written, then the
 *   socket is destroyed after `graceMs`.
 * One timer checks every watched connection.
 */
export class SlowClientGuard {
  private readonly watched = new Set<Watched>();
  private readonly options: Required<SlowClientOptions>;
  private readonly log: Logger;
  private timer: NodeJS.Timeout | undefined;

  constructor(logger: Logger, options: SlowClientOptions = {}) {
    this.options = { ...DEFAULT_SLOW_CLIENT_OPTIONS, ...options };
    this.log = logger.child({ component: 'slow-clients' });
  }

  /**
   * Watches a WebSocket. `onCut` runs once when the client is disconnected for being too slow (end its
   * subscriptions there).
   */
  watchSocket(
    socket: WebSocket,
    info: ClientInfo,
    onCut: (code: number, reason: string) => void,
  ): WebSocketSendGate {
    const { maxBufferedBytes, sendTimeoutMs } = this.options;
    const pending: Array<{ at: number; done: () => void }> = [];
    let cut = false;
    const disconnect = (why: string) => {
      if (cut) return;
      cut = true;
      const reason = closeReason(`client too slow: ${why}`);
      this.log.warn({ transport: 'websocket', ...info, reason }, 'disconnecting a client too slow to read');
      for (const entry of pending.splice(0)) entry.done();
      this.watched.delete(watched);
      if (socket.readyState === socket.OPEN) socket.close(CLOSE_CLIENT_TOO_SLOW, reason);
      onCut(CLOSE_CLIENT_TOO_SLOW, reason);
    };
    const watched: Watched = {
      check: (now) => {
        const oldest = pending[0];
        if (oldest && now - oldest.at > sendTimeoutMs) {
          disconnect(`nothing read for ${seconds(now - oldest.at)}`);
        }
      },
    };
    this.add(watched);
    return {
      send: (data) => {
        if (cut || socket.readyState !== socket.OPEN) return Promise.resolve();
        // What is already queued and unread counts, not this message: one large result is fine.
        if (socket.bufferedAmount > maxBufferedBytes) {
          disconnect(`${socket.bufferedAmount} bytes unread`);
          return Promise.resolve();
        }
        return new Promise<void>((resolve) => {
          const entry = {
            at: Date.now(),
            done: () => {
              const index = pending.indexOf(entry);
              if (index >= 0) pending.splice(index, 1);
              resolve();
            },
          };
          pending.push(entry);
          // An error here means the socket is gone; its close event ends the connection's operations.
          socket.send(data, () => entry.done());
        });
      },
      dispose: () => {
        for (const entry of pending.splice(0)) entry.done();
        this.watched.delete(watched);
      },
    };
  }

  /** Watches a server-sent-events response (call before the response is written). */
  watchEventStream(response: ServerResponse, info: ClientInfo): void {
    const { sendTimeoutMs, graceMs } = this.options;
    let lastProgress = Date.now();
    let cut = false;
    // Where the last write left the event stream: between events, or after an `event:` line of one (yoga
    // writes an event's `event:` and `data:` lines as separate chunks). Decides how to append the final
    // error without breaking the framing.
    let position: 'between' | 'after-event-line' | 'unknown' = 'between';
    const write = response.write.bind(response) as (chunk: unknown, ...rest: unknown[]) => boolean;
    // The one way to see where a chunk ends is to look at the chunks; after a cut, nothing more goes out
    // and the pump stays parked waiting for a drain (until the socket is destroyed).
    response.write = ((chunk: unknown, ...rest: unknown[]) => {
      if (cut) return false;
      position = streamPositionAfter(chunk);
      return write(chunk, ...rest);
    }) as typeof response.write;
    response.on('drain', () => {
      lastProgress = Date.now();
    });
    const watched: Watched = {
      check: (now) => {
        if (!response.writableNeedDrain) lastProgress = now;
        else if (now - lastProgress > sendTimeoutMs)
          disconnect(`nothing read for ${seconds(now - lastProgress)}`);
      },
    };
    const disconnect = (why: string) => {
      if (cut) return;
      const reason = `client too slow: ${why}`;
      this.log.warn({ transport: 'sse', ...info, reason }, 'disconnecting a client too slow to read');
      const payload = JSON.stringify({
        errors: [{ message: reason, extensions: { code: 'CLIENT_TOO_SLOW' } }],
      });
      const ending = `data: ${payload}\n\nevent: complete\ndata:\n\n`;
      const final =
        position === 'between'
          ? `event: next\n${ending}`
          : position === 'after-event-line'
            ? ending
            : undefined;
      const destroy = () => response.destroy();
      if (final !== undefined) write(final, destroy);
      cut = true;
      this.watched.delete(watched);
      if (final === undefined) destroy();
      else setTimeout(destroy, graceMs).unref();
    };
    response.once('close', () => this.watched.delete(watched));
    this.add(watched);
  }

  /** Stops the timer (connections are closed by their servers). */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.watched.clear();
  }

  private add(watched: Watched): void {
    this.watched.add(watched);
    this.timer ??= setInterval(
      () => {
        const now = Date.now();
        for (const each of [...this.watched]) each.check(now);
      },
      Math.max(10, Math.min(1000, this.options.sendTimeoutMs / 4)),
    ).unref();
  }
}
