import {
  ConcurrencyError,
  ConflictError,
  IllegalStateError,
  NotFoundError,
  type PostboxError,
  ValidationError,
} from '../../engine/index.ts';
import { builder } from '../builder.ts';

/** Every expected failure a mutation can return: the result unions' members share this interface. */
export const ErrorInterface = builder.interfaceRef<PostboxError>('Error').implement({
  description: 'An expected failure: nothing was written. `code` is stable; `message` is for people.',
  fields: (t) => ({
    message: t.exposeString('message'),
    code: t.exposeString('code'),
  }),
});

builder.objectType(ValidationError, {
  name: 'ValidationError',
  description:
    'The input was rejected (bad value, unknown SKU, empty order…). `field` names the offending input.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof ValidationError,
  fields: (t) => ({
    field: t.exposeString('field', {
      nullable: true,
      description: 'Dotted path of the bad input, e.g. `lines.0.quantity`.',
    }),
  }),
});

builder.objectType(NotFoundError, {
  name: 'NotFoundError',
  description: 'The order or product does not exist.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof NotFoundError,
  fields: () => ({}),
});

builder.objectType(IllegalStateError, {
  name: 'IllegalStateError',
  description: 'The order is in a state that does not allow this (e.g. cancelling a shipped order).',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof IllegalStateError,
  fields: () => ({}),
});

builder.objectType(ConcurrencyError, {
  name: 'ConcurrencyError',
  description: 'The order changed since the version you based this on; read it again and decide again.',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof ConcurrencyError,
  fields: (t) => ({
    expectedVersion: t.exposeInt('expectedVersion', { nullable: true }),
    actualVersion: t.exposeInt('actualVersion', { nullable: true }),
  }),
});

builder.objectType(ConflictError, {
  name: 'ConflictError',
  description: 'The name is taken (by a destination or a consumer).',
  interfaces: [ErrorInterface],
  isTypeOf: (value) => value instanceof ConflictError,
  fields: (t) => ({
    field: t.exposeString('field', { nullable: true, description: 'The colliding input, e.g. `name`.' }),
  }),
});

/** The error classes, for `errors: { types }`. */
export const ERROR_TYPES = {
  ValidationError,
  NotFoundError,
  IllegalStateError,
  ConcurrencyError,
  ConflictError,
} as const;
