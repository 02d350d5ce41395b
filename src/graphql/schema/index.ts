import type { GraphQLSchema } from 'graphql';
import { builder } from '../builder.ts';
import './scalars.ts';
import './errors.ts';
import './event.ts';
import './product.ts';
import './order.ts';
import './consumer.ts';
import './viewer.ts';
import './destination.ts';
import './contract.ts';
import './subscription.ts';

builder.queryType({ description: 'Reads: orders, the catalogue, the event log and the consumers.' });
builder.mutationType({
  description:
    "Writes. Each commits its rows and events in one transaction, tagged with the request's correlation id " +
    '(`x-correlation-id` header, or generated). Expected failures come back as typed results.',
});

/** The API's schema (built once). */
export const schema: GraphQLSchema = builder.toSchema();
