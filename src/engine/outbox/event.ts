import { randomUUID } from 'node:crypto';
import type { z } from 'zod';
import { ValidationError } from '../errors.ts';

/** Well-known metadata keys; callers may add their own (JSON values). */
export interface EventMetadata {
  /** Shared by every event one request caused, across handlers. */
  correlationId?: string;
  /** Id of the event whose handling appended this one. */
  causationId?: string;
  /** Who did it (user id, API key id, consumer name). */
  actor?: string;
  /** W3C trace context of the request/handler that appended it. */
  traceparent?: string;
  [key: string]: unknown;
}

/** An event about to be appended: validated, but without position or version yet. */
export interface NewEvent<TType extends string = string, TPayload = unknown> {
  readonly id: string;
  /** True when the caller chose the id (then a repeated append is deduplicated by id). */
  readonly idSupplied: boolean;
  readonly type: TType;
  readonly schemaVersion: number;
  readonly streamType: string;
  readonly streamId: string;
  readonly payload: TPayload;
  readonly metadata: EventMetadata;
  readonly occurredAt: Date | undefined;
}

/** An event as stored in the log (after upcasting to its type's current schema version). */
export interface RecordedEvent<TType extends string = string, TPayload = unknown> {
  /** Global position (a bigint, as a decimal string). Increasing, but not commit order. */
  readonly position: string;
  readonly id: string;
  readonly type: TType;
  readonly streamType: string;
  readonly streamId: string;
  readonly streamVersion: number;
  /** The schema version of `payload` (the type's current one once upcast). */
  readonly schemaVersion: number;
  readonly payload: TPayload;
  readonly metadata: EventMetadata;
  readonly occurredAt: Date;
  /** Writing transaction id (xid8, decimal string). */
  readonly transactionId: string;
  /** Read-order key (xid8, decimal string); see `outbox.events.log_xid`. */
  readonly logXid: string;
}

/** Options when building a {@link NewEvent} from a definition. */
export interface NewEventOptions {
  /** Event id; default a random UUID. Supplying one makes the append idempotent by id. */
  readonly id?: string;
  readonly metadata?: EventMetadata;
  /** Business time of the event; default the database's `now()` at append. */
  readonly occurredAt?: Date;
  /** Stream type, when the definition has no default (or to override it). */
  readonly streamType?: string;
}

/** Turns a payload of schema version `n` into one of version `n + 1`. */
export type Upcaster = (payload: never) => unknown;

/** A registered event type: its name, current schema and how to read older versions. */
export interface EventDefinition<TType extends string = string, TPayload = unknown> {
  readonly type: TType;
  /** Current schema version: new events are written with it; older ones are upcast to it on read. */
  readonly schemaVersion: number;
  /** Default stream type of events of this type. */
  readonly streamType: string | undefined;
  readonly schema: z.ZodType<TPayload>;
  /** `upcasters[n]` turns version n into n + 1. */
  readonly upcasters: Readonly<Record<number, Upcaster>>;
  /** Validates `payload` and builds an event for {@link appendEvents}. Throws {@link ValidationError}. */
  create(streamId: string, payload: TPayload, options?: NewEventOptions): NewEvent<TType, TPayload>;
  /** Brings a stored payload of any known version to the current shape (and validates it). */
  upcast(payload: unknown, fromVersion: number): TPayload;
  /**
   * Validates a stored payload of any known version against the current schema (upcasting older ones):
   * what a consumer gets. Throws {@link ValidationError} naming the first bad field (`payload.lines.0.sku`).
   */
  parse(payload: unknown, version: number): TPayload;
}

/** Options of {@link defineEvent}. */
export interface DefineEventOptions<TType extends string, TSchema extends z.ZodType> {
  /** Event type name, e.g. `OrderPlaced`. */
  readonly type: TType;
  /** Payload schema of the current version. */
  readonly schema: TSchema;
  /** Current schema version. Default `1`. */
  readonly schemaVersion?: number;
  /** Default stream type (e.g. `order`). */
  readonly streamType?: string;
  /** `upcasters[n]` turns a stored version-n payload into version n + 1; one per older version. */
  readonly upcasters?: Readonly<Record<number, Upcaster>>;
}

/** The payload type of an event definition. */
export type PayloadOf<D> = D extends EventDefinition<string, infer P> ? P : never;

/** The recorded-event union for a list of definitions (what a consumer of them receives). */
export type RecordedEventOf<D> = D extends EventDefinition<infer T, infer P> ? RecordedEvent<T, P> : never;

/** Largest payload accepted, serialised (1 MiB): the log is permanent, and huge rows hurt every reader. */
export const MAX_PAYLOAD_BYTES = 1024 * 1024;

const typeName = /^[A-Za-z][A-Za-z0-9_.-]{0,127}$/;
const streamTypeName = /^[A-Za-z][A-Za-z0-9_.-]{0,63}$/;
const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Declares an event type with a zod schema per version.
 *
 * @example
 * const OrderPlaced = defineEvent({
 *   type: 'OrderPlaced', streamType: 'order', schemaVersion: 2,
 *   schema: z.object({ customerId: z.string(), totalCents: z.number().int() }),
 *   upcasters: { 1: (v1: { customer: string; total: number }) => ({ customerId: v1.customer, totalCents: v1.total }) },
 * });
 * await appendEvents(trx, [OrderPlaced.create(orderId, { customerId, totalCents })]);
 */
export function defineEvent<TType extends string, TSchema extends z.ZodType>(
  options: DefineEventOptions<TType, TSchema>,
): EventDefinition<TType, z.output<TSchema>> {
  const schemaVersion = options.schemaVersion ?? 1;
  if (!typeName.test(options.type))
    throw new ValidationError(`Invalid event type name "${options.type}"`, 'type');
  if (!Number.isInteger(schemaVersion) || schemaVersion < 1) {
    throw new ValidationError(`schemaVersion of ${options.type} must be a positive integer`, 'schemaVersion');
  }
  const upcasters = options.upcasters ?? {};
  for (let version = 1; version < schemaVersion; version++) {
    if (!upcasters[version]) {
      throw new ValidationError(
        `${options.type} v${schemaVersion} needs an upcaster from version ${version}`,
        'upcasters',
      );
    }
  }
  type Payload = z.output<TSchema>;

  const validate = (payload: unknown, label: string): Payload => {
    const result = options.schema.safeParse(payload);
    if (!result.success) {
      const issue = result.error.issues[0];
      const field = ['payload', ...(issue?.path ?? []).map(String)].join('.');
      throw new ValidationError(`${label}: ${field}: ${issue?.message ?? 'invalid'}`, field);
    }
    return result.data as Payload;
  };

  const upcast = (payload: unknown, fromVersion: number): Payload => {
    if (fromVersion === schemaVersion) return payload as Payload;
    if (fromVersion > schemaVersion || fromVersion < 1) {
      throw new ValidationError(
        `${options.type}: stored schema version ${fromVersion} is unknown to this code (current ${schemaVersion})`,
        'schemaVersion',
      );
    }
    let current = payload;
    for (let version = fromVersion; version < schemaVersion; version++) {
      current = (upcasters[version] as (p: unknown) => unknown)(current);
    }
    return validate(current, `${options.type} upcast from v${fromVersion}`);
  };

  return Object.freeze({
    type: options.type,
    schemaVersion,
    streamType: options.streamType,
    schema: options.schema as unknown as z.ZodType<Payload>,
    upcasters,
    create(
      streamId: string,
      payload: Payload,
      createOptions: NewEventOptions = {},
    ): NewEvent<TType, Payload> {
      const streamType = createOptions.streamType ?? options.streamType;
      if (!streamType || !streamTypeName.test(streamType)) {
        throw new ValidationError(
          `${options.type}: invalid or missing stream type "${streamType ?? ''}"`,
          'streamType',
        );
      }
      if (typeof streamId !== 'string' || streamId.length < 1 || streamId.length > 200) {
        throw new ValidationError(`${options.type}: stream id must be 1 to 200 characters`, 'streamId');
      }
      if (createOptions.id !== undefined && !uuid.test(createOptions.id)) {
        throw new ValidationError(`${options.type}: event id must be a UUID`, 'id');
      }
      const valid = validate(payload, options.type);
      const size = Buffer.byteLength(JSON.stringify(valid) ?? '');
      if (size > MAX_PAYLOAD_BYTES) {
        throw new ValidationError(
          `${options.type}: payload is ${size} bytes; the limit is ${MAX_PAYLOAD_BYTES}`,
          'payload',
        );
      }
      return {
        id: createOptions.id ?? randomUUID(),
        idSupplied: createOptions.id !== undefined,
        type: options.type,
        schemaVersion,
        streamType,
        streamId,
        payload: valid,
        metadata: createOptions.metadata ?? {},
        occurredAt: createOptions.occurredAt,
      };
    },
    parse(payload: unknown, version: number): Payload {
      return version === schemaVersion
        ? validate(payload, `${options.type} v${version}`)
        : upcast(payload, version);
    },
    upcast,
  });
}
