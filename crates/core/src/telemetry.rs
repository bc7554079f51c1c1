//! Logging and tracing for every binary: `tracing` to stderr, and OpenTelemetry spans exported by
//! OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. W3C trace context crosses process
//! boundaries as `traceparent`/`tracestate` in HTTP and Kafka headers.

use std::collections::HashMap;

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{self, Env};

/// Flushes pending spans when dropped at the end of `main`.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Nothing useful to do with a failed flush while exiting; the exporter already logged it.
        let _ = self.provider.shutdown();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("cannot build the OTLP exporter for {endpoint}: {reason}")]
    Exporter { endpoint: String, reason: String },
}

/// Installs the global subscriber. Spans always get OpenTelemetry ids, so trace context propagates
/// even when nothing is exported; with `OTEL_EXPORTER_OTLP_ENDPOINT` set they are also exported.
pub fn init(service_name: &'static str) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service_name).build());
    if let Some(endpoint) = config::optional::<String>(&Env, config::OTLP_ENDPOINT)? {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| TelemetryError::Exporter {
                endpoint,
                reason: e.to_string(),
            })?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    let tracer = provider.tracer(service_name);
    opentelemetry::global::set_tracer_provider(provider.clone());
    // RUST_LOG filters the logs only: spans are traced at INFO whatever the log level, so trace
    // context keeps propagating when logs are quiet.
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")));
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(LevelFilter::INFO);
    // A second init (several services in one test process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    Ok(TelemetryGuard { provider })
}

/// The W3C trace context of the current span, as header name/value pairs.
pub fn current_context_headers() -> HashMap<String, String> {
    let cx = tracing::Span::current().context();
    let mut headers = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut headers));
    headers
}

/// Makes the context carried by `carrier` (HTTP or Kafka headers) the parent of `span`.
pub fn set_parent_from(span: &tracing::Span, carrier: &dyn Extractor) {
    let cx: Context = opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier));
    // Fails only when the span is disabled by the filter, and then there is nothing to link.
    let _ = span.set_parent(cx);
}

/// Header pairs as an OpenTelemetry carrier.
pub struct HeaderPairs<'a>(pub &'a [(String, String)]);

impl Extractor for HeaderPairs<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}
