import { randomUUID } from 'node:crypto';
import type { Principal } from '../auth/principal.ts';
import type { Db } from '../db/database.ts';
import type { AddressPolicy, EventMetadata, EventRegistry } from '../engine/index.ts';
import type { Logger } from '../logger.ts';
import type { Credentials } from './access.ts';
import type { LogTailer } from './log-tailer.ts';

/** Header a client may set to tie its request to its own trace; echoed on the response. */
export const CORRELATION_HEADER = 'x-correlation-id';

/** What every resolver gets. One per request (HTTP) or per operation (WebSocket). */
export interface GraphQLContext {
  readonly db: Db;
  readonly tailer: LogTailer;
  readonly registry: EventRegistry;
  /** Which addresses destinations may target (checked when one is created or its URL changes). */
  readonly destinationAddressPolicy: AddressPolicy;
  /** The process logger's child carrying `correlationId` (and the caller), for everything this request logs. */
  readonly logger: Logger;
  /** Who is calling (everything is allowed to the anonymous principal when auth is off). */
  readonly principal: Principal;
  /** From the `x-correlation-id` header, or generated: carried by every event this request causes. */
  readonly correlationId: string;
  /**
   * Metadata for the events this request appends: `correlationId`, `actor` (the principal) and, when the
   * request carried a valid W3C `traceparent`, that too — the consumers continue it (see trace.ts).
   */
  readonly eventMetadata: EventMetadata;
  /**
   * The credentials the request came with (HTTP only), so that a long-lived response (an SSE subscription)
   * can re-check them; WebSocket connections re-check theirs at the connection.
   */
  readonly credentials?: Credentials | undefined;
}

/** Process-wide parts of the context. */
export interface ApiDependencies {
  readonly db: Db;
  readonly tailer: LogTailer;
  readonly registry: EventRegistry;
  readonly logger: Logger;
  readonly destinationAddressPolicy: AddressPolicy;
}

/** Per-request parts of the context. */
export interface RequestIdentity {
  readonly correlationId: string;
  readonly principal: Principal;
  /** The request's validated W3C `traceparent`, if any. */
  readonly traceparent?: string | undefined;
  /** See {@link GraphQLContext.credentials}. */
  readonly credentials?: Credentials | undefined;
}

const acceptable = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

/** The client's correlation id when it is a sane token (1–128 chars of `A-Za-z0-9._:/-`), else a new UUID. */
export function correlationIdFrom(value: string | null | undefined): string {
  return value && acceptable.test(value) ? value : randomUUID();
}

/** Builds a request's context. */
export function createContext(deps: ApiDependencies, identity: RequestIdentity): GraphQLContext {
  const { correlationId, principal, traceparent, credentials } = identity;
  const actor = principal.kind === 'anonymous' ? 'api' : principal.id;
  return {
    ...deps,
    logger: deps.logger.child({ correlationId, principal: principal.id }),
    principal,
    correlationId,
    eventMetadata: { correlationId, actor, ...(traceparent ? { traceparent } : {}) },
    credentials,
  };
}
