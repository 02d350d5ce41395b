import type { ConsumerDefinition } from '../consumers/consumer.ts';
import type { Notifier } from '../relay/notifier.ts';
import { Circuit } from './circuit.ts';
import { type DeliveryDeps, destinationConsumer } from './deliver.ts';
import { transportFor } from './kind-transport.ts';
import { readStoredDestinations } from './stored-destination.ts';
import type { DestinationTransport } from './transport.ts';

/** The NOTIFY payload (on the log's wake-up channel) that tells every process the destinations changed. */
export const DESTINATIONS_CHANGED = 'destinations';

/** Options of {@link DestinationSync}. */
export interface DestinationSyncOptions extends DeliveryDeps {
  /** The process's live consumer map: destinations are added, replaced and removed here. */
  readonly consumers: Map<string, ConsumerDefinition>;
  /** Called after a refresh that changed something (the relay polls at once). */
  readonly onChange: () => void;
}

/**
 * Keeps this process's destinations in step with `outbox.destinations`, without a restart: reads them at
 * start, on every `destinations` wake-up (sent by the admin functions on commit) and every
 * `intervalMs` (the guarantee: NOTIFY is only a hint). A new destination becomes a consumer of this
 * process's drains; a changed one is rebuilt; a deleted one is dropped. Each has one transport (a broker
 * kind's connection): a rebuilt or dropped destination's is closed once its deliveries in flight finish,
 * and {@link DestinationSync.close} closes them all when the process stops.
 */
export class DestinationSync {
  readonly #options: DestinationSyncOptions;
  readonly #known = new Map<string, string>();
  /** Destinations active as last read (paused, disabled and deleted ones are not). */
  readonly #active = new Set<string>();
  readonly #transports = new Map<string, DestinationTransport>();
  readonly #closing = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | undefined;
  #unsubscribe: (() => void) | undefined;
  #running: Promise<void> | undefined;
  #again = false;

  constructor(options: DestinationSyncOptions) {
    this.#options = options;
  }

  /** Loads the destinations once, then follows changes. */
  async start(notifier: Notifier, intervalMs: number): Promise<void> {
    await this.refresh();
    this.#unsubscribe = notifier.subscribe((payload) => {
      if (payload === DESTINATIONS_CHANGED) void this.refresh();
    });
    this.#timer = setInterval(() => void this.refresh(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#unsubscribe?.();
  }

  /** Closes every destination's transport (after {@link stop}, once the drains stopped). */
  async close(): Promise<void> {
    await this.#running;
    for (const name of [...this.#transports.keys()]) this.#retire(name);
    await Promise.allSettled([...this.#closing]);
  }

  #retire(name: string): void {
    const transport = this.#transports.get(name);
    this.#transports.delete(name);
    if (!transport) return;
    const closing = transport.close().catch((error: unknown) => {
      this.#options.logger.warn(
        { err: error, destination: name },
        'destination: closing its connection failed',
      );
    });
    this.#closing.add(closing);
    void closing.finally(() => this.#closing.delete(closing));
  }

  /** Re-reads the destinations (coalesced: one run at a time, one more if asked meanwhile). */
  refresh(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      try {
        do {
          this.#again = false;
          await this.#load();
        } while (this.#again);
      } catch (error) {
        this.#options.logger.warn({ err: error }, 'destinations: refresh failed');
      } finally {
        this.#running = undefined;
      }
    })();
    return this.#running;
  }

  async #load(): Promise<void> {
    const { consumers, db } = this.#options;
    const stored = await readStoredDestinations(db);
    let changed = false;
    const seen = new Set<string>();
    for (const destination of stored) {
      seen.add(destination.name);
      if (destination.state === 'active') this.#active.add(destination.name);
      else this.#active.delete(destination.name);
      if (this.#known.get(destination.name) === destination.version) continue;
      const circuit = new Circuit(
        db,
        destination.name,
        destination.breaker,
        destination.settings.timeoutMs + 5000,
      );
      const name = destination.name;
      this.#retire(name);
      const transport = transportFor(destination, this.#options);
      this.#transports.set(name, transport);
      consumers.set(
        name,
        destinationConsumer(destination, circuit, this.#options, transport, () => this.#active.has(name)),
      );
      this.#known.set(destination.name, destination.version);
      changed = true;
    }
    for (const name of [...this.#known.keys()]) {
      if (seen.has(name)) continue;
      consumers.delete(name);
      this.#active.delete(name);
      this.#known.delete(name);
      this.#retire(name);
      changed = true;
    }
    if (changed) this.#options.onChange();
  }
}
