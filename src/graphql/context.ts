import { randomUUID } from 'node:crypto';
import type { Db } from '../db/database.ts';
import type { Logger } from '../logger.ts';
import type { EventMetadata } from '../outbox/event.ts';
import type { EventRegistry } from '../outbox/read.ts';
import type { LogTailer } from './log-tailer.ts';

/** Header a client may set to tie its request to its own trace; echoed on the response. */
export const CORRELATION_HEADER = 'x-correlation-id';

/** What every resolver gets. One per request (HTTP) or per operation (WebSocket). */
export interface GraphQLContext {
  readonly db: Db;
  readonly tailer: LogTailer;
  readonly registry: EventRegistry;
  readonly logger: Logger;
  /** From the `x-correlation-id` header, or generated: carried by every event this request causes. */
  readonly correlationId: string;
  /** Metadata for the events this request appends. */
  readonly eventMetadata: EventMetadata;
}

/** Process-wide parts of the context. */
export interface ApiDependencies {
  readonly db: Db;
  readonly tailer: LogTailer;
  readonly registry: EventRegistry;
  readonly logger: Logger;
}

const acceptable = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$/;

/** The client's correlation id when it is a sane token (1–128 chars of `A-Za-z0-9._:/-`), else a new UUID. */
export function correlationIdFrom(value: string | null | undefined): string {
  return value && acceptable.test(value) ? value : randomUUID();
}

/** Builds a request's context. */
export function createContext(deps: ApiDependencies, correlationId: string): GraphQLContext {
  return {
    ...deps,
    correlationId,
    eventMetadata: { correlationId, actor: 'api' },
  };
}
