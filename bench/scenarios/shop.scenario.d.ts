import type { ScenarioModule } from '../scenario.ts';
/**
 * Scenario 5: the shop's order flow through the GraphQL API, as a client sees it.
 *
 * `postbox serve` runs as a child process on the scenario's database with its defaults (API, relay and the
 * shop's consumers: payment → inventory → shipping, plus notifications; pool 20, worker concurrency 8).
 * The bench seeds a catalogue through `addProduct` (ample stock, prices that keep every order below the
 * payment limit, so orders normally end SHIPPED), then places orders with `placeOrder` mutations over HTTP
 * (fetch), level by level, each for the plan's seconds: first paced (an open loop at `pacedRate`, which the
 * handler chain can keep up with: the latency of the flow itself), then a closed loop at each concurrency
 * (as fast as the API answers: mutations/s = successful responses / seconds). Closed loops place orders
 * faster than the chain finishes them on a small machine, so their commit → SHIPPED is mostly queueing
 * behind the window's backlog, and grows with the window; the backlog at the window's end and the rate the
 * chain finished the level's orders at are recorded with it.
 *
 * Commit → SHIPPED is measured on the bench's clock: from the moment the placeOrder response arrived (the
 * order's transaction had committed before the response was written) to the moment its `OrderShipped`
 * arrived on one WebSocket `events` subscription filtered to the final event types. It is what a client
 * watching the order sees, and so includes the subscription's own hop (the API's log reader polls every
 * 50 ms while writers skip the wake-up NOTIFY because the relay is awake). The database-side hop breakdown
 * (`occurred_at` of OrderPlaced → PaymentSucceeded → InventoryReserved → OrderShipped) is recorded too;
 * `occurred_at` is the writing transaction's start, shared by every event of one delivery batch, so those
 * hops are approximate.
 *
 * Levels run one after the other on the same service: after each window the bench waits (at most
 * `catchUpSeconds`) until every order of the level is final, so the next level starts with no backlog.
 * Orders in other final states and orders still unfinished after the wait are counted; the database's
 * `shop.orders.status` is checked against what the subscription reported.
 */
export declare const shopScenario: ScenarioModule;
//# sourceMappingURL=shop.scenario.d.ts.map
