import { deliverySuite } from './delivery-suite.ts';

// Default engine: the relay hands partitions straight to this process's drains while it has free slots.
deliverySuite('direct hand-off', {});
