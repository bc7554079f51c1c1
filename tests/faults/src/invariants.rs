//! The promises the pipeline makes, checked from the outside after a scenario: on the topic, at
//! the supplier, at the mail server, in the journal, in the report, in the archive and in the
//! dead letters. Each broken promise is one violation, described well enough to investigate.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;

use arrow_array::{Array, StringArray};
use chrono::{Datelike, Months, Utc};
use orderflow_core::headers::REASON;
use orderflow_core::topics::dead_letter_topic;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::Message;

use crate::load::Placed;
use crate::pipeline::{Pipeline, CONSUMERS};
use crate::topic::read_all;

/// An event the scenario put on the topic on purpose, which every consumer must dead-letter.
#[derive(Debug, Clone)]
pub struct BadEvent {
    pub key: String,
    pub kind: &'static str,
}

/// What the scenario did, so the checks know what to expect.
#[derive(Debug, Default)]
pub struct Expected {
    pub placed: Vec<Placed>,
    /// Extra copies of an order's event that the scenario put on the topic, by order id.
    pub duplicates: BTreeMap<String, usize>,
    pub bad: Vec<BadEvent>,
}

/// Every violation of the pipeline's promises, given what the scenario did.
pub async fn check(pipeline: &Pipeline, expected: &Expected) -> Vec<String> {
    let mut v = Vec::new();
    v.extend(on_the_topic(pipeline, expected).await);
    v.extend(at_the_supplier(pipeline, expected));
    v.extend(at_the_mail_server(pipeline, expected));
    v.extend(in_the_journal(pipeline, expected).await);
    v.extend(in_the_report(pipeline, expected).await);
    v.extend(in_the_archive(pipeline, expected));
    v.extend(in_the_dead_letters(pipeline, expected).await);
    v
}

/// Every accepted order on the topic exactly once (plus the copies the scenario injected), and
/// nothing else but the injected bad events.
async fn on_the_topic(p: &Pipeline, e: &Expected) -> Vec<String> {
    let messages = match read_all(&p.kafka, &p.orders_topic).await {
        Ok(m) => m,
        Err(err) => return vec![format!("topic: cannot read {}: {err}", p.orders_topic)],
    };
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    for m in &messages {
        *by_key.entry(key_of(m)).or_default() += 1;
    }
    let mut v = Vec::new();
    for placed in &e.placed {
        let want = 1 + e.duplicates.get(placed.id()).copied().unwrap_or(0);
        let got = by_key.remove(placed.id()).unwrap_or(0);
        if got != want {
            v.push(format!(
                "topic: order {} is on the topic {got} times, expected {want}",
                placed.id()
            ));
        }
    }
    for bad in &e.bad {
        by_key.remove(&bad.key);
    }
    for (key, n) in by_key {
        v.push(format!(
            "topic: {n} event(s) keyed {key} that checkout never accepted"
        ));
    }
    v
}

/// One print job per (order, supplier) of the accepted orders, and no other.
fn at_the_supplier(p: &Pipeline, e: &Expected) -> Vec<String> {
    let expected: BTreeSet<String> = e
        .placed
        .iter()
        .flat_map(|o| {
            o.lines()
                .iter()
                .map(move |l| format!("{}:{}", o.id(), l["supplier_id"].as_str().unwrap_or("")))
        })
        .collect();
    let jobs: BTreeSet<String> = p
        .supplier
        .jobs()
        .into_iter()
        .map(|j| j.idempotency_key)
        .collect();
    let mut v: Vec<String> = expected
        .difference(&jobs)
        .map(|k| format!("supplier: no print job for {k}"))
        .collect();
    v.extend(
        jobs.difference(&expected)
            .map(|k| format!("supplier: unexpected print job {k}")),
    );
    v
}

/// One customer e-mail per order and one agent e-mail per order with an agent, each once.
fn at_the_mail_server(p: &Pipeline, e: &Expected) -> Vec<String> {
    let mut received: BTreeMap<String, usize> = BTreeMap::new();
    for m in p.smtp.messages() {
        *received
            .entry(m.message_id.unwrap_or_else(|| "<no Message-ID>".into()))
            .or_default() += 1;
    }
    let mut v = Vec::new();
    for o in &e.placed {
        let mut want = vec![format!("<order-{}.customer@orderflow>", o.id())];
        if o.has_agent() {
            want.push(format!("<order-{}.agent@orderflow>", o.id()));
        }
        for id in want {
            match received.remove(&id).unwrap_or(0) {
                1 => {}
                n => v.push(format!("smtp: {id} received {n} times, expected once")),
            }
        }
    }
    for (id, n) in received {
        v.push(format!("smtp: unexpected e-mail {id} ({n} times)"));
    }
    v
}

/// One balanced journal entry per accepted order, none for anything else.
async fn in_the_journal(p: &Pipeline, e: &Expected) -> Vec<String> {
    let query = async {
        let pool = p.database_of("accounting").await?;
        let entries: Result<Vec<(String, i64, i64)>, sqlx::Error> = sqlx::query_as(
            "SELECT e.order_id, e.total_minor,
                    (SELECT coalesce(sum(debit_minor - credit_minor), 0)::BIGINT
                     FROM postings WHERE entry_id = e.id)
             FROM journal_entries e",
        )
        .fetch_all(&pool)
        .await;
        pool.close().await;
        entries
    };
    let entries = match query.await {
        Ok(entries) => entries,
        Err(err) => return vec![format!("journal: cannot read: {err}")],
    };
    let mut v = Vec::new();
    let mut by_order: BTreeMap<&str, Vec<(i64, i64)>> = BTreeMap::new();
    for (order, total, imbalance) in &entries {
        by_order
            .entry(order.as_str())
            .or_default()
            .push((*total, *imbalance));
    }
    for o in &e.placed {
        match by_order.remove(o.id()).as_deref() {
            Some([(total, 0)]) if *total == o.total_minor => {}
            Some([(total, imbalance)]) => v.push(format!(
                "journal: entry of {} has total {total} (order: {}) and imbalance {imbalance}",
                o.id(),
                o.total_minor
            )),
            Some(many) => v.push(format!("journal: {} entries for {}", many.len(), o.id())),
            None => v.push(format!("journal: no entry for {}", o.id())),
        }
    }
    for order in by_order.keys() {
        v.push(format!(
            "journal: entry for {order}, which was never accepted"
        ));
    }
    v
}

/// The report's order count and gross, over the months around now, equal the accepted orders'.
async fn in_the_report(p: &Pipeline, e: &Expected) -> Vec<String> {
    let now = Utc::now();
    let months = [
        now.checked_sub_months(Months::new(1)),
        Some(now),
        now.checked_add_months(Months::new(1)),
    ];
    let http = reqwest::Client::new();
    let (mut orders, mut gross) = (0i64, 0i64);
    for month in months.into_iter().flatten() {
        let url = format!(
            "{}/v1/reports/monthly/{:04}-{:02}",
            p.reporting_url,
            month.year(),
            month.month()
        );
        let report: serde_json::Value = match http.get(&url).send().await {
            Ok(r) => match r.json().await {
                Ok(json) => json,
                Err(err) => return vec![format!("report: {url}: {err}")],
            },
            Err(err) => return vec![format!("report: {url}: {err}")],
        };
        for currency in report["currencies"].as_array().into_iter().flatten() {
            orders += currency["orders"].as_i64().unwrap_or(0);
            gross += currency["gross_minor"].as_i64().unwrap_or(0);
        }
    }
    let want_orders = e.placed.len() as i64;
    let want_gross: i64 = e.placed.iter().map(|o| o.total_minor).sum();
    if (orders, gross) == (want_orders, want_gross) {
        Vec::new()
    } else {
        vec![format!(
            "report: {orders} orders and gross {gross}, expected {want_orders} and {want_gross}"
        )]
    }
}

/// Every sold line of the accepted orders archived exactly once, and nothing else.
fn in_the_archive(p: &Pipeline, e: &Expected) -> Vec<String> {
    let rows = match archived_lines(&p.archive_dir) {
        Ok(rows) => rows,
        Err(err) => return vec![format!("archive: {err}")],
    };
    let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
    for row in rows {
        *counts.entry(row).or_default() += 1;
    }
    let mut v = Vec::new();
    for o in &e.placed {
        for line in o.lines() {
            let key = (
                o.id().to_string(),
                line["line_id"].as_str().unwrap_or("").to_string(),
            );
            match counts.remove(&key).unwrap_or(0) {
                1 => {}
                n => v.push(format!(
                    "archive: line {}/{} archived {n} times, expected once",
                    key.0, key.1
                )),
            }
        }
    }
    for ((order, line), n) in counts {
        v.push(format!(
            "archive: unexpected line {order}/{line} ({n} times)"
        ));
    }
    v
}

/// Every injected bad event in every group's dead letters with a reason; no accepted order
/// there.
async fn in_the_dead_letters(p: &Pipeline, e: &Expected) -> Vec<String> {
    let accepted: BTreeSet<&str> = e.placed.iter().map(Placed::id).collect();
    let mut v = Vec::new();
    for service in CONSUMERS {
        let topic = dead_letter_topic(&p.orders_topic, &p.group(service));
        let dead = match read_all(&p.kafka, &topic).await {
            Ok(m) => m,
            Err(err) => {
                v.push(format!("dead letters: cannot read {topic}: {err}"));
                continue;
            }
        };
        let reasons: BTreeMap<String, String> = dead
            .iter()
            .map(|m| (key_of(m), header(m, REASON).unwrap_or_default()))
            .collect();
        for bad in &e.bad {
            match reasons.get(&bad.key) {
                Some(reason) if !reason.is_empty() => {}
                Some(_) => v.push(format!(
                    "dead letters: {service} dead-lettered {} ({}) without a reason",
                    bad.key, bad.kind
                )),
                None => v.push(format!(
                    "dead letters: {} ({}) is not in {service}'s dead letters",
                    bad.key, bad.kind
                )),
            }
        }
        for (key, reason) in &reasons {
            if accepted.contains(key.as_str()) {
                v.push(format!(
                    "dead letters: {service} dead-lettered accepted order {key}: {reason}"
                ));
            }
        }
    }
    v
}

fn key_of(m: &OwnedMessage) -> String {
    m.key()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .unwrap_or_default()
}

fn header(m: &OwnedMessage, name: &str) -> Option<String> {
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// (order id, line id) of every row of every Parquet file under `dir`.
fn archived_lines(dir: &Path) -> Result<Vec<(String, String)>, String> {
    let mut rows = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|x| x == "parquet") {
                read_lines(&path, &mut rows)?;
            }
        }
    }
    Ok(rows)
}

fn read_lines(path: &Path, rows: &mut Vec<(String, String)>) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = File::open(path).map_err(|e| err(&e))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|b| b.build())
        .map_err(|e| err(&e))?;
    for batch in reader {
        let batch = batch.map_err(|e| err(&e))?;
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>().cloned())
                .ok_or_else(|| err(&format!("no string column {name}")))
        };
        let (orders, lines) = (column("order_id")?, column("order_line_id")?);
        for i in 0..batch.num_rows() {
            if orders.is_null(i) || lines.is_null(i) {
                return Err(err(&"null order or line id"));
            }
            rows.push((orders.value(i).to_string(), lines.value(i).to_string()));
        }
    }
    Ok(())
}
