import { emmettPeer } from './emmett.peer.ts';
import { graphileWorkerPeer } from './graphile-worker.peer.ts';
import { pgBossFifoPeer, pgBossStandardPeer } from './pgboss.peer.ts';
import { postboxPeer } from './postbox.peer.ts';
import type { PeerSystem } from './system.ts';

/**
 * Every system of `postbox bench --peers`, Postbox first (the ratios divide by the best of the others). To
 * add a system, write one `<name>.peer.ts` implementing {@link PeerSystem} and list it here.
 */
export const peerSystems: readonly PeerSystem[] = [
  postboxPeer,
  emmettPeer,
  pgBossStandardPeer,
  pgBossFifoPeer,
  graphileWorkerPeer,
];
