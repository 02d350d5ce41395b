import type { ScenarioModule } from '../scenario.ts';
/**
 * Scenario 6: 100 SSE + 100 WebSocket subscribers of the `events` subscription, at a steady write rate.
 *
 * `postbox serve --no-workers` (API only: with no relay running, every write sends the wake-up NOTIFY the
 * API's log reader listens to) runs as a child process, so the 200 clients' work stays off its event loop
 * and its memory can be read on its own. Each subscriber is an independent client on its own connection
 * (graphql-ws over `ws`, or graphql-sse in distinct-connections mode), subscribed `fromBeginning` on the
 * fresh log, so each must receive exactly the whole log, in log order.
 *
 * All 200 connect first; one probe event must reach every one of them (proving they are live) before the
 * warm-up. The bench's producer then appends `OrderPlaced` events (one per transaction, `appendEvents` in
 * the bench process) on an open-loop schedule at each of the plan's rates in turn, stamping
 * `performance.now()` when each COMMIT resolved; every subscriber stamps each arrival on the same clock.
 * Latency = arrival − commit, over every (subscriber, event) pair of events committed in the window. The
 * clients share the bench's one event loop, so a busy loop adds to the figures: they are an upper bound of
 * what the server adds. Each rate is a load the API process either sustains (latency is the fan-out's) or
 * not (the delivery backlog grows through the window, and latency with it): the receipts still owed when
 * the producer stops, and how long they took to arrive, tell which. The next rate starts once every
 * subscriber has everything.
 *
 * Afterwards every subscriber's stream is compared with the log (`order by log_xid, position`): any missing,
 * duplicate, unexpected or out-of-order event, or a subscription error, fails the scenario — it is a
 * correctness problem, not a statistic. (An event counts as missing once nothing at all has arrived for
 * STALL_TIMEOUT_MS: a server that is behind but delivering is slow, not lossy.) Memory is the service's
 * `VmRSS` when idle, with the subscribers connected, its peak during each window (sampled every 250 ms), and
 * `VmHWM`.
 */
export declare const subscriptionsScenario: ScenarioModule;
//# sourceMappingURL=subscriptions.scenario.d.ts.map
