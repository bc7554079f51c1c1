//! `order`: published or not from checkout's tables, and per consumer processed, retrying,
//! dead-lettered or pending, with the effect read from the service's own tables.

use orderflow_core::headers::RETRY_NOT_BEFORE;
use orderflow_core::topics::{dead_letter_topic, retry_topic};
use orderflow_testkit as testkit;
use orderflowctl::order::{self, Deployment, OrderQuery, Service, Status};
use sqlx::PgPool;

use crate::common::{cluster, dead_letter, send, Record};

const PLACED_AT: &str = "2026-11-22T10:00:00Z";

/// Stores an accepted order in checkout's tables, with its outbox row published or not.
async fn checkout_order(pool: &PgPool, order_id: &str, event_id: &str, published: bool) {
    sqlx::query(
        "INSERT INTO orders (order_id, request, event_id, status, currency, total_minor, placed_at)
         VALUES ($1, '{}', $2, 'accepted', 'EUR', 7399, $3::timestamptz)",
    )
    .bind(order_id)
    .bind(event_id)
    .bind(PLACED_AT)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO outbox (topic, message_key, payload, order_id, published_at)
         VALUES ('orders.placed', $1, '\\x00', $1, CASE WHEN $2 THEN now() END)",
    )
    .bind(order_id)
    .bind(published)
    .execute(pool)
    .await
    .unwrap();
}

/// The runtime's idempotency table, as every consumer schema has it, with `event_id` done.
async fn processed(pool: &PgPool, group: &str, event_id: &str) {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS processed_events (
             consumer_group TEXT NOT NULL,
             event_id TEXT NOT NULL,
             processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
             PRIMARY KEY (consumer_group, event_id))",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO processed_events (consumer_group, event_id) VALUES ($1, $2)")
        .bind(group)
        .bind(event_id)
        .execute(pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn order_is_traced_through_checkout_and_every_consumer() {
    let cluster = cluster();
    let topic = testkit::unique("test.ctl-order");
    let order_id = testkit::unique("ord");
    let event = {
        let mut e = testkit::sample_order_placed(&order_id);
        e.event_id = testkit::unique("evt");
        e
    };

    let (checkout_pool, checkout_schema) = testkit::database_with_schema().await;
    checkout::store::MIGRATOR.run(&checkout_pool).await.unwrap();
    checkout_order(&checkout_pool, &order_id, &event.event_id, true).await;

    // supplier-dispatch: processed, as its dispatches tell (it keeps no processed_events).
    let (dispatch_pool, dispatch_schema) = testkit::database_with_schema().await;
    let dispatch = Deployment {
        schema: dispatch_schema,
        ..Deployment::with_group(Service::SupplierDispatch, &testkit::unique("sd"))
    };
    supplier_dispatch::store::MIGRATOR
        .run(&dispatch_pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO dispatches (order_id, supplier_id, status, job_id, attempts, line_ids, units,
                                 accepted_at, published_at)
         VALUES ($1, 'sup-printful', 'accepted', 'job-77', 1, '{l1}', 2, now(), now())",
    )
    .bind(&order_id)
    .execute(&dispatch_pool)
    .await
    .unwrap();

    // notifications: dead-lettered.
    let (_, notify_schema) = testkit::database_with_schema().await;
    let notify = Deployment {
        schema: notify_schema,
        ..Deployment::with_group(Service::Notifications, &testkit::unique("nt"))
    };
    let notify_dlq = dead_letter_topic(&topic, &notify.group);
    testkit::create_topic(&notify_dlq, 1).await;
    let at = send(
        &notify_dlq,
        &[dead_letter(
            &order_id,
            event.encode().unwrap(),
            "amqp publish refused",
            8,
            &notify.group,
            (&topic, 3, 41),
        )],
    )
    .await;

    // accounting: nothing anywhere, so pending.
    let (_, accounting_schema) = testkit::database_with_schema().await;
    let accounting = Deployment {
        schema: accounting_schema,
        ..Deployment::with_group(Service::Accounting, &testkit::unique("ac"))
    };

    // sales-reporting: processed, counted in November's row.
    let (sales_pool, sales_schema) = testkit::database_with_schema().await;
    let sales = Deployment {
        schema: sales_schema,
        ..Deployment::with_group(Service::SalesReporting, &testkit::unique("sr"))
    };
    sales_reporting::store::MIGRATOR
        .run(&sales_pool)
        .await
        .unwrap();
    sales_reporting::store::pin_time_zone(&sales_pool, "UTC")
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO monthly_sales (month, currency, shard, orders, units, net_minor, tax_minor,
                                    shipping_minor, gross_minor)
         VALUES ('2026-11-01', 'EUR', 3, 1, 3, 6000, 1399, 495, 7399)",
    )
    .execute(&sales_pool)
    .await
    .unwrap();
    processed(&sales_pool, &sales.group, &event.event_id).await;

    // product-analytics: a copy waiting on its retry topic, nothing committed there.
    let (_, analytics_schema) = testkit::database_with_schema().await;
    let analytics = Deployment {
        schema: analytics_schema,
        ..Deployment::with_group(Service::ProductAnalytics, &testkit::unique("pa"))
    };
    let analytics_retry = retry_topic(&topic, &analytics.group);
    testkit::create_topic(&analytics_retry, 2).await;
    send(
        &analytics_retry,
        &[Record {
            key: Some(order_id.clone()),
            payload: event.encode().unwrap(),
            headers: vec![(RETRY_NOT_BEFORE, "2026-11-22T10:05:00Z".into())],
            ..Record::default()
        }],
    )
    .await;

    let query = OrderQuery {
        order_id: order_id.clone(),
        topic: topic.clone(),
        checkout_schema: checkout_schema.clone(),
        consumers: vec![dispatch, notify, accounting, sales, analytics],
    };
    let report = order::order(&cluster, &testkit::database_url(), &query)
        .await
        .unwrap();
    let checkout = report.checkout.as_ref().unwrap();
    assert!(checkout.published);
    assert_eq!(checkout.event_id, event.event_id);
    let state = |service| {
        report
            .consumers
            .iter()
            .find(|c| c.service == service)
            .unwrap()
    };

    let d = state(Service::SupplierDispatch);
    assert_eq!(d.status, Status::Processed, "{d:?}");
    assert!(
        d.effect
            .as_deref()
            .unwrap()
            .contains("print job job-77 accepted"),
        "{d:?}"
    );

    let n = state(Service::Notifications);
    assert_eq!(n.status, Status::DeadLettered);
    assert!(n.detail.contains("amqp publish refused"), "{n:?}");
    assert!(n.detail.contains(&at[0].to_string()), "{n:?}");
    assert_eq!(n.effect, None);
    assert_eq!(
        n.effect_error, None,
        "no tables means no effect, not an error"
    );

    let a = state(Service::Accounting);
    assert_eq!(a.status, Status::Pending);
    assert_eq!(a.effect, None);

    let s = state(Service::SalesReporting);
    assert_eq!(s.status, Status::Processed);
    assert!(
        s.effect.as_deref().unwrap().contains("month 2026-11 EUR"),
        "{s:?}"
    );

    let p = state(Service::ProductAnalytics);
    assert_eq!(p.status, Status::Retrying);
    assert!(
        p.detail.contains("not before 2026-11-22T10:05:00Z"),
        "{p:?}"
    );

    let text = report.to_string();
    assert!(text.contains("published: yes"), "{text}");
    assert!(text.contains("dead-lettered"), "{text}");
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["consumers"][1]["status"], "dead-lettered");

    // An order still in the outbox, and one checkout never saw.
    let waiting = testkit::unique("ord");
    checkout_order(&checkout_pool, &waiting, &testkit::unique("evt"), false).await;
    sqlx::query(
        "INSERT INTO dispatches (order_id, supplier_id, status, attempts, line_ids, units)
         VALUES ($1, 'sup-printful', 'failed', 2, '{l1}', 2)",
    )
    .bind(&waiting)
    .execute(&dispatch_pool)
    .await
    .unwrap();
    let mut q = query.clone();
    q.order_id = waiting;
    let report = order::order(&cluster, &testkit::database_url(), &q)
        .await
        .unwrap();
    assert!(!report.checkout.as_ref().unwrap().published);
    assert!(report
        .consumers
        .iter()
        .all(|c| c.status == Status::Pending && c.detail.contains("not published")));
    assert!(report.consumers[0]
        .effect
        .as_deref()
        .unwrap()
        .contains("sup-printful: failed, 2 attempts"));

    q.order_id = testkit::unique("unknown");
    let report = order::order(&cluster, &testkit::database_url(), &q)
        .await
        .unwrap();
    assert!(report.checkout.is_none());
    assert!(report.checkout_note.unwrap().contains("has no order"));
}
