/**
 * Who may use which root field (`authScopes` of `@pothos/plugin-scope-auth`; several keys mean "any of
 * them", and `admin` passes every check). The policy in one place:
 *
 * | fields                                                         | scopes                          |
 * | -------------------------------------------------------------- | ------------------------------- |
 * | `placeOrder`, `cancelOrder`                                    | `orders:write`                  |
 * | `order`, `orders`, `product`, `products`, `orderUpdated` (sub) | `events:read` or `orders:write` |
 * | `events`, `logHead`, `events` (subscription)                   | `events:read`                   |
 * | `viewer` (the caller and its scopes)                           | any scope                       |
 * | `addProduct`, `restockProduct`, `consumers`, `consumer`,        | `admin`                         |
 * | `deadLetters`, `pauseConsumer`, `resumeConsumer`,               |                                 |
 * | `replayConsumer`, `redriveDeadLetters`, `horizonHolders`        |                                 |
 *
 * Order and catalogue reads are open to writers too: a client that places orders needs to follow them. An
 * order's own events (`Order.events`) come with the order; the whole log needs `events:read`.
 */
export const SCOPES_TO_WRITE_ORDERS = { 'orders:write': true } as const;

/** See {@link SCOPES_TO_WRITE_ORDERS}. */
export const SCOPES_TO_READ_ORDERS = { 'events:read': true, 'orders:write': true } as const;

/** See {@link SCOPES_TO_WRITE_ORDERS}. */
export const SCOPES_TO_READ_EVENTS = { 'events:read': true } as const;

/** See {@link SCOPES_TO_WRITE_ORDERS}. */
export const SCOPES_TO_ADMINISTER = { admin: true } as const;

/** See {@link SCOPES_TO_WRITE_ORDERS}: any scope at all, i.e. any caller with credentials that grant something. */
export const SCOPES_ANY = { 'events:read': true, 'orders:write': true, admin: true } as const;
