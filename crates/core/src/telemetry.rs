//! Logging and tracing for every binary: `tracing` to stderr, and OpenTelemetry spans exported by
//! OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. W3C trace context crosses process
//! boundaries as `traceparent`/`tracestate` in HTTP and Kafka headers. With
//! `ORDERFLOW_LOG_FORMAT=json` logs are JSON lines carrying the current span's OpenTelemetry
//! `trace_id` and `span_id`, so a log line can be found from a trace and the other way round.

use std::collections::HashMap;
use std::str::FromStr;

use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{self, Env};

/// `text` (the default: human-readable lines) or `json` (one JSON object per line).
pub const LOG_FORMAT: &str = "ORDERFLOW_LOG_FORMAT";

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err("expected text or json".into()),
        }
    }
}

/// JSON log lines: `timestamp`, `level`, `target`, the event's fields (`message` and the rest)
/// at the top level, the current `span` with its fields, and that span's OpenTelemetry
/// `trace_id` and `span_id` (hex, as Jaeger shows them) when it has them.
pub fn json_logs<S, W>(writer: W) -> json_subscriber::fmt::Layer<S, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let mut layer = json_subscriber::fmt::layer()
        .with_writer(writer)
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false);
    let json = layer.inner_layer_mut();
    json.add_from_extension::<tracing_opentelemetry::OtelData, _, _>("trace_id", |otel| {
        otel.trace_id().map(|id| id.to_string())
    });
    json.add_from_extension::<tracing_opentelemetry::OtelData, _, _>("span_id", |otel| {
        otel.span_id().map(|id| id.to_string())
    });
    layer
}

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

/// Which traces are recorded: OpenTelemetry's `OTEL_TRACES_SAMPLER` (`always_on`, `always_off`,
/// `traceidratio`, `parentbased_always_on` (the default), `parentbased_always_off`,
/// `parentbased_traceidratio`) with `OTEL_TRACES_SAMPLER_ARG`, the ratio from 0 to 1 (default 1).
/// The parent-based samplers follow the caller's decision, so one order's trace is kept or
/// dropped whole across services; set the ratio where traces start (checkout).
pub const TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
pub const TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";

/// The sampler `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` ask for; unlike the SDK,
/// which falls back to sampling everything, a value it does not know is an error.
pub fn sampler(src: &impl config::Source) -> Result<Sampler, config::ConfigError> {
    let ratio = || -> Result<f64, config::ConfigError> {
        let ratio = config::optional::<f64>(src, TRACES_SAMPLER_ARG)?.unwrap_or(1.0);
        if (0.0..=1.0).contains(&ratio) {
            Ok(ratio)
        } else {
            Err(config::ConfigError::Malformed {
                name: TRACES_SAMPLER_ARG,
                value: ratio.to_string(),
                reason: "a ratio from 0 to 1".into(),
            })
        }
    };
    let parent_based = |root: Sampler| Sampler::ParentBased(Box::new(root));
    let name = config::optional::<String>(src, TRACES_SAMPLER)?;
    Ok(match name.as_deref().unwrap_or("parentbased_always_on") {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => parent_based(Sampler::AlwaysOn),
        "parentbased_always_off" => parent_based(Sampler::AlwaysOff),
        "parentbased_traceidratio" => parent_based(Sampler::TraceIdRatioBased(ratio()?)),
        other => {
            return Err(config::ConfigError::Malformed {
                name: TRACES_SAMPLER,
                value: other.to_string(),
                reason: "one of always_on, always_off, traceidratio, parentbased_always_on, \
                         parentbased_always_off, parentbased_traceidratio"
                    .into(),
            })
        }
    })
}

/// Installs the global subscriber. Spans always get OpenTelemetry ids, so trace context propagates
/// even when nothing is exported; with `OTEL_EXPORTER_OTLP_ENDPOINT` set they are also exported.
/// Logs are written as `ORDERFLOW_LOG_FORMAT` says.
pub fn init(service_name: &'static str) -> Result<TelemetryGuard, TelemetryError> {
    let format = config::optional::<LogFormat>(&Env, LOG_FORMAT)?.unwrap_or_default();
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(sampler(&Env)?)
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
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let text_logs = (format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(filter())
    });
    let json_logs =
        (format == LogFormat::Json).then(|| json_logs(std::io::stderr).with_filter(filter()));
    // lapin keeps an INFO span open for its connection's whole life: a trace of its own that
    // says nothing about any order.
    let traces = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_filter(
            Targets::new()
                .with_default(LevelFilter::INFO)
                .with_target("lapin", LevelFilter::OFF),
        );
    // A second init (several services in one test process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(text_logs)
        .with(json_logs)
        .with(traces)
        .try_init();
    Ok(TelemetryGuard { provider })
}

/// The W3C trace context of the current span, as header name/value pairs.
pub fn current_context_headers() -> HashMap<String, String> {
    context_headers(&tracing::Span::current())
}

/// The W3C trace context of `span`, as header name/value pairs: what a request or message sent
/// under that span carries, so the receiver's span becomes its child.
pub fn context_headers(span: &tracing::Span) -> HashMap<String, String> {
    let cx = span.context();
    let mut headers = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut headers));
    headers
}

/// Sends `request` under a client span named `{method} {route}` after OpenTelemetry's HTTP
/// conventions (the route is the URL's template, so names stay few). The request carries the
/// span's trace context, so the peer's spans join the trace; the span records the answer's status
/// (4xx and 5xx mark it failed, as the conventions say for clients) or why there was none.
pub async fn send_traced(
    request: reqwest::RequestBuilder,
    route: &str,
) -> reqwest::Result<reqwest::Response> {
    let (client, request) = request.build_split();
    let mut request = request?;
    let span = tracing::info_span!(
        "http client",
        otel.name = %format!("{} {route}", request.method()),
        otel.kind = "client",
        http.request.method = request.method().as_str(),
        url.full = request.url().as_str(),
        server.address = authority(request.url().as_str()),
        http.response.status_code = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        error.type = tracing::field::Empty,
    );
    for (name, value) in context_headers(&span) {
        if let (Ok(name), Ok(value)) = (
            reqwest::header::HeaderName::try_from(name),
            reqwest::header::HeaderValue::try_from(value),
        ) {
            request.headers_mut().insert(name, value);
        }
    }
    match client.execute(request).instrument(span.clone()).await {
        Ok(response) => {
            let status = response.status().as_u16();
            span.record("http.response.status_code", status);
            if status >= 400 {
                record_error(&span, &status.to_string(), "");
            }
            Ok(response)
        }
        Err(e) => {
            let kind = if e.is_timeout() {
                "timeout"
            } else if e.is_connect() {
                "connect"
            } else {
                "request"
            };
            record_error(&span, kind, &e.to_string());
            Err(e)
        }
    }
}

/// Marks `span` failed: Jaeger shows it red with the description. `kind` goes to `error.type`,
/// a short class of failure (a status code, `timeout`, `poison`, ...).
pub fn record_error(span: &tracing::Span, kind: &str, description: &str) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", kind);
    if !description.is_empty() {
        span.record("otel.status_description", description);
    }
}

/// A producer span for a message sent to `destination` (a Kafka topic, a RabbitMQ queue), named
/// `send {destination}` after OpenTelemetry's messaging conventions. The message carries this
/// span's context ([`context_headers`]), so its consumers' spans are its children.
pub fn producer_span(system: &'static str, destination: &str) -> tracing::Span {
    tracing::info_span!(
        "send",
        otel.name = %format!("send {destination}"),
        otel.kind = "producer",
        messaging.system = system,
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.destination.name = destination,
        messaging.message.id = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
        otel.status_description = tracing::field::Empty,
        error.type = tracing::field::Empty,
    )
}

/// `host:port` of a URL, for `server.address`.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host)
}

/// Makes the context carried by `carrier` (HTTP or Kafka headers) the parent of `span`.
pub fn set_parent_from(span: &tracing::Span, carrier: &dyn Extractor) {
    let cx: Context = opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier));
    // Fails only when the span is disabled by the filter, and then there is nothing to link.
    let _ = span.set_parent(cx);
}

/// Links `span` to the context carried by `carrier`: a batch's span points at each message's
/// trace, since one span cannot have them all as parents.
pub fn add_link_from(span: &tracing::Span, carrier: &dyn Extractor) {
    let cx: Context = opentelemetry::global::get_text_map_propagator(|p| p.extract(carrier));
    let linked = cx.span().span_context().clone();
    if linked.is_valid() {
        span.add_link(linked);
    }
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::TraceContextExt;

    use super::*;

    /// A writer whose output the test reads back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        fn lines(&self) -> Vec<serde_json::Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect()
        }
    }

    /// Runs `f` under the JSON log layer and the OpenTelemetry layer, as `init` installs them.
    fn logged<T>(f: impl FnOnce() -> T) -> (T, Vec<serde_json::Value>) {
        let provider = SdkTracerProvider::builder().build();
        let captured = Captured::default();
        let subscriber = tracing_subscriber::registry()
            .with(json_logs(captured.clone()))
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let result = tracing::subscriber::with_default(subscriber, f);
        (result, captured.lines())
    }

    fn ids(span: &tracing::Span) -> (String, String) {
        let cx = span.context();
        let otel = cx.span();
        let sc = otel.span_context();
        (sc.trace_id().to_string(), sc.span_id().to_string())
    }

    #[test]
    fn json_lines_carry_the_trace_and_span_id_of_the_current_span() {
        let ((trace_id, span_id), lines) = logged(|| {
            tracing::info!("before any span");
            let span = tracing::info_span!("consume", order_id = "o-1");
            let _entered = span.enter();
            tracing::info!(event_id = "e-1", "handled");
            ids(&span)
        });
        assert_ne!(trace_id, opentelemetry::TraceId::INVALID.to_string());
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(lines[0]["message"], "before any span");
        assert!(lines[0].get("trace_id").is_none(), "{}", lines[0]);
        let line = &lines[1];
        assert_eq!(line["trace_id"], trace_id.as_str(), "{line}");
        assert_eq!(line["span_id"], span_id.as_str(), "{line}");
        assert_eq!(line["message"], "handled");
        assert_eq!(line["event_id"], "e-1");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["span"]["order_id"], "o-1");
    }

    #[test]
    fn a_span_continuing_a_remote_trace_logs_that_trace_id() {
        let remote = "4bf92f3577b34da6a3ce929d0e0e4736";
        let headers = vec![(
            "traceparent".to_string(),
            format!("00-{remote}-00f067aa0ba902b7-01"),
        )];
        let (span_id, lines) = logged(|| {
            let span = tracing::info_span!("consume");
            let cx = TraceContextPropagator::new().extract(&HeaderPairs(&headers));
            let _ = span.set_parent(cx);
            let _entered = span.enter();
            tracing::warn!("handler failed; retrying");
            ids(&span).1
        });
        assert_eq!(lines[0]["trace_id"], remote, "{}", lines[0]);
        assert_eq!(lines[0]["span_id"], span_id.as_str());
        assert_ne!(
            span_id, "00f067aa0ba902b7",
            "the consumer's own span, not the sender's"
        );
    }

    fn sampled<const N: usize>(vars: [(&str, &str); N]) -> Result<String, String> {
        sampler(&vars)
            .map(|s| format!("{s:?}"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn sampling_follows_the_opentelemetry_variables_and_refuses_what_it_does_not_know() {
        assert_eq!(sampled([]).unwrap(), "ParentBased(AlwaysOn)");
        assert_eq!(
            sampled([
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25")
            ])
            .unwrap(),
            "ParentBased(TraceIdRatioBased(0.25))"
        );
        assert_eq!(
            sampled([("OTEL_TRACES_SAMPLER", "always_off")]).unwrap(),
            "AlwaysOff"
        );
        let unknown = sampled([("OTEL_TRACES_SAMPLER", "sometimes")]).unwrap_err();
        assert!(
            unknown.contains("OTEL_TRACES_SAMPLER") && unknown.contains("sometimes"),
            "{unknown}"
        );
        let bad_ratio = sampled([
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
        ])
        .unwrap_err();
        assert!(bad_ratio.contains("OTEL_TRACES_SAMPLER_ARG"), "{bad_ratio}");
    }

    #[test]
    fn server_address_is_the_url_authority() {
        assert_eq!(
            authority("http://127.0.0.1:8080/v1/print-jobs"),
            "127.0.0.1:8080"
        );
        assert_eq!(
            authority("https://user:pw@api.example.com?x=1"),
            "api.example.com"
        );
        assert_eq!(authority("smtp.example.com"), "smtp.example.com");
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("TEXT".parse(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
    }
}
