import {
  context,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';

// The W3C propagator is used directly rather than through the global `propagation` API: without an
// OpenTelemetry SDK the global propagator is a no-op, and Postbox must carry trace context through the log
// whether or not the application registered one.
const w3c = new W3CTraceContextPropagator();
const tracer = trace.getTracer('postbox');

/**
 * Runs `fn` in a span that continues the trace of `parentTraceparent` (the request that appended the event
 * being handled). `fn` receives the traceparent to store on events it appends, so the trace continues
 * through the next handler too. Without an SDK the span is non-recording and the trace id (and parent span
 * id) carry through unchanged; with one, the handler gets a real child span.
 */
export async function withHandlerSpan<T>(
  name: string,
  parentTraceparent: string | undefined,
  attributes: Record<string, string>,
  fn: (traceparent: string | undefined) => Promise<T>,
): Promise<T> {
  const parent = parentTraceparent
    ? w3c.extract(ROOT_CONTEXT, { traceparent: parentTraceparent }, defaultTextMapGetter)
    : ROOT_CONTEXT;
  const span = tracer.startSpan(name, { kind: SpanKind.CONSUMER, attributes }, parent);
  const active = trace.setSpan(parent, span);
  const carrier: Record<string, string> = {};
  w3c.inject(active, carrier, defaultTextMapSetter);
  try {
    return await context.with(active, () => fn(carrier.traceparent));
  } catch (error) {
    span.recordException(error as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
    throw error;
  } finally {
    span.end();
  }
}
