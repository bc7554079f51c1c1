//! The consumer in this process: a batch gives exactly the expected journal, duplicates,
//! replays and reprocessing give nothing more, and bad events are dead-lettered with a reason.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use orderflow_core::headers;
use orderflow_core::runtime::REASON;
use orderflow_core::OrderPlaced;
use orderflow_testkit as kit;
use rdkafka::Message;

use crate::common::{self, at, encoded, entries, fix_totals, order, scalar};

const SUPPLIERS: [&str; 3] = ["sup-printful", "sup-gelato", "sup-prodigi"];

/// Orders that differ: suppliers, quantities, free shipping, a third line, yen.
fn varied_batch(n: usize) -> Vec<OrderPlaced> {
    (0..n)
        .map(|i| {
            let mut o = order(&format!("ord-{i:03}"), at("2026-11-10T12:00:00Z"));
            o.lines[0].quantity = i as i32 % 4 + 1;
            o.lines[1].supplier_id = SUPPLIERS[i % 3].to_string();
            o.lines[1].unit_cost_minor = 300 + i as i64;
            if i % 5 == 0 {
                o.shipping.price_minor = 0;
            }
            if i % 4 == 0 {
                let mut third = o.lines[0].clone();
                third.line_id = "l3".into();
                third.supplier_id = SUPPLIERS[(i + 1) % 3].to_string();
                third.unit_cost_minor = 777;
                o.lines.push(third);
            }
            if i % 7 == 0 {
                o.currency = "JPY".into();
            }
            fix_totals(&mut o);
            o
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_is_journaled_balanced_and_the_trial_balance_matches_the_orders() {
    let s = common::setup(3).await;
    let batch = varied_batch(30);
    kit::produce(&s.topic, &encoded(&batch)).await;
    let consumer = common::start(&s).await;
    assert!(common::wait_entries(&s.pool, 30).await);
    consumer.stop().await.unwrap();

    assert_eq!(entries(&s.pool).await, 30);
    let unbalanced = scalar(
        &s.pool,
        "SELECT count(*) FROM (SELECT entry_id FROM postings GROUP BY entry_id
                                HAVING sum(debit_minor) <> sum(credit_minor)) u",
    )
    .await;
    assert_eq!(unbalanced, 0, "every entry balances");

    // The trial balance per currency and account (debit positive), worked out from the orders.
    let mut expected: BTreeMap<(String, String, String), i64> = BTreeMap::new();
    let mut add = |currency: &str, account: &str, counterparty: &str, amount: i64| {
        *expected
            .entry((currency.into(), account.into(), counterparty.into()))
            .or_default() += amount;
    };
    for o in &batch {
        let c = o.currency.as_str();
        add(c, "1200", &o.customer.id, o.totals.total_minor);
        add(c, "4000", "", -o.totals.subtotal_minor);
        add(c, "2200", "", -o.totals.tax_minor);
        if o.shipping.price_minor > 0 {
            add(c, "4100", "", -o.shipping.price_minor);
        }
        for l in &o.lines {
            let cost = l.unit_cost_minor * i64::from(l.quantity);
            add(c, "5000", &l.supplier_id, cost);
            add(c, "2000", &l.supplier_id, -cost);
        }
    }
    let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
        "SELECT e.currency, p.account_code, coalesce(p.counterparty, ''),
                (sum(p.debit_minor) - sum(p.credit_minor))::bigint
         FROM postings p JOIN journal_entries e ON e.id = p.entry_id
         GROUP BY 1, 2, 3",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    let actual: BTreeMap<_, _> = rows
        .into_iter()
        .map(|(a, b, c, d)| ((a, b, c), d))
        .collect();
    assert_eq!(actual, expected);
    for currency in ["EUR", "JPY"] {
        let net: i64 = actual
            .iter()
            .filter(|((c, _, _), _)| c == currency)
            .map(|(_, v)| v)
            .sum();
        assert_eq!(net, 0, "debits equal credits over the batch in {currency}");
    }
    let postings_expected: usize = batch
        .iter()
        .map(|o| {
            let suppliers: std::collections::BTreeSet<_> =
                o.lines.iter().map(|l| &l.supplier_id).collect();
            1 + o.lines.len() + 1 + usize::from(o.shipping.price_minor > 0) + 2 * suppliers.len()
        })
        .sum();
    assert_eq!(
        scalar(&s.pool, "SELECT count(*) FROM postings").await,
        postings_expected as i64
    );
    let yen: (i16, String) = sqlx::query_as(
        "SELECT minor_exponent, currency FROM journal_entries WHERE order_id = 'ord-007'",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(yen, (0, "JPY".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn events_delivered_twice_or_replayed_under_new_ids_are_journaled_once() {
    // One partition: the sentinel at the end is handled after everything produced before it.
    let s = common::setup(1).await;
    let batch = varied_batch(10);
    kit::produce(&s.topic, &encoded(&batch)).await;
    let consumer = common::start(&s).await;
    assert!(common::wait_entries(&s.pool, 10).await);
    let snapshot = || async {
        sqlx::query_as::<_, (String, String, i32, String, i64, i64)>(
            "SELECT e.order_id, e.event_id, p.line_no, p.account_code, p.debit_minor, p.credit_minor
             FROM journal_entries e JOIN postings p ON p.entry_id = e.id ORDER BY 1, 3",
        )
        .fetch_all(&s.pool)
        .await
        .unwrap()
    };
    let before = snapshot().await;

    // The same events again, then the same orders under new event ids (a replay from upstream).
    let replayed: Vec<OrderPlaced> = batch
        .iter()
        .map(|o| OrderPlaced {
            event_id: kit::unique("replay"),
            ..o.clone()
        })
        .collect();
    let sentinel = order("sentinel", at("2026-11-10T12:00:00Z"));
    let mut again = encoded(&batch);
    again.extend(encoded(&replayed));
    again.extend(encoded(&[sentinel]));
    kit::produce(&s.topic, &again).await;
    assert!(common::wait_journaled(&s.pool, "sentinel").await);
    consumer.stop().await.unwrap();

    assert_eq!(entries(&s.pool).await, 11);
    let after: Vec<_> = snapshot()
        .await
        .into_iter()
        .filter(|r| r.0 != "sentinel")
        .collect();
    assert_eq!(after, before, "the first entries stand, untouched");
    assert_eq!(
        scalar(&s.pool, "SELECT count(*) FROM processed_events").await,
        21,
        "the replayed event ids are marked done"
    );
    assert!(kit::read_topic(&s.dlq, 1, Duration::from_secs(2))
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_events_are_dead_lettered_with_a_reason_and_the_rest_is_journaled() {
    let s = common::setup(1).await;
    let placed = at("2026-11-10T12:00:00Z");
    let mut inconsistent = order("bad-total", placed);
    inconsistent.totals.total_minor += 1;
    inconsistent.payment.amount_minor += 1;
    let mut no_minor_unit = order("bad-currency", placed);
    no_minor_unit.currency = "ZZZ".into();
    let first = order("amended", placed);
    let mut amended = order("amended", placed);
    amended.lines[0].quantity = 5;
    fix_totals(&mut amended);
    let mut messages = vec![("garbage".to_string(), b"not avro".to_vec())];
    messages.extend(encoded(&[
        order("good-1", placed),
        inconsistent,
        first,
        no_minor_unit,
        amended,
        order("good-2", placed),
    ]));
    kit::produce(&s.topic, &messages).await;
    let consumer = common::start(&s).await;
    let dead = kit::read_topic(&s.dlq, 4, Duration::from_secs(60)).await;
    assert!(common::wait_journaled(&s.pool, "good-2").await);
    consumer.stop().await.unwrap();

    let reasons: BTreeMap<String, String> = dead
        .iter()
        .map(|m| {
            (
                String::from_utf8(m.key().unwrap().to_vec()).unwrap(),
                kit::header(m, REASON).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        reasons.keys().collect::<Vec<_>>(),
        ["amended", "bad-currency", "bad-total", "garbage"]
    );
    assert!(reasons["garbage"].starts_with("poison:"), "{reasons:?}");
    assert!(
        reasons["bad-total"].starts_with("permanent: inconsistent order: totals.total_minor"),
        "{reasons:?}"
    );
    assert_eq!(
        reasons["bad-currency"],
        "permanent: currency ZZZ has no ISO 4217 minor unit, so its amounts cannot be booked"
    );
    assert!(
        reasons["amended"].starts_with("permanent: order amended is already journaled (entry "),
        "{reasons:?}"
    );
    let journaled: Vec<String> =
        sqlx::query_scalar("SELECT order_id FROM journal_entries ORDER BY order_id")
            .fetch_all(&s.pool)
            .await
            .unwrap();
    assert_eq!(journaled, ["amended", "good-1", "good-2"]);
    let amended_total: i64 = sqlx::query_scalar(
        "SELECT sum(debit_minor)::bigint FROM postings p JOIN journal_entries e ON e.id = p.entry_id
         WHERE e.order_id = 'amended' AND p.account_code = '1200'",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(
        amended_total,
        order("amended", placed).totals.total_minor,
        "the first version stands"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_s_reprocess_of_a_journaled_order_changes_nothing() {
    let s = common::setup(1).await;
    let journaled = order("reprocessed", at("2026-11-10T12:00:00Z"));
    let bytes = journaled.encode().unwrap();
    kit::produce(&s.topic, &[(journaled.order_id.clone(), bytes.clone())]).await;
    let consumer = common::start(&s).await;
    assert!(common::wait_journaled(&s.pool, "reprocessed").await);
    let state = || async {
        sqlx::query_as::<_, (i64, i64, DateTime<Utc>)>(
            "SELECT (SELECT count(*) FROM journal_entries),
                    (SELECT count(*) FROM postings),
                    (SELECT processed_at FROM processed_events)",
        )
        .fetch_one(&s.pool)
        .await
        .unwrap()
    };
    let (entries_before, postings_before, processed_before) = state().await;

    // `orderflowctl replay --reprocess` copies the event to the group's retry topic.
    kit::produce_with_headers(
        &s.retry,
        &journaled.order_id,
        &bytes,
        &[
            (headers::REPROCESS, "true"),
            (headers::ORIGIN_TOPIC, &s.topic),
            (headers::ORIGIN_PARTITION, "0"),
            (headers::ORIGIN_OFFSET, "0"),
        ],
    )
    .await;
    assert!(
        kit::eventually(Duration::from_secs(60), || async {
            kit::committed_offset(&s.group, &s.retry, 0).await == Some(1)
        })
        .await
    );
    consumer.stop().await.unwrap();
    let (entries_after, postings_after, processed_after) = state().await;
    assert_eq!(
        (entries_after, postings_after),
        (entries_before, postings_before),
        "no second entry"
    );
    assert!(
        processed_after > processed_before,
        "the reprocess went past the claim to the journal's own key"
    );
    assert!(kit::read_topic(&s.dlq, 1, Duration::from_secs(2))
        .await
        .is_empty());
}
