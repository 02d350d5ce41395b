import { isIP } from 'node:net';

/** The SASL mechanisms a `kafka` destination's URL may name (`?sasl=`). */
export const KAFKA_SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
/** A SASL mechanism of a `kafka` destination. */
export type KafkaSaslMechanism = (typeof KAFKA_SASL_MECHANISMS)[number];
/** The SASL mechanism used when a `kafka` URL carries credentials and names none. */
export const DEFAULT_KAFKA_SASL_MECHANISM: KafkaSaslMechanism = 'scram-sha-512';
/** The port of a bootstrap broker given without one (Kafka's). */
export const DEFAULT_KAFKA_PORT = 9092;
/** Bootstrap brokers one URL may list at most. */
const MAX_BROKERS = 32;

/** A `kafka` destination's URL, parsed: its bootstrap brokers, TLS, and SASL credentials when given. */
export interface KafkaConnection {
  readonly brokers: readonly { readonly host: string; readonly port: number }[];
  /** `kafkas://`: TLS to every broker. */
  readonly tls: boolean;
  readonly sasl:
    | { readonly mechanism: KafkaSaslMechanism; readonly username: string; readonly password: string }
    | undefined;
  /**
   * The `?sasl=` mechanism named without credentials: what the URL without credentials (the stored
   * settings, what queries show) keeps, so it parses back to the same mechanism.
   */
  readonly saslMechanism: KafkaSaslMechanism | undefined;
}

/** A `kafka` destination's URL that cannot be used: `message` says why. */
export class KafkaUrlError extends Error {}

/**
 * Parses a `kafka` destination's `url`: the bootstrap brokers as a comma-separated `host[:port]` list,
 * bare (`broker-1:9092,broker-2:9092`) or as `kafka://[user:password@]host[:port][,host[:port]…]`
 * (`kafkas://` for TLS), with `?sasl=plain|scram-sha-256|scram-sha-512` choosing the SASL mechanism used
 * with the credentials (default `scram-sha-512`). Ports default to 9092; IPv6 hosts are bracketed.
 *
 * Hand-written: WHATWG `URL` cannot hold several `host:port` pairs (it reads the port of the first host as
 * `9092,broker-2:9092`), and the client's own `parseBroker` accepts anything (an empty host, port `abc`).
 *
 * @throws KafkaUrlError saying what is wrong.
 */
export function parseKafkaUrl(url: string): KafkaConnection {
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  const protocol = scheme?.[1]?.toLowerCase();
  if (protocol !== undefined && protocol !== 'kafka' && protocol !== 'kafkas')
    throw new KafkaUrlError(`must be kafka://, kafkas:// or a host:port list, not ${protocol}://`);
  let rest = scheme ? url.slice(scheme[0].length) : url;
  let mechanism: KafkaSaslMechanism | undefined;
  const query = rest.indexOf('?');
  if (query !== -1) {
    const params = new URLSearchParams(rest.slice(query + 1));
    rest = rest.slice(0, query);
    for (const key of params.keys())
      if (key !== 'sasl') throw new KafkaUrlError(`unknown parameter ${key} (only sasl)`);
    const named = params.get('sasl')?.toLowerCase();
    if (named !== undefined) {
      if (!(KAFKA_SASL_MECHANISMS as readonly string[]).includes(named))
        throw new KafkaUrlError(`sasl must be ${KAFKA_SASL_MECHANISMS.join(', ')}`);
      mechanism = named as KafkaSaslMechanism;
    }
  }
  if (rest.endsWith('/')) rest = rest.slice(0, -1);
  let sasl: KafkaConnection['sasl'];
  const at = rest.lastIndexOf('@');
  if (at !== -1) {
    if (!scheme) throw new KafkaUrlError('credentials need the kafka:// or kafkas:// form');
    const userInfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userInfo.indexOf(':');
    const username = decode(colon === -1 ? userInfo : userInfo.slice(0, colon));
    const password = colon === -1 ? '' : decode(userInfo.slice(colon + 1));
    if (!username || !password) throw new KafkaUrlError('credentials must be user:password');
    sasl = { mechanism: mechanism ?? DEFAULT_KAFKA_SASL_MECHANISM, username, password };
  }
  if (rest === '') throw new KafkaUrlError('names no broker');
  const entries = rest.split(',');
  if (entries.length > MAX_BROKERS) throw new KafkaUrlError(`lists more than ${MAX_BROKERS} brokers`);
  return {
    brokers: entries.map(parseBroker),
    tls: protocol === 'kafkas',
    sasl,
    saslMechanism: sasl?.mechanism ?? mechanism,
  };
}

/** `host[:port]` or `[ipv6][:port]`. */
function parseBroker(entry: string): { host: string; port: number } {
  const text = entry.trim();
  const match = /^\[([0-9A-Fa-f:.]+)\](?::(\d*))?$/.exec(text) ?? /^([^:[\]/\s]+)(?::(\d*))?$/.exec(text);
  if (!match?.[1]) throw new KafkaUrlError(`broker "${entry}" is not host:port`);
  const host = match[1];
  const bracketed = text.startsWith('[');
  if (bracketed ? isIP(host) !== 6 : !isHostname(host))
    throw new KafkaUrlError(`broker "${entry}" has no valid host`);
  const port = match[2] === undefined || match[2] === '' ? DEFAULT_KAFKA_PORT : Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65_535)
    throw new KafkaUrlError(`broker "${entry}" has an invalid port`);
  return { host, port };
}

/** A DNS name or an IPv4 address. */
function isHostname(host: string): boolean {
  if (isIP(host) === 4) return true;
  return (
    host.length <= 253 &&
    host.split('.').every((label) => /^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$/.test(label)) &&
    !/^[0-9.]+$/.test(host)
  );
}

function decode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new KafkaUrlError('credentials are not valid percent-encoding');
  }
}

/**
 * The URL queries show and the settings keep: `kafka[s]://host:port,…` without the credentials (with
 * `?sasl=` when a mechanism was in use).
 */
export function kafkaUrlWithoutCredentials(connection: KafkaConnection): string {
  const hosts = connection.brokers
    .map(({ host, port }) => `${isIP(host) === 6 ? `[${host}]` : host}:${port}`)
    .join(',');
  const mechanism = connection.saslMechanism;
  return `${connection.tls ? 'kafkas' : 'kafka'}://${hosts}${mechanism ? `?sasl=${mechanism}` : ''}`;
}

/** One `kafka://host:port` URL per bootstrap broker: what the address policy checks. */
export function kafkaBrokerUrls(connection: KafkaConnection): string[] {
  return connection.brokers.map(
    ({ host, port }) => `kafka://${isIP(host) === 6 ? `[${host}]` : host}:${port}`,
  );
}
