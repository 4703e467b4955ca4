/**
 * The OpenTelemetry SDK, set up only when spans are exported (OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT). The provider is this process's own and is not registered as the
 * global one: the platform passes its tracer explicitly, and installs no context manager (see tracing.ts).
 */
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, NodeTracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { Config } from '../config';
import { RandomIds } from './traceparent';
import { EventTraceIds, Tracing } from './tracing';

/** The instrumentation scope named on every span. */
const SCOPE = 'event-trigger-platform';

/** Tracing as configured: spans exported over OTLP/HTTP in batches, or none (traceparents only). */
export function tracingFromConfig(config: Pick<Config, 'otelTracesEndpoint' | 'otelExporterHeaders' | 'otelServiceName'>): Tracing {
  if (!config.otelTracesEndpoint) return new Tracing(null);
  const exporter = new OTLPTraceExporter({ url: config.otelTracesEndpoint, headers: { ...config.otelExporterHeaders } });
  return recordingTracing(new BatchSpanProcessor(exporter), config.otelServiceName);
}

/** Tracing that records every span through `processor` (the tests give an in-memory exporter's). */
export function recordingTracing(processor: SpanProcessor, serviceName: string): Tracing {
  const ids = new EventTraceIds(new RandomIds());
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: serviceName }),
    idGenerator: ids,
    spanProcessors: [processor],
  });
  return new Tracing({ tracer: provider.getTracer(SCOPE), ids, shutdown: () => provider.shutdown() });
}
