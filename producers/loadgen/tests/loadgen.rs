//! The load generator against real peers: its orders are valid for checkout, it places them
//! through a real checkout on the local stack, and its latency is honest under an open loop.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use checkout::Settings;
use loadgen::catalogue::order;
use loadgen::driver::{run, LoadPlan};
use orderflow_core::db::DatabaseConfig;
use orderflow_simulators::payment::PaymentSim;

#[test]
fn every_order_is_valid_for_checkout_and_the_mix_is_varied() {
    let (mut lines, mut currencies, mut suppliers) =
        (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    let mut with_agent = 0;
    for n in 0..3_000 {
        let o = order("mix", n);
        let request = checkout::order::parse(&o.body)
            .unwrap_or_else(|e| panic!("order {n} does not parse: {e:?}"));
        checkout::order::validate(&request)
            .unwrap_or_else(|e| panic!("order {n} is invalid: {e:?}"));
        let event = request.to_event("e".into(), 0);
        assert_eq!(event.totals.total_minor, o.total_minor, "order {n}'s total");
        assert_eq!(event.currency, o.currency);
        assert_eq!(request.lines.len(), o.lines);
        lines.insert(o.lines);
        currencies.insert(o.currency.clone());
        suppliers.extend(request.lines.iter().map(|l| l.supplier_id.clone()));
        with_agent += usize::from(o.has_agent);
        assert_eq!(request.sales_agent.is_some(), o.has_agent);
    }
    assert_eq!(lines, (1..=5).collect());
    assert_eq!(currencies, ["EUR", "GBP", "USD"].map(String::from).into());
    assert!(suppliers.len() >= 4, "{suppliers:?}");
    assert!(
        (800..1_200).contains(&with_agent),
        "{with_agent} of 3000 with an agent"
    );
    assert_eq!(order("mix", 7).body, order("mix", 7).body, "deterministic");
    assert_ne!(order("mix", 7).order_id, order("other", 7).order_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn places_every_order_through_a_real_checkout() {
    orderflow_testkit::init_telemetry();
    let (pool, schema) = orderflow_testkit::database_with_schema().await;
    let topic = orderflow_testkit::topic("orders", 3).await;
    let payments = PaymentSim::spawn(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .unwrap();
    let settings = Settings {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        database: DatabaseConfig {
            url: orderflow_testkit::database_url(),
            schema,
            max_connections: 8,
        },
        kafka: orderflow_testkit::kafka(),
        payment_api_url: payments.url(),
        payment_timeout: Duration::from_secs(2),
        topic,
        delivery_timeout: Duration::from_secs(3),
        metrics_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        schema_registry: None,
    };
    let checkout = checkout::start(settings, pool.clone()).await.unwrap();
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..10].to_string();
    let orders: Vec<_> = (0..300).map(|n| order(&run_id, n)).collect();
    let ids: BTreeSet<String> = orders.iter().map(|o| o.order_id.clone()).collect();
    loadgen::register_payments(&payments.url(), &orders)
        .await
        .unwrap();
    let report = run(
        LoadPlan {
            url: format!("http://{}", checkout.addr),
            connections: 40,
            rate: Some(150.0),
            duration: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
        },
        orders,
    )
    .await
    .unwrap();
    assert_eq!(report.connections, 40);
    assert_eq!(report.sent, 300, "{report}");
    assert_eq!(
        report.accepted, 300,
        "{report} {:?}",
        report.refusal_samples
    );
    assert_eq!(report.failed() + report.refused, 0);
    assert!(
        report.elapsed_s >= 1.9,
        "the rate spreads 300 orders over 2 s: {report}"
    );
    let stored: BTreeSet<String> = sqlx::query_scalar("SELECT order_id FROM orders")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(stored, ids, "checkout stored exactly the orders placed");
    checkout.stop().await;
}

/// A server answering every request after 100 ms.
async fn slow_server() -> SocketAddr {
    let app = axum::Router::new().route(
        "/v1/orders",
        axum::routing::post(|| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            (axum::http::StatusCode::CREATED, "{}")
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

async fn two_connections_at(addr: SocketAddr, rate: f64) -> loadgen::driver::LoadReport {
    let orders = (0..(rate * 2.0) as u64).map(|n| order("slow", n)).collect();
    run(
        LoadPlan {
            url: format!("http://{addr}"),
            connections: 2,
            rate: Some(rate),
            duration: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
        },
        orders,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_counts_from_when_an_order_was_due_so_queueing_shows() {
    let addr = slow_server().await;
    // Two connections of 100 ms each serve 20 orders/s: at 10/s nothing queues.
    let calm = two_connections_at(addr, 10.0).await;
    assert_eq!(calm.accepted, 20);
    assert!(
        (100.0..160.0).contains(&calm.latency.p99_ms),
        "at 10/s the p99 is the server's 100 ms: {calm}"
    );
    // At 40/s orders pile up behind the two connections; their wait is part of their latency.
    let busy = two_connections_at(addr, 40.0).await;
    assert_eq!(busy.accepted, 80);
    assert!(
        busy.latency.p99_ms > 1_000.0,
        "at 40/s the last orders waited about 2 s: {busy}"
    );
    assert!(busy.accepted_per_sec < 22.0, "{busy}");
}
