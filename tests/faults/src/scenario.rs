//! The scenarios: each starts a fresh pipeline, places orders through checkout while one fault
//! strikes, waits for the pipeline to settle and checks every promise from the outside.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use orderflow_core::codec::MAGIC;
use orderflow_simulators::supplier::Behaviour;

use crate::infra::Infra;
use crate::invariants::{check, BadEvent, Expected};
use crate::load::{place_orders, LoadOutcome};
use crate::pipeline::{Pipeline, CONSUMERS, SERVICES};
use crate::topic::{produce, read_all};

/// What strikes during a scenario.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// `kill -9` of one service mid-batch, then a restart.
    Kill(&'static str),
    /// The Kafka broker killed, and started again after a while.
    KafkaOutage(Duration),
    /// PostgreSQL killed, and started again after a while.
    PostgresOutage(Duration),
    /// RabbitMQ killed, and started again after a while.
    RabbitMqOutage(Duration),
    /// The supplier answers 500s, 429s and too slowly for a while.
    SupplierTrouble(Duration),
    /// The mail server refuses every message (451) for a while.
    SmtpRefusing(Duration),
    /// A second instance of every consumer joins its group mid-load, then leaves.
    Rebalance,
    /// Copies of events already on the topic are published again.
    Duplicates,
    /// Malformed bytes, an unknown schema fingerprint and inconsistent orders on the topic.
    BadEvents,
    /// Once everything is done, the operator replays the last hour: copied into every group's
    /// retry topic while the groups run, and by rewinding accounting's offsets while it is
    /// stopped.
    Replay,
}

/// A named scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub fault: Fault,
}

/// What a scenario saw.
#[derive(Debug)]
pub struct Outcome {
    pub name: String,
    pub accepted: usize,
    /// Events on the orders topic at the end (accepted orders, copies and bad events).
    pub events: usize,
    /// Events the scenario put on the topic itself.
    pub injected: usize,
    /// Events an operator's replay delivered again (copies and rewound records).
    pub replayed: usize,
    pub violations: Vec<String>,
    pub elapsed: Duration,
}

/// The full list, in the order the suite runs them.
pub fn all() -> Vec<Scenario> {
    let scenario = |name: &str, fault| Scenario {
        name: name.to_string(),
        fault,
    };
    let mut list: Vec<Scenario> = SERVICES
        .into_iter()
        .map(|service| scenario(&format!("kill-{service}"), Fault::Kill(service)))
        .collect();
    list.extend([
        scenario("kafka-outage", Fault::KafkaOutage(Duration::from_secs(15))),
        scenario(
            "postgres-outage",
            Fault::PostgresOutage(Duration::from_secs(30)),
        ),
        scenario(
            "rabbitmq-outage",
            Fault::RabbitMqOutage(Duration::from_secs(20)),
        ),
        scenario(
            "supplier-trouble",
            Fault::SupplierTrouble(Duration::from_secs(20)),
        ),
        scenario(
            "smtp-refusing",
            Fault::SmtpRefusing(Duration::from_secs(20)),
        ),
        scenario("rebalance", Fault::Rebalance),
        scenario("duplicates", Fault::Duplicates),
        scenario("bad-events", Fault::BadEvents),
        scenario("replay-last-hour", Fault::Replay),
    ]);
    list
}

/// How long the pipeline may take to catch up once the load and the fault are over.
const SETTLE: Duration = Duration::from_secs(240);

/// Runs one scenario with `orders` orders.
pub async fn run(infra: &mut Infra, scenario: Scenario, orders: usize) -> Outcome {
    let started = Instant::now();
    let mut pipeline = Pipeline::start(&infra.servers(), &scenario.name, &[]).await;
    let shop = pipeline.storefront();
    let load = {
        let shop = shop.clone();
        tokio::spawn(async move { place_orders(&shop, 0, orders, 16).await })
    };
    let mut expected = Expected::default();
    let mut violations = Vec::new();

    // Strike once a third of the orders are in, so the services are mid-batch.
    let strike_at = orders / 3;
    wait_until(Duration::from_secs(120), || {
        shop.accepted.load(std::sync::atomic::Ordering::Relaxed) >= strike_at
    })
    .await;
    match scenario.fault {
        Fault::Kill(service) => {
            wait_for_progress(&pipeline, service, orders / 4).await;
            pipeline.kill(service);
            tokio::time::sleep(Duration::from_secs(1)).await;
            pipeline.restart(service);
        }
        Fault::KafkaOutage(d) => {
            infra.kafka.stop();
            tokio::time::sleep(d).await;
            infra.kafka.restart().await;
        }
        Fault::PostgresOutage(d) => {
            infra.postgres.stop();
            tokio::time::sleep(d).await;
            infra.postgres.restart().await;
        }
        Fault::RabbitMqOutage(d) => {
            infra.rabbitmq.stop();
            tokio::time::sleep(d).await;
            infra.rabbitmq.restart().await;
        }
        Fault::SupplierTrouble(d) => {
            let normal = pipeline.supplier.behaviour();
            pipeline.supplier.set_behaviour(Behaviour {
                error_rate: 0.3,
                rate_limit_rate: 0.3,
                retry_after_secs: 1,
                fail_next: 20,
                fail_status: Some(500),
                ..normal.clone()
            });
            tokio::time::sleep(d / 2).await;
            // Slower than supplier-dispatch's timeout: the jobs are created, the answers lost.
            pipeline.supplier.set_behaviour(Behaviour {
                latency_ms: 1500,
                ..normal.clone()
            });
            tokio::time::sleep(d / 2).await;
            pipeline.supplier.set_behaviour(normal);
        }
        Fault::SmtpRefusing(d) => {
            pipeline.smtp.fail_for(d, 451);
            tokio::time::sleep(d).await;
        }
        Fault::Rebalance => {
            pipeline.join_second_instances();
            tokio::time::sleep(Duration::from_secs(15)).await;
            violations.extend(
                pipeline
                    .leave_second_instances()
                    .into_iter()
                    .map(|s| format!("{s} did not leave its group cleanly")),
            );
        }
        Fault::Duplicates | Fault::BadEvents | Fault::Replay => {}
    }
    let LoadOutcome { accepted, refused } = load.await.expect("the load task");
    violations.extend(
        refused
            .into_iter()
            .map(|r| format!("checkout refused a valid order: {r}")),
    );
    expected.placed = accepted;
    match scenario.fault {
        Fault::Duplicates => match inject_duplicates(&pipeline).await {
            Ok(copies) => expected.duplicates = copies,
            Err(e) => violations.push(format!("injecting duplicates: {e}")),
        },
        Fault::BadEvents => match inject_bad_events(&pipeline).await {
            Ok(bad) => expected.bad = bad,
            Err(e) => violations.push(format!("injecting bad events: {e}")),
        },
        _ => {}
    }

    violations.extend(settle(&pipeline, &expected).await);
    let mut replayed = 0;
    if matches!(scenario.fault, Fault::Replay) && violations.is_empty() {
        match replay_last_hour(&mut pipeline).await {
            Ok(copies) => replayed = copies,
            Err(e) => violations.push(format!("replay: {e}")),
        }
        violations.extend(settle(&pipeline, &expected).await);
    }
    if matches!(scenario.fault, Fault::BadEvents) && violations.is_empty() {
        violations.extend(redrive_dead_letters(&pipeline, &expected).await);
        violations.extend(settle(&pipeline, &expected).await);
    }
    violations.extend(pipeline.exited());
    let events = read_all(&pipeline.kafka, &pipeline.orders_topic)
        .await
        .map(|m| m.len())
        .unwrap_or(0);
    let injected = expected.duplicates.values().sum::<usize>() + expected.bad.len();
    let log_dir = pipeline.log_dir().clone();
    violations.extend(pipeline.stop());
    if !violations.is_empty() {
        eprintln!("{}: logs in {}", scenario.name, log_dir.display());
    }
    Outcome {
        name: scenario.name,
        accepted: expected.placed.len(),
        events,
        injected,
        replayed,
        violations,
        elapsed: started.elapsed(),
    }
}

/// Replays the last hour as an operator would with `orderflowctl replay`: copied into every
/// consumer group's retry topic while the services run, then into accounting once more by
/// rewinding its offsets while it is stopped. Returns the copies written; waits until every group
/// has caught up.
async fn replay_last_hour(pipeline: &mut Pipeline) -> Result<usize, String> {
    use orderflowctl::replay::{replay, Groups, Method, ReplayRequest, Window};
    let cluster = orderflowctl::Cluster::new(pipeline.kafka.clone()).map_err(|e| e.to_string())?;
    let groups: Vec<String> = CONSUMERS.iter().map(|s| pipeline.group(s)).collect();
    let topic = pipeline.orders_topic.clone();
    let request = |groups: Vec<String>, method| ReplayRequest {
        topic: topic.clone(),
        groups: Groups::Named(groups),
        window: Window::Time {
            from: chrono::Utc::now() - chrono::Duration::hours(1),
            to: None,
        },
        method,
        dry_run: false,
        rate: None,
        reprocess: false,
        progress: false,
    };
    let copied = replay(&cluster, &request(groups.clone(), Method::Copy))
        .await
        .map_err(|e| format!("copy: {e}"))?;
    let copies: i64 = copied.copies.iter().map(|c| c.copies).sum();
    caught_up(&cluster, pipeline, &groups).await?;

    // Rewinding needs the group stopped; the service leaves its group on SIGTERM.
    if !pipeline.stop_service("accounting") {
        return Err("accounting did not stop cleanly for the rewind".into());
    }
    let accounting = vec![pipeline.group("accounting")];
    let rewound = replay(&cluster, &request(accounting.clone(), Method::Rewind)).await;
    pipeline.restart("accounting");
    let rewound = rewound.map_err(|e| format!("rewind: {e}"))?;
    caught_up(&cluster, pipeline, &accounting).await?;
    Ok(copies as usize + rewound.records as usize)
}

/// Redrives every dead letter of accounting with `orderflowctl dlq redrive --all`, as an operator
/// would once a fault is fixed. The bad events fail again, so each must come back to the dead
/// letters, with the same origin and, for those the handler saw, one attempt more.
async fn redrive_dead_letters(pipeline: &Pipeline, expected: &Expected) -> Vec<String> {
    use orderflow_core::headers::{ATTEMPTS, ORIGIN_TOPIC};
    use orderflowctl::dlq::{redrive, RedriveRequest, Selection};
    use rdkafka::message::Headers;
    use rdkafka::Message;
    let cluster = match orderflowctl::Cluster::new(pipeline.kafka.clone()) {
        Ok(c) => c,
        Err(e) => return vec![format!("redrive: {e}")],
    };
    let group = pipeline.group("accounting");
    let request = RedriveRequest {
        topic: pipeline.orders_topic.clone(),
        group: group.clone(),
        selection: Selection::All,
        dry_run: false,
    };
    match redrive(&cluster, &request).await {
        Ok(report) if report.count == expected.bad.len() => {}
        Ok(report) => {
            return vec![format!(
                "redrive: {} dead letters redriven, expected {}",
                report.count,
                expected.bad.len()
            )]
        }
        Err(e) => return vec![format!("redrive: {e}")],
    }
    let dlq = orderflow_core::topics::dead_letter_topic(&pipeline.orders_topic, &group);
    let deadline = Instant::now() + Duration::from_secs(120);
    let dead = loop {
        let dead = read_all(&pipeline.kafka, &dlq).await.unwrap_or_default();
        if dead.len() >= 2 * expected.bad.len() || Instant::now() > deadline {
            break dead;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let header = |m: &rdkafka::message::OwnedMessage, name: &str| {
        m.headers()
            .and_then(|h| h.iter().find(|h| h.key == name))
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let mut v = Vec::new();
    for bad in &expected.bad {
        let mine: Vec<_> = dead
            .iter()
            .filter(|m| m.key() == Some(bad.key.as_bytes()))
            .collect();
        let [first, again] = mine.as_slice() else {
            v.push(format!(
                "redrive: {} ({}) is {} times in the dead letters, expected twice",
                bad.key,
                bad.kind,
                mine.len()
            ));
            continue;
        };
        let attempts = |m| header(m, ATTEMPTS).parse::<u32>().unwrap_or(u32::MAX);
        let (before, after) = (attempts(first), attempts(again));
        let want = before + 1;
        if after != want {
            v.push(format!(
                "redrive: {} ({}) came back with {after} attempts after {before}, expected {want}",
                bad.key, bad.kind
            ));
        }
        if header(again, ORIGIN_TOPIC) != pipeline.orders_topic {
            v.push(format!(
                "redrive: {} came back with origin {:?}",
                bad.key,
                header(again, ORIGIN_TOPIC)
            ));
        }
    }
    v
}

/// Waits until `groups` have no lag on the topic nor on their retry topics.
async fn caught_up(
    cluster: &orderflowctl::Cluster,
    pipeline: &Pipeline,
    groups: &[String],
) -> Result<(), String> {
    let query = orderflowctl::lag::LagQuery {
        topic: pipeline.orders_topic.clone(),
        groups: groups.to_vec(),
    };
    let deadline = Instant::now() + SETTLE;
    loop {
        let report = orderflowctl::lag::lag(cluster, &query)
            .await
            .map_err(|e| format!("lag: {e}"))?;
        let behind: i64 = report.groups.iter().map(|g| g.total_lag).sum();
        if behind == 0 && report.groups.len() == groups.len() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("the groups are still {behind} events behind"));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Checks until every promise holds or `SETTLE` passed, then once more a few seconds later so
/// a duplicate still on its way is caught.
async fn settle(pipeline: &Pipeline, expected: &Expected) -> Vec<String> {
    let deadline = Instant::now() + SETTLE;
    loop {
        let violations = check(pipeline, expected).await;
        if violations.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return violations;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    check(pipeline, expected).await
}

async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until `service` has done `count` units of work, so a kill lands mid-batch.
async fn wait_for_progress(pipeline: &Pipeline, service: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if progress(pipeline, service).await >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Work `service` has done so far, seen from the outside.
async fn progress(pipeline: &Pipeline, service: &str) -> usize {
    match service {
        "supplier-dispatch" => pipeline.supplier.jobs().len(),
        "mailer" => pipeline.smtp.messages().len(),
        "checkout" => pipeline
            .storefront()
            .accepted
            .load(std::sync::atomic::Ordering::Relaxed),
        _ => {
            let Ok(pool) = pipeline.database_of(service).await else {
                return 0;
            };
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_events")
                .fetch_one(&pool)
                .await
                .unwrap_or(0);
            pool.close().await;
            n as usize
        }
    }
}

/// Publishes byte-exact copies of every seventh event on the topic again.
async fn inject_duplicates(pipeline: &Pipeline) -> Result<BTreeMap<String, usize>, String> {
    use rdkafka::Message;
    let messages = read_all(&pipeline.kafka, &pipeline.orders_topic).await?;
    let mut copies = BTreeMap::new();
    let mut records = Vec::new();
    for m in messages.iter().step_by(7) {
        let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
        records.push((key.clone(), m.payload().unwrap_or_default().to_vec()));
        *copies.entry(key).or_insert(0) += 1;
    }
    produce(&pipeline.kafka, &pipeline.orders_topic, &records).await?;
    Ok(copies)
}

/// Publishes events no consumer can process: bytes that are not Avro, an Avro single-object
/// encoding with a fingerprint no schema has, and orders whose figures do not add up.
async fn inject_bad_events(pipeline: &Pipeline) -> Result<Vec<BadEvent>, String> {
    let run = &pipeline.run;
    let mut unknown_fingerprint = MAGIC.to_vec();
    // An 8-byte CRC-64-AVRO fingerprint that matches no schema of ours.
    unknown_fingerprint.extend([0xEE; 8]);
    unknown_fingerprint.extend(b"\x02\x04ok");
    let mut wrong_total = orderflow_testkit::sample_order_placed(&format!("bad-{run}-total"));
    wrong_total.totals.total_minor += 1;
    let mut wrong_tax = orderflow_testkit::sample_order_placed(&format!("bad-{run}-tax"));
    wrong_tax.totals.tax_minor -= 1;
    let encode = |o: &orderflow_core::OrderPlaced| o.encode().map_err(|e| e.to_string());
    let events = vec![
        (
            format!("bad-{run}-malformed"),
            b"{\"order_id\": \"not avro\"}".to_vec(),
            "malformed bytes",
        ),
        (
            format!("bad-{run}-fingerprint"),
            unknown_fingerprint,
            "unknown schema fingerprint",
        ),
        (
            wrong_total.order_id.clone(),
            encode(&wrong_total)?,
            "total does not add up",
        ),
        (
            wrong_tax.order_id.clone(),
            encode(&wrong_tax)?,
            "tax does not add up",
        ),
    ];
    let records: Vec<(String, Vec<u8>)> = events
        .iter()
        .map(|(k, bytes, _)| (k.clone(), bytes.clone()))
        .collect();
    produce(&pipeline.kafka, &pipeline.orders_topic, &records).await?;
    Ok(events
        .into_iter()
        .map(|(key, _, kind)| BadEvent { key, kind })
        .collect())
}
