//! A relay taking over after an interruption does not publish again what Kafka already has:
//! the rows a previous relay sent just before it died, with their "published" mark lost. With a
//! schema registry, the relay sends what the outbox holds in Confluent's framing. A message's
//! timestamp is when its order was accepted, however long it waited in the outbox.

use std::time::Duration;

use checkout::relay::OUTBOX_ID;
use orderflow_core::codec::{self, fingerprint_of};
use orderflow_core::event::ORDER_PLACED_SCHEMAS;
use orderflow_core::registry::{confluent_parts, SchemaRegistry};
use orderflow_core::OrderPlaced;
use orderflow_testkit::{eventually, header, read_topic, unique};
use rdkafka::Message;
use sqlx::PgPool;

use crate::common::{expected_total, order_request, spawn_app, spawn_app_with_registry, TestApp};

/// Waits until `n` outbox rows are marked published.
async fn published(pool: &PgPool, n: i64) -> bool {
    eventually(Duration::from_secs(30), || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM outbox WHERE published_at IS NOT NULL")
            .fetch_one(pool)
            .await
            .unwrap()
            == n
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_kafka_already_has_are_not_published_again_after_a_takeover() {
    let app = spawn_app().await;
    let run = unique("relay");
    for n in 0..4 {
        let response = app.place_paid(&order_request(&format!("{run}-{n}"))).await;
        assert_eq!(response.status(), 201);
    }
    assert!(app.wait_published(4).await);
    let TestApp {
        checkout,
        settings,
        pool,
        payments,
        topic,
        http,
        ..
    } = app;
    checkout.stop().await;

    // What a relay that died between Kafka's acknowledgement and its UPDATE leaves behind: two
    // rows on the topic but still pending in the outbox.
    let lost: Vec<i64> = sqlx::query_scalar(
        "UPDATE outbox SET published_at = NULL
         WHERE id IN (SELECT id FROM outbox ORDER BY id DESC LIMIT 2) RETURNING id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(lost.len(), 2);

    let restarted = checkout::start(settings, pool.clone()).await.unwrap();
    assert!(
        published(&pool, 4).await,
        "the two rows are marked published"
    );
    // The new relay goes on publishing new orders.
    let late = order_request(&format!("{run}-late"));
    payments.set_payment(
        late["payment"]["reference"].as_str().unwrap(),
        "succeeded",
        expected_total(&late),
        "EUR",
    );
    let response = http
        .post(format!("http://{}/v1/orders", restarted.addr))
        .json(&late)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert!(published(&pool, 5).await, "every row is marked published");

    let published = read_topic(&topic, 6, Duration::from_secs(5)).await;
    let mut rows: Vec<String> = published
        .iter()
        .map(|m| header(m, OUTBOX_ID).expect("each message names its outbox row"))
        .collect();
    rows.sort();
    rows.dedup();
    assert_eq!(
        (published.len(), rows.len()),
        (5, 5),
        "five orders, each on the topic once"
    );
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_schema_registry_orders_are_sent_in_confluent_framing() {
    let registry = SchemaRegistry::new(orderflow_testkit::schema_registry_url());
    let app = spawn_app_with_registry(registry.clone()).await;
    let run = unique("framed");
    let ids: Vec<String> = (0..3).map(|n| format!("{run}-{n}")).collect();
    for id in &ids {
        assert_eq!(app.place_paid(&order_request(id)).await.status(), 201);
    }
    assert!(app.wait_published(3).await);
    // The outbox keeps the single-object bytes; only what is sent is re-framed.
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT payload FROM outbox")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert!(stored.iter().all(|p| p.starts_with(&[0xC3, 0x01])));

    let messages = read_topic(&app.topic, 3, Duration::from_secs(30)).await;
    let mut sent = Vec::new();
    for m in &messages {
        let payload = rdkafka::Message::payload(m).unwrap();
        let (id, body) = confluent_parts(payload).expect("Confluent framing");
        // What a Confluent deserializer does: the writer schema by id, from the registry.
        let writer = SchemaRegistry::new(orderflow_testkit::schema_registry_url())
            .schema(id)
            .await
            .unwrap();
        assert_eq!(
            fingerprint_of(&writer),
            ORDER_PLACED_SCHEMAS.latest().fingerprint
        );
        let order: OrderPlaced =
            codec::decode_with_writer(&ORDER_PLACED_SCHEMAS, &writer, body).unwrap();
        sent.push(order.order_id);
    }
    sent.sort();
    assert_eq!(sent, ids);
    app.checkout.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_carries_the_time_its_order_was_accepted_not_sent() {
    let app = spawn_app().await;
    let TestApp {
        checkout,
        settings,
        pool,
        topic,
        ..
    } = app;
    checkout.stop().await;
    // An order accepted while no relay runs (as during a Kafka outage) waits in the outbox.
    let order_id = unique("waited");
    let request: checkout::order::OrderRequest =
        serde_json::from_value(order_request(&order_id)).unwrap();
    let event = orderflow_testkit::sample_order_placed(&order_id);
    checkout::store::insert_order(
        &pool,
        &request,
        &event,
        &event.encode().unwrap(),
        &topic,
        &serde_json::json!({}),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let restarted = checkout::start(settings, pool.clone()).await.unwrap();
    let message = read_topic(&topic, 1, Duration::from_secs(30)).await;
    restarted.stop().await;
    let (created_ms, published_ms): (i64, i64) = sqlx::query_as(
        "SELECT (extract(epoch FROM created_at) * 1000)::bigint,
                (extract(epoch FROM published_at) * 1000)::bigint
         FROM outbox WHERE order_id = $1",
    )
    .bind(&order_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(published_ms - created_ms >= 1500);
    assert_eq!(
        message[0].timestamp(),
        rdkafka::Timestamp::CreateTime(created_ms)
    );
}
