//! One order's trace in Jaeger, across the real service binaries: the checkout request, the
//! outbox's send to Kafka, each consumer's processing, and their calls out (supplier HTTP,
//! RabbitMQ, SMTP, SQL), with the parent/child links and messaging attributes an operator reads
//! in Jaeger. Needs the stack's Jaeger (`scripts/stack.sh up`) and the service binaries
//! (`cargo build --bins`; `cargo test --workspace` builds them).

use std::collections::BTreeMap;
use std::time::Duration;

use orderflow_faults::pipeline::{Pipeline, Servers, CONSUMERS};
use orderflow_faults::process::wait_for_port;
use orderflow_simulators::storefront::sample_order;
use serde_json::Value;

/// A span as Jaeger's query API returns it, with its service and tags flattened.
#[derive(Debug, Clone)]
struct Span {
    id: String,
    parent: Option<String>,
    service: String,
    name: String,
    tags: BTreeMap<String, Value>,
}

impl Span {
    fn tag(&self, key: &str) -> Option<String> {
        self.tags.get(key).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }
}

struct Trace(Vec<Span>);

impl Trace {
    fn parse(answer: &Value) -> Self {
        let Some(trace) = answer["data"].get(0) else {
            return Self(Vec::new());
        };
        let spans = trace["spans"].as_array().cloned().unwrap_or_default();
        Self(
            spans
                .iter()
                .map(|s| Span {
                    id: s["spanID"].as_str().unwrap_or_default().to_string(),
                    parent: s["references"].as_array().and_then(|refs| {
                        refs.iter()
                            .find(|r| r["refType"] == "CHILD_OF")
                            .and_then(|r| r["spanID"].as_str())
                            .map(str::to_string)
                    }),
                    service: trace["processes"][s["processID"].as_str().unwrap_or_default()]
                        ["serviceName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    name: s["operationName"].as_str().unwrap_or_default().to_string(),
                    tags: s["tags"]
                        .as_array()
                        .map(|tags| {
                            tags.iter()
                                .map(|t| {
                                    (
                                        t["key"].as_str().unwrap_or_default().to_string(),
                                        t["value"].clone(),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect(),
        )
    }

    fn find(&self, service: &str, name: &str) -> Vec<&Span> {
        self.0
            .iter()
            .filter(|s| s.service == service && s.name == name)
            .collect()
    }

    fn one(&self, service: &str, name: &str) -> &Span {
        let found = self.find(service, name);
        assert_eq!(
            found.len(),
            1,
            "one span {name:?} of {service} expected in\n{}",
            self.describe()
        );
        found[0]
    }

    /// Whether `span` descends from `ancestor` (within the same trace).
    fn descends(&self, span: &Span, ancestor: &Span) -> bool {
        let mut parent = span.parent.clone();
        while let Some(id) = parent {
            if id == ancestor.id {
                return true;
            }
            parent = self
                .0
                .iter()
                .find(|s| s.id == id)
                .and_then(|s| s.parent.clone());
        }
        false
    }

    fn descendants<'a>(&'a self, ancestor: &'a Span) -> impl Iterator<Item = &'a Span> + 'a {
        self.0.iter().filter(move |s| self.descends(s, ancestor))
    }

    fn describe(&self) -> String {
        self.0
            .iter()
            .map(|s| format!("  {} {} ({} <- {:?})", s.service, s.name, s.id, s.parent))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn jaeger_query_url() -> String {
    std::env::var("ORDERFLOW_JAEGER_QUERY_URL").unwrap_or_else(|_| "http://127.0.0.1:16686".into())
}

fn otlp_endpoint() -> String {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:4318".into())
}

/// Asks Jaeger for the trace until `complete` holds for it or a minute passed; the services
/// export in batches, each on its own schedule.
async fn wait_for_trace(trace_id: &str, complete: impl Fn(&Trace) -> bool) -> Trace {
    let http = reqwest::Client::new();
    let url = format!("{}/api/traces/{trace_id}", jaeger_query_url());
    let mut trace = Trace(Vec::new());
    for _ in 0..120 {
        if let Ok(response) = http.get(&url).send().await {
            if response.status().is_success() {
                trace = Trace::parse(&response.json().await.expect("Jaeger answers JSON"));
                if complete(&trace) {
                    return trace;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    trace
}

/// The services' environment for tracing: every trace kept, exported to the stack's Jaeger.
fn trace_env() -> Vec<(&'static str, String)> {
    vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint()),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on".into()),
        // Export every half second rather than every five, so the test waits less.
        ("OTEL_BSP_SCHEDULE_DELAY", "500".into()),
    ]
}

async fn start_pipeline(scenario: &str) -> Pipeline {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-traces");
    Pipeline::start(&Servers::stack(dir), scenario, &trace_env()).await
}

fn random_hex(bytes: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..bytes * 2].to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn one_order_is_one_trace_from_the_checkout_request_to_every_effect() {
    let pipeline = start_pipeline("traces").await;
    let (order, total_minor) = sample_order(&pipeline.run, 0);
    let (trace_id, storefront_span) = place_traced(&pipeline, &order, total_minor).await;

    let (orders, run) = (pipeline.orders_topic.clone(), pipeline.run.clone());
    let trace = wait_for_trace(&trace_id, |t| complete(t, &orders, &storefront_span)).await;
    let unclean = pipeline.stop();
    assert!(unclean.is_empty(), "{unclean:?}");

    let request = trace.one("checkout", "POST /v1/orders");
    assert_eq!(request.parent.as_deref(), Some(storefront_span.as_str()));
    assert_eq!(request.tag("span.kind").as_deref(), Some("server"));
    assert_eq!(
        request.tag("http.response.status_code").as_deref(),
        Some("201")
    );
    let payment = trace.one("checkout", "GET /v1/payments/{reference}");
    assert_eq!(payment.parent.as_ref(), Some(&request.id));
    assert_eq!(payment.tag("span.kind").as_deref(), Some("client"));
    let insert = trace.one("checkout", "INSERT orders");
    assert_eq!(insert.parent.as_ref(), Some(&request.id));
    assert_eq!(insert.tag("db.system.name").as_deref(), Some("postgresql"));
    // The outbox relay sends later, from another task, yet continues the request's trace.
    let send = trace.one("checkout", &format!("send {orders}"));
    assert_eq!(send.parent.as_ref(), Some(&request.id));
    assert_eq!(send.tag("span.kind").as_deref(), Some("producer"));
    assert_eq!(send.tag("messaging.system").as_deref(), Some("kafka"));

    assert_consumers_continue(&trace, send, &run, &orders);
}

/// Each consumer's processing of the order is a child of the outbox's send, with the messaging
/// attributes and its SQL, and the calls out (supplier HTTP, RabbitMQ and the mailer's SMTP)
/// stay in the order's trace.
fn assert_consumers_continue(trace: &Trace, send: &Span, run: &str, orders: &str) {
    let queue = format!("orderflow.emails.{run}");
    for consumer in CONSUMERS {
        let process = trace.one(consumer, &format!("process {orders}"));
        assert_eq!(process.parent.as_ref(), Some(&send.id), "{consumer}");
        assert_eq!(process.tag("span.kind").as_deref(), Some("consumer"));
        assert_eq!(process.tag("messaging.system").as_deref(), Some("kafka"));
        assert_eq!(
            process.tag("messaging.destination.name").as_deref(),
            Some(orders)
        );
        assert_eq!(
            process.tag("messaging.consumer.group.name"),
            Some(format!("{consumer}-{run}"))
        );
        assert!(process.tag("messaging.destination.partition.id").is_some());
        assert!(process.tag("messaging.kafka.offset").is_some());
        // Handled alone, its SQL is under its span; handled in a run, the run's SQL is in the
        // run's own trace, linked to this one.
        if process.tag("messaging.batch.message_count").is_none() {
            assert!(
                trace
                    .descendants(process)
                    .any(|s| s.tag("db.system.name").as_deref() == Some("postgresql")),
                "{consumer} has no SQL span under its processing:\n{}",
                trace.describe()
            );
        }
    }

    let dispatch = trace.one("supplier-dispatch", &format!("process {orders}"));
    let print_jobs = trace.find("supplier-dispatch", "POST /v1/print-jobs");
    assert!(!print_jobs.is_empty());
    for job in print_jobs {
        assert!(trace.descends(job, dispatch));
        assert_eq!(job.tag("span.kind").as_deref(), Some("client"));
        assert_eq!(job.tag("http.response.status_code").as_deref(), Some("201"));
    }

    let notify = trace.one("notifications", &format!("process {orders}"));
    let publish = trace.one("notifications", &format!("send {queue}"));
    assert_eq!(publish.parent.as_ref(), Some(&notify.id));
    assert_eq!(publish.tag("messaging.system").as_deref(), Some("rabbitmq"));
    let deliveries = trace.find("mailer", &format!("process {queue}"));
    assert!(!deliveries.is_empty(), "{}", trace.describe());
    for delivery in &deliveries {
        assert_eq!(delivery.parent.as_ref(), Some(&publish.id));
        assert!(
            trace
                .descendants(delivery)
                .any(|s| s.name == "SMTP send" && s.tag("span.kind").as_deref() == Some("client")),
            "no SMTP span under the mailer's delivery:\n{}",
            trace.describe()
        );
    }
}

/// Whether every consumer processed the order, its e-mails and print jobs went out, and every
/// span's parent is in as well: a span is exported when it ends, after its children, so the
/// mailer's delivery can arrive a moment after the SMTP send under it. `root` is the span the
/// trace started from outside (the storefront's), never exported.
fn complete(trace: &Trace, orders: &str, root: &str) -> bool {
    CONSUMERS
        .iter()
        .all(|c| !trace.find(c, &format!("process {orders}")).is_empty())
        && !trace.find("mailer", "SMTP send").is_empty()
        && !trace
            .find("supplier-dispatch", "POST /v1/print-jobs")
            .is_empty()
        && trace.0.iter().all(|s| {
            s.parent
                .as_deref()
                .is_none_or(|p| p == root || trace.0.iter().any(|parent| parent.id == p))
        })
}

/// Places `order` with a trace started by a storefront span; returns (trace id, that span).
async fn place_traced(pipeline: &Pipeline, order: &Value, total_minor: i64) -> (String, String) {
    pipeline.payments.set_payment(
        order["payment"]["reference"].as_str().unwrap(),
        "succeeded",
        total_minor,
        order["currency"].as_str().unwrap(),
    );
    // The storefront's own span: the trace starts there, as it would with a traced web shop.
    let (trace_id, storefront_span) = (random_hex(16), random_hex(8));
    let answer = reqwest::Client::new()
        .post(format!("{}/v1/orders", pipeline.checkout_url))
        .header("traceparent", format!("00-{trace_id}-{storefront_span}-01"))
        .json(order)
        .send()
        .await
        .expect("checkout answers");
    assert_eq!(answer.status(), 201, "{}", answer.text().await.unwrap());
    (trace_id, storefront_span)
}

/// Consumers that write a run of events at once still give each order one whole trace: the
/// orders wait on the topic before the consumers start, so they come to them in runs.
#[tokio::test(flavor = "multi_thread")]
async fn orders_handled_in_runs_keep_one_trace_each() {
    const ORDERS: usize = 40;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-traces");
    let mut pipeline = Pipeline::prepare(&Servers::stack(dir), "traces_runs", &trace_env()).await;
    pipeline.start_service("checkout");
    pipeline.start_service("mailer");
    let port = pipeline
        .checkout_url
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait_for_port(port, Duration::from_secs(60)).await);
    let mut placed = Vec::new();
    for n in 0..ORDERS {
        let (order, total_minor) = sample_order(&pipeline.run, n);
        placed.push(place_traced(&pipeline, &order, total_minor).await);
    }
    let on_topic =
        orderflow_testkit::read_topic(&pipeline.orders_topic, ORDERS, Duration::from_secs(60))
            .await;
    assert_eq!(on_topic.len(), ORDERS);
    for consumer in CONSUMERS {
        pipeline.start_service(consumer);
    }

    let (orders, run) = (pipeline.orders_topic.clone(), pipeline.run.clone());
    let mut traces = Vec::new();
    for (trace_id, storefront_span) in &placed {
        traces.push(wait_for_trace(trace_id, |t| complete(t, &orders, storefront_span)).await);
    }
    let unclean = pipeline.stop();
    assert!(unclean.is_empty(), "{unclean:?}");
    for trace in &traces {
        let send = trace.one("checkout", &format!("send {orders}"));
        assert_consumers_continue(trace, send, &run, &orders);
    }
    // The batching consumers did take runs, or this test proved nothing about them.
    for consumer in CONSUMERS.iter().filter(|c| **c != "supplier-dispatch") {
        let largest = traces
            .iter()
            .filter_map(|t| {
                t.one(consumer, &format!("process {orders}"))
                    .tag("messaging.batch.message_count")
            })
            .filter_map(|n| n.parse::<usize>().ok())
            .max();
        assert!(
            largest.is_some_and(|n| n > 1),
            "{consumer} handled no run of orders: {largest:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_lettered_event_s_span_records_the_error() {
    let pipeline = start_pipeline("traces_dlq").await;
    let (trace_id, sender) = (random_hex(16), random_hex(8));
    let traceparent = format!("00-{trace_id}-{sender}-01");
    orderflow_testkit::produce_with_headers(
        &pipeline.orders_topic,
        "not-an-order",
        b"not avro at all",
        &[("traceparent", traceparent.as_str())],
    )
    .await;
    let name = format!("process {}", pipeline.orders_topic);
    let trace = wait_for_trace(&trace_id, |t| {
        CONSUMERS.iter().all(|c| !t.find(c, &name).is_empty())
    })
    .await;
    let unclean = pipeline.stop();
    assert!(unclean.is_empty(), "{unclean:?}");
    for consumer in CONSUMERS {
        let process = trace.one(consumer, &name);
        assert_eq!(process.parent.as_deref(), Some(sender.as_str()));
        assert_eq!(
            process.tag("otel.status_code").as_deref(),
            Some("ERROR"),
            "{consumer}: {process:?}"
        );
        assert_eq!(process.tag("error.type").as_deref(), Some("poison"));
        assert!(
            process
                .tag("otel.status_description")
                .is_some_and(|d| d.contains("single-object")),
            "{consumer}: the reason is on the span: {process:?}"
        );
    }
}
