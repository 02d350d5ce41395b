import dns from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { ValidationError } from '../errors.ts';

/**
 * Which addresses destinations may reach (the SSRF guard). By default private, loopback, link-local and
 * other non-public addresses are refused; `allowPrivate` opens them all (development), `allow` opens
 * chosen hosts (exact names) and networks (CIDRs, e.g. `10.1.0.0/16`).
 */
export interface AddressPolicy {
  /** Allow every address. Default `false`. */
  readonly allowPrivate?: boolean;
  /** Host names or CIDRs allowed even when private. Default none. */
  readonly allow?: readonly string[];
}

const blocked = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
  ['64:ff9b::', 96],
] as const) {
  blocked.addSubnet(network, prefix, 'ipv6');
}

/** IPv4-mapped IPv6 (`::ffff:10.0.0.1`) is checked as the IPv4 address it is. */
function normalise(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return { address: mapped[1], family: 'ipv4' };
  return { address, family: isIP(address) === 6 ? 'ipv6' : 'ipv4' };
}

function allowList(policy: AddressPolicy): { hosts: Set<string>; networks: BlockList } {
  const hosts = new Set<string>();
  const networks = new BlockList();
  for (const entry of policy.allow ?? []) {
    const cidr = /^(.+)\/(\d{1,3})$/.exec(entry);
    if (cidr?.[1] && isIP(cidr[1])) {
      networks.addSubnet(cidr[1], Number(cidr[2]), isIP(cidr[1]) === 6 ? 'ipv6' : 'ipv4');
    } else if (isIP(entry)) {
      networks.addAddress(entry, isIP(entry) === 6 ? 'ipv6' : 'ipv4');
    } else {
      hosts.add(entry.toLowerCase());
    }
  }
  return { hosts, networks };
}

/** Whether `address` (reached for `host`) is allowed under `policy`. */
export function isAddressAllowed(address: string, host: string, policy: AddressPolicy): boolean {
  if (policy.allowPrivate) return true;
  const { address: ip, family } = normalise(address);
  if (!blocked.check(ip, family)) return true;
  const allowed = allowList(policy);
  return allowed.hosts.has(host.toLowerCase()) || allowed.networks.check(ip, family);
}

/**
 * A `lookup` for the HTTP client's sockets: resolves as usual, then refuses the connection when an address
 * it would connect to is not allowed — the check is on the address actually connected to, so a name that
 * resolves to a public address when the destination is created and to a private one later (DNS
 * rebinding) is still refused.
 */
export function guardedLookup(policy: AddressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) {
        callback(error, '', 0);
        return;
      }
      const list = addresses as dns.LookupAddress[];
      const denied = list.find((entry) => !isAddressAllowed(entry.address, hostname, policy));
      if (denied) {
        const refusal = Object.assign(
          new Error(`destination address ${denied.address} of ${hostname} is not allowed (private network)`),
          { code: 'EADDRNOTALLOWED' },
        );
        callback(refusal, '', 0);
        return;
      }
      if (options.all) {
        (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, list);
        return;
      }
      const first = list[0];
      if (!first)
        callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
      else callback(null, first.address, first.family);
    });
  };
}

/**
 * Checks a destination URL before it is stored: an IP literal directly, a name by resolving it. A name
 * that does not resolve is accepted (it may exist later; delivery checks again on every connection).
 *
 * @throws ValidationError (field `url`) when an address is not allowed.
 */
export async function checkDestinationUrl(url: string, policy: AddressPolicy): Promise<void> {
  if (policy.allowPrivate) return;
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = (await dns.promises.lookup(host, { all: true })).map((entry) => entry.address);
    } catch {
      return;
    }
  }
  const denied = addresses.find((address) => !isAddressAllowed(address, host, policy));
  if (denied) {
    throw new ValidationError(
      `url: ${host} is a private, loopback or link-local address (${denied}); allow it in the destination address policy`,
      'url',
    );
  }
}
