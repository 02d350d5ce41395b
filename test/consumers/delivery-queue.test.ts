import { deliverySuite } from './delivery-suite.ts';

// Every drain through graphile-worker jobs: the path other processes, polls, retries and overflow take.
deliverySuite('job queue only', { handoffConcurrency: 0 });
