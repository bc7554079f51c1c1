//! The checkout API against the real stack: validation, payment verification, idempotent
//! acceptance and the outbox relay to Kafka.

use std::time::Duration;

use crate::common::{expected_total, order_request, spawn_app};
use orderflow_core::{Event, OrderPlaced};
use rdkafka::Message;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread")]
async fn accepted_order_is_published_once_with_its_trace_context() {
    let app = spawn_app().await;
    let order = order_request("ord-1");
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    app.payments
        .set_payment("pay-ord-1", "succeeded", 6866, "EUR");
    let response = app
        .http
        .post(format!("{}/v1/orders", app.url))
        .header("traceparent", traceparent)
        .json(&order)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["order_id"], "ord-1");
    assert_eq!(body["status"], "accepted");

    let messages = orderflow_testkit::read_topic(&app.topic, 1, Duration::from_secs(30)).await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.key(), Some(&b"ord-1"[..]));
    let event = OrderPlaced::decode(message.payload().unwrap()).unwrap();
    assert_eq!(event.order_id, "ord-1");
    assert_eq!(event.totals.subtotal_minor, 5297);
    assert_eq!(event.totals.tax_minor, 840 + 130 + 104);
    assert_eq!(event.totals.total_minor, expected_total(&order));
    assert_eq!(event.payment.amount_minor, 6866);
    assert_eq!(event.lines[1].product.print_technique, "sublimation");
    assert_eq!(event.sales_agent.unwrap().id, "agent-7");
    let carried = orderflow_testkit::header(message, "traceparent").expect("traceparent header");
    assert!(
        carried.starts_with("00-0af7651916cd43dd8448eb211c80319c-"),
        "the request's trace continues in Kafka: {carried}"
    );

    assert!(app.wait_published(1).await);
    let view: Value = app.get_order("ord-1").await.json().await.unwrap();
    assert_eq!(view["published"], true);
    assert_eq!(view["event_id"], event.event_id.as_str());
    assert_eq!(view["total_minor"], 6866);
    assert_eq!(app.get_order("nope").await.status(), 404);
    app.checkout.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_order_twice_is_accepted_once() {
    let app = spawn_app().await;
    let order = order_request("ord-twice");
    assert_eq!(app.place_paid(&order).await.status(), 201);
    let again = app.post_order(&order).await;
    assert_eq!(again.status(), 200);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["status"], "accepted");
    assert_eq!(body["total_minor"], 6866);
    assert_eq!(app.count("outbox").await, 1);
    assert_eq!(
        app.payments.requests(),
        1,
        "a retry does not ask the provider again"
    );

    let mut changed = order.clone();
    changed["lines"][0]["quantity"] = 3.into();
    assert_eq!(app.post_order(&changed).await.status(), 409);
    assert_eq!(app.count("outbox").await, 1);

    assert!(app.wait_published(1).await);
    // Give a wrongly duplicated event time to show up before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let messages = orderflow_testkit::read_topic(&app.topic, 2, Duration::from_secs(3)).await;
    assert_eq!(messages.len(), 1, "one event for one order");
    app.checkout.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_orders_get_field_level_reasons_and_write_nothing() {
    let app = spawn_app().await;
    let mut order = order_request("bad id!");
    order["currency"] = "EURO".into();
    order["customer"]["email"] = "not-an-email".into();
    order["lines"][0]["quantity"] = 0.into();
    order["lines"][1]["line_id"] = "l1".into();
    order["shipping_address"]["country"] = "Spain".into();
    let response = app.post_order(&order).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for expected in [
        "order_id",
        "currency",
        "customer.email",
        "lines[0].quantity",
        "lines[1].line_id",
        "shipping_address.country",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }
    assert!(body["errors"][0]["message"].as_str().unwrap().len() > 5);

    let mut no_lines = order_request("ord-empty");
    no_lines["lines"] = Value::Array(vec![]);
    let body: Value = app.post_order(&no_lines).await.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "lines");

    let mut wrong_type = order_request("ord-type");
    wrong_type["lines"][0]["quantity"] = "two".into();
    let response = app.post_order(&wrong_type).await;
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["errors"][0]["field"], "lines[0].quantity");

    assert_eq!(app.count("orders").await, 0);
    assert_eq!(app.count("outbox").await, 0);
    assert_eq!(
        app.payments.requests(),
        0,
        "invalid orders never reach the provider"
    );
    app.checkout.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unverified_payments_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let cases = [
        ("pending", 6866, "EUR", "is pending"),
        ("failed", 6866, "EUR", "is failed"),
        ("succeeded", 6865, "EUR", "order total is 6866 EUR"),
        ("succeeded", 6866, "USD", "order total is 6866 EUR"),
    ];
    for (i, (status, amount, currency, reason)) in cases.into_iter().enumerate() {
        let order = order_request(&format!("ord-pay-{i}"));
        app.payments.set_payment(
            order["payment"]["reference"].as_str().unwrap(),
            status,
            amount,
            currency,
        );
        let response = app.post_order(&order).await;
        assert_eq!(response.status(), 402, "{status} {amount} {currency}");
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(reason), "{body}");
    }
    let unknown = order_request("ord-unknown-payment");
    assert_eq!(app.post_order(&unknown).await.status(), 402);
    assert_eq!(app.count("orders").await, 0);
    app.checkout.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_down_answers_503_with_retry_after_and_the_retry_succeeds() {
    let app = spawn_app().await;
    let order = order_request("ord-provider-down");
    app.payments
        .set_behaviour(orderflow_simulators::payment::Behaviour {
            fail_next: 1,
            ..Default::default()
        });
    app.payments
        .set_payment("pay-ord-provider-down", "succeeded", 6866, "EUR");
    let response = app.post_order(&order).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    assert_eq!(app.count("orders").await, 0);
    assert_eq!(
        app.post_order(&order).await.status(),
        201,
        "the client's retry goes through"
    );

    app.payments
        .set_behaviour(orderflow_simulators::payment::Behaviour {
            latency_ms: 3_000,
            ..Default::default()
        });
    let slow = order_request("ord-provider-slow");
    app.payments
        .set_payment("pay-ord-provider-slow", "succeeded", 6866, "EUR");
    assert_eq!(
        app.post_order(&slow).await.status(),
        503,
        "a timeout is an outage too"
    );
    assert_eq!(app.count("orders").await, 1);
    app.checkout.stop().await;
}
