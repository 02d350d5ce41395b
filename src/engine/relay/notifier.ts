import pg from 'pg';
import type { Logger } from '../logger.ts';
import { WAKE_CHANNEL } from '../outbox/wake-channel.ts';

/** Options of {@link Notifier}. */
export interface NotifierOptions {
  /** How to connect (the application's pool options will do). */
  readonly clientConfig: pg.ClientConfig;
  /** `application_name` of the connection. Default `postbox-notifier`. */
  readonly applicationName?: string;
  /** Server settings of the connection, as libpq's `options`. */
  readonly serverOptions?: string;
  readonly logger: Logger;
}

/** Called with a wake-up's payload: `''` for appended events, `'poll'` for an admin request. */
export type WakeListener = (payload: string) => void;

/**
 * One dedicated connection that LISTENs on the log's wake-up channel, shared by everything in a process
 * that wants the hint: the relay (which also runs its session lock and scans on it) and the API's
 * subscription feed. A pool connection cannot hold LISTEN or a session lock reliably, hence a client of
 * its own. A lost connection is reported to `onLost` listeners; whoever owns the notifier reconnects.
 *
 * NOTIFY is a hint, never delivery: listeners must still poll.
 */
export class Notifier {
  readonly #options: NotifierOptions;
  readonly #listeners = new Set<WakeListener>();
  readonly #lostListeners = new Set<() => void>();
  #client: pg.Client | undefined;
  #connecting: Promise<pg.Client> | undefined;

  constructor(options: NotifierOptions) {
    this.#options = options;
  }

  /** The connection while it is up. */
  get client(): pg.Client | undefined {
    return this.#client;
  }

  /** Connects and LISTENs, unless already connected; concurrent callers share one attempt. */
  connect(): Promise<pg.Client> {
    if (this.#client) return Promise.resolve(this.#client);
    this.#connecting ??= this.#open().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  /** Closes the connection (a session lock held on it is released). Listeners stay registered. */
  async disconnect(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client) await client.end().catch(() => undefined);
  }

  /** Registers a wake-up listener; returns the function that removes it. */
  subscribe(listener: WakeListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Registers a listener for the loss of the connection; returns the function that removes it. */
  onLost(listener: () => void): () => void {
    this.#lostListeners.add(listener);
    return () => this.#lostListeners.delete(listener);
  }

  async #open(): Promise<pg.Client> {
    const client = new pg.Client({
      ...this.#options.clientConfig,
      application_name: this.#options.applicationName ?? 'postbox-notifier',
      ...(this.#options.serverOptions ? { options: this.#options.serverOptions } : {}),
    });
    client.on('error', (error) => {
      this.#options.logger.warn({ err: error }, 'notifier: connection error');
      if (this.#client !== client) return;
      this.#client = undefined;
      client.end().catch(() => undefined);
      for (const listener of this.#lostListeners) listener();
    });
    client.on('notification', (message) => {
      if (message.channel !== WAKE_CHANNEL) return;
      for (const listener of this.#listeners) listener(message.payload ?? '');
    });
    try {
      await client.connect();
      await client.query(`listen ${WAKE_CHANNEL}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    this.#client = client;
    return client;
  }
}
