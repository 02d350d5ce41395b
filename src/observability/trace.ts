import { defaultTextMapGetter, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

// The W3C propagator is used directly rather than through the global `propagation` API: without an
// OpenTelemetry SDK the global propagator is a no-op, and Postbox must carry trace context through the log
// whether or not the application registered one.
const w3c = new W3CTraceContextPropagator();

/** Reads a W3C `traceparent` (and `tracestate`) from request headers; undefined if absent or malformed. */
export function traceparentFrom(headers: { get(name: string): string | null }): string | undefined {
  const carrier: Record<string, string> = {};
  const traceparent = headers.get('traceparent');
  if (!traceparent) return undefined;
  carrier.traceparent = traceparent;
  const extracted = w3c.extract(ROOT_CONTEXT, carrier, defaultTextMapGetter);
  return trace.getSpanContext(extracted) ? traceparent : undefined;
}
