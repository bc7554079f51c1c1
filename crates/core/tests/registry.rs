//! The optional Confluent framing against a real registry that speaks the Confluent API (the
//! stack's Apicurio Registry): what a producer registers and writes, and a consumer reading both
//! framings; a Confluent message it cannot resolve is dead-lettered with the reason, or retried
//! while the registry is unreachable.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use orderflow_core::codec::{self, fingerprint_of};
use orderflow_core::event::ORDER_PLACED_SCHEMAS;
use orderflow_core::headers::{REASON, RETRY_REASON};
use orderflow_core::registry::{self, SchemaRegistry};
use orderflow_core::{Delivery, Handler, HandlerError, OrderPlaced};
use orderflow_testkit::{self as kit, sample_order_placed, ConsumerFixture};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(40);

async fn get(url: String) -> Value {
    let response = reqwest::get(&url)
        .await
        .unwrap_or_else(|e| panic!("{url}: {e} (is the stack up? scripts/stack.sh up)"));
    assert!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// `order` as a producer with the registry writes it to `topic`.
async fn framed(topic: &str, order: &OrderPlaced) -> Vec<u8> {
    SchemaRegistry::new(kit::schema_registry_url())
        .confluent_frame(topic, &ORDER_PLACED_SCHEMAS, &order.encode().unwrap())
        .await
        .unwrap()
}

/// Records the orders it is given.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<OrderPlaced>>>);

impl Handler for Recorder {
    type Event = OrderPlaced;

    async fn handle(&self, order: &OrderPlaced, _: &Delivery) -> Result<(), HandlerError> {
        self.0.lock().unwrap().push(order.clone());
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_producer_registers_its_schema_and_a_consumer_reads_both_framings() {
    let fixture = ConsumerFixture::new("registry", 1).await;
    let registry = SchemaRegistry::new(kit::schema_registry_url());
    let (plain, framed) = (sample_order_placed("plain"), sample_order_placed("framed"));
    let bytes = registry
        .confluent_frame(
            &fixture.topic,
            &ORDER_PLACED_SCHEMAS,
            &framed.encode().unwrap(),
        )
        .await
        .unwrap();

    // What a Confluent reader sees: a zero, the id the subject's latest version has, the body.
    let subject = registry::subject(&fixture.topic);
    let latest = get(format!(
        "{}/subjects/{subject}/versions/latest",
        kit::schema_registry_url()
    ))
    .await;
    let (id, body) = registry::confluent_parts(&bytes).expect("Confluent framing");
    assert_eq!(bytes[0], 0);
    assert_eq!(Some(u64::from(id)), latest["id"].as_u64(), "{latest}");
    let registered = get(format!("{}/schemas/ids/{id}", kit::schema_registry_url())).await;
    let schema = apache_avro::Schema::parse_str(registered["schema"].as_str().unwrap()).unwrap();
    assert_eq!(
        fingerprint_of(&schema),
        ORDER_PLACED_SCHEMAS.latest().fingerprint,
        "the registry holds the schema we write"
    );
    assert_eq!(
        &framed.encode().unwrap()[10..],
        body,
        "the same Avro body under either header"
    );
    // Registering again gives the same id, from the registry or from the cache.
    let again = SchemaRegistry::new(kit::schema_registry_url())
        .confluent_frame(
            &fixture.topic,
            &ORDER_PLACED_SCHEMAS,
            &framed.encode().unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(again, bytes);

    kit::produce(
        &fixture.topic,
        &[
            ("plain".into(), plain.encode().unwrap()),
            ("framed".into(), bytes),
        ],
    )
    .await;
    let mut settings = fixture.consumer_settings();
    settings.schema_registry = Some(registry);
    let recorder = Recorder::default();
    let (stop, task) = kit::spawn_runtime(settings, recorder.clone());
    assert!(
        kit::eventually(WAIT, || async { recorder.0.lock().unwrap().len() == 2 }).await,
        "both framings decoded"
    );
    let _ = stop.send(());
    task.await.unwrap();
    assert_eq!(*recorder.0.lock().unwrap(), vec![plain, framed]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_written_with_an_older_registered_schema_is_read_into_the_newest() {
    let registry = SchemaRegistry::new(kit::schema_registry_url());
    let subject = kit::unique("older-value");
    let v1 = &ORDER_PLACED_SCHEMAS.versions()[0];
    let id = registry
        .register(&subject, v1.source, v1.fingerprint)
        .await
        .unwrap();
    let writer = SchemaRegistry::new(kit::schema_registry_url())
        .schema(id)
        .await
        .unwrap();
    assert_eq!(fingerprint_of(&writer), v1.fingerprint);
    let order = sample_order_placed("older");
    // The v1 body of an order: the newest value written with v1's schema.
    let value = apache_avro::to_value(&order)
        .unwrap()
        .resolve(&v1.schema)
        .unwrap();
    let body = apache_avro::to_avro_datum(&v1.schema, value).unwrap();
    let decoded: OrderPlaced =
        codec::decode_with_writer(&ORDER_PLACED_SCHEMAS, &writer, &body).unwrap();
    assert_eq!(decoded.order_id, order.order_id);
    assert_eq!(decoded.totals, order.totals);
}

#[tokio::test(flavor = "multi_thread")]
async fn confluent_messages_it_cannot_resolve_are_dead_lettered_with_the_reason() {
    let fixture = ConsumerFixture::new("registry-dlq", 1).await;
    let order = sample_order_placed("unresolvable");
    let message = framed(&fixture.topic, &order).await;
    let mut unknown_id = vec![0, 0x7f, 0xff, 0xff, 0xfe];
    unknown_id.extend_from_slice(&message[5..]);
    kit::produce(
        &fixture.topic,
        &[
            ("unknown-id".into(), unknown_id),
            ("known-id".into(), message),
        ],
    )
    .await;
    let mut settings = fixture.consumer_settings();
    settings.schema_registry = Some(SchemaRegistry::new(kit::schema_registry_url()));
    let recorder = Recorder::default();
    let (stop, task) = kit::spawn_runtime(settings, recorder.clone());
    let dead = kit::read_topic(&fixture.dlq, 1, WAIT).await;
    assert!(
        kit::eventually(WAIT, || async { recorder.0.lock().unwrap().len() == 1 }).await,
        "the message with a known id is read"
    );
    let _ = stop.send(());
    task.await.unwrap();
    let reason = kit::header(&dead[0], REASON).unwrap();
    assert!(
        reason.starts_with("poison: schema id 2147483646") && reason.contains("refused"),
        "{reason}"
    );

    let fixture = ConsumerFixture::new("registry-none", 1).await;
    let message = framed(&fixture.topic, &order).await;
    kit::produce(&fixture.topic, &[("no-registry".into(), message)]).await;
    let (stop, task) = kit::spawn_runtime(fixture.consumer_settings(), Recorder::default());
    let dead = kit::read_topic(&fixture.dlq, 1, WAIT).await;
    let _ = stop.send(());
    task.await.unwrap();
    let reason = kit::header(&dead[0], REASON).unwrap();
    assert!(
        reason.contains("Confluent-framed") && reason.contains("ORDERFLOW_SCHEMA_REGISTRY_URL"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_registry_retries_the_event_instead_of_dead_lettering_it() {
    let fixture = ConsumerFixture::new("registry-down", 1).await;
    let order = sample_order_placed("registry-down");
    let message = framed(&fixture.topic, &order).await;
    kit::produce(&fixture.topic, &[("registry-down".into(), message)]).await;
    let mut settings = fixture.consumer_settings();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/apis/ccompat/v7", closed.local_addr().unwrap());
    drop(closed);
    settings.schema_registry = Some(SchemaRegistry::new(url));
    let (stop, task) = kit::spawn_runtime(settings, Recorder::default());
    let parked = kit::read_topic(&fixture.retry, 1, WAIT).await;
    let _ = stop.send(());
    task.await.unwrap();
    let reason = kit::header(&parked[0], RETRY_REASON).unwrap();
    assert!(reason.contains("unavailable"), "{reason}");
    assert!(
        kit::read_topic(&fixture.dlq, 1, Duration::from_secs(1))
            .await
            .is_empty(),
        "not dead-lettered while the registry may come back"
    );
}
