//! Phase 3: each consumer alone drains a pre-filled topic, next to its ceilings measured in the
//! same run on the same topic: a null handler on the same runtime and Kafka settings (what the
//! broker and the decoder allow), and PostgreSQL's own bulk-insert rate divided by the rows the
//! consumer writes per event (what the database allows it). Supplier dispatch runs against a
//! supplier that answers in 50 ms, and is held to its in-flight bound instead.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use orderflow_bench::cpu::CpuSnapshot;
use orderflow_bench::memory::Sampler;
use orderflow_core::event::OrderPlaced;
use orderflow_core::runtime::{self, Batched, ConsumerSettings, Delivery, Handler, HandlerError};
use orderflow_faults::pipeline::{Pipeline, CONSUMERS};

use crate::progress::{self, Rate};
use crate::{events, Bench};

/// The supplier's answer time in the dispatch figure.
const SUPPLIER_LATENCY: Duration = Duration::from_millis(50);

/// Events supplier dispatch drains, however many were pre-filled: at its bound (32 in flight per
/// 50 ms, 640 events/s) more would only lengthen the run, and its figure is a share of that bound.
const SUPPLIER_DISPATCH_EVENTS: u64 = 20_000;

/// Times each ceiling is measured, the median kept: one measurement of either can differ from the
/// next by a third on a shared 2-core box, and every consumer's ratio moves with it.
const CEILING_RUNS: usize = 3;

pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let mut p = Pipeline::prepare(&bench.servers, "bench-drain", &bench.service_env()).await;
    p.supplier.set_latency(SUPPLIER_LATENCY);
    let events = bench.events;
    let took = events::prefill(&p.kafka, &p.orders_topic, &p.run, events).await?;
    println!(
        "  pre-filled {} with {events} events in {:.1} s",
        p.orders_topic,
        took.as_secs_f64()
    );

    let cpu = CpuSnapshot::take();
    let mut nulls = Vec::new();
    for attempt in 0..CEILING_RUNS {
        nulls.push(null_handler_rate(&mut p, events, attempt).await?);
    }
    bench.profile("null handler drain (ceiling)", &cpu);
    let mut bulks = Vec::new();
    for attempt in 0..CEILING_RUNS {
        bulks.push(bulk_insert_rate(&p, events.min(200_000), attempt).await?);
    }
    let (null, bulk) = (median(&nulls), median(&bulks));
    bench.figure(
        "consumers",
        "consumers.ceiling.null_handler.events_per_s",
        "Ceiling: null handler (events/s)",
        null,
        "events/s",
        true,
    );
    bench.figure(
        "consumers",
        "consumers.ceiling.postgres_bulk_insert.rows_per_s",
        "Ceiling: PostgreSQL bulk insert (rows/s)",
        bulk,
        "rows/s",
        true,
    );
    println!(
        "  ceilings, the median of {CEILING_RUNS}: null handler {null:.0} events/s ({}), \
         bulk insert {bulk:.0} rows/s ({})",
        listed(&nulls),
        listed(&bulks)
    );

    let http = reqwest::Client::new();
    let chosen: Vec<&'static str> = CONSUMERS
        .into_iter()
        .filter(|c| bench.consumers.iter().any(|chosen| chosen == c))
        .collect();
    for service in chosen {
        let goal = match service {
            "supplier-dispatch" => events.min(SUPPLIER_DISPATCH_EVENTS),
            _ => events,
        };
        let cpu = CpuSnapshot::take();
        p.start_service(service);
        let pid = p.pid(service).context("the consumer did not start")?;
        let sampler = Sampler::start(pid, Duration::from_millis(500));
        let url = p.metrics_url(service);
        let drained =
            progress::until(goal, Duration::from_secs(60), || {
                let (http, url) = (&http, &url);
                async move {
                    progress::scrape(http, url, "orderflow_events_processed_total").await as u64
                }
            })
            .await;
        let memory = sampler.profile();
        bench.profile(&format!("{service} drain"), &cpu);
        if !p.stop_service(service) {
            bench.note(format!("{service} did not stop cleanly after its drain"));
        }
        let rate = match drained {
            Ok(rate) => rate,
            Err(stalled) => {
                bench.note(format!(
                    "{service} stalled at {stalled} of {goal} events; logs in {}",
                    p.log_dir().display()
                ));
                continue;
            }
        };
        println!(
            "  {service}: {:.0} events/s, memory peak {:.1} MiB (growth {:+.1} MiB)",
            rate.per_second(),
            memory.peak_mib,
            memory.growth_mib()
        );
        bench.figure(
            "consumers",
            &format!("consumers.{service}.events_per_s"),
            &format!("{service} (events/s)"),
            rate.per_second(),
            "events/s",
            true,
        );
        bench.figure(
            "memory",
            &format!("memory.{service}.drain.peak_mib"),
            &format!("{service} peak while draining {goal} (MiB)"),
            memory.peak_mib,
            "MiB",
            false,
        );
        bench.figure(
            "memory",
            &format!("memory.{service}.drain.growth_mib"),
            &format!("{service} growth, early to late in the drain (MiB)"),
            memory.growth_mib(),
            "MiB",
            false,
        );
        bench.target(
            &format!("memory.{service}.drain.peak_mib"),
            &format!("{service} stays under 100 MiB through {goal} events"),
            memory.peak_mib,
            100.0,
            false,
        );
        if service == "supplier-dispatch" {
            let bound = runtime::ConsumerSettings::new("", "").concurrency as f64;
            let ideal = bound / SUPPLIER_LATENCY.as_secs_f64();
            bench.figure(
                "consumers",
                "consumers.supplier-dispatch.share_of_in_flight_bound",
                "supplier-dispatch / (in-flight bound / 50 ms)",
                rate.per_second() / ideal,
                "ratio",
                true,
            );
            bench.target(
                "consumers.supplier-dispatch.share_of_in_flight_bound",
                &format!(
                    "supplier dispatch with a 50 ms supplier reaches >= 80% of {bound} in flight / 50 ms = {ideal:.0} events/s"
                ),
                rate.per_second() / ideal,
                0.8,
                true,
            );
        } else {
            // The database's ceiling in this consumer's unit: it writes several rows per event.
            let rows = rows_written(&p, service).await? as f64 / events as f64;
            let database = bulk / rows.max(1.0);
            let ceiling = null.min(database);
            println!(
                "  {service}: {rows:.1} rows written per event, so the database allows {database:.0} events/s"
            );
            bench.figure(
                "consumers",
                &format!("consumers.{service}.rows_per_event"),
                &format!("{service} rows written per event"),
                rows,
                "rows",
                false,
            );
            bench.figure(
                "consumers",
                &format!("consumers.{service}.share_of_null_ceiling"),
                &format!("{service} / null handler"),
                rate.per_second() / null,
                "ratio",
                true,
            );
            bench.figure(
                "consumers",
                &format!("consumers.{service}.share_of_ceiling"),
                &format!("{service} / ceiling (the lower of the two)"),
                rate.per_second() / ceiling,
                "ratio",
                true,
            );
            bench.target(
                &format!("consumers.{service}.share_of_ceiling"),
                &format!(
                    "{service} drains at >= 50% of its ceiling ({ceiling:.0} events/s: null handler {null:.0}, database {database:.0})"
                ),
                rate.per_second() / ceiling,
                0.5,
                true,
            );
        }
    }
    bench.discard(p).await;
    Ok(())
}

/// The runtime with a handler that does nothing but count: the broker's and the decoder's limit.
/// It drains 100,000 events in about half a second, too short to time well by sampling a count
/// every 100 ms, so the handler notes when its first run ended and when the last event arrived.
#[derive(Clone, Default)]
struct NullHandler {
    handled: Arc<AtomicU64>,
    /// When the first run was handled, and how many events it held.
    first: Arc<OnceLock<(Instant, u64)>>,
    /// When the count reached `goal`.
    done: Arc<OnceLock<Instant>>,
    goal: u64,
}

impl NullHandler {
    fn count(&self, events: u64) {
        let now = Instant::now();
        self.first.get_or_init(|| (now, events));
        if self.handled.fetch_add(events, Ordering::Relaxed) + events >= self.goal {
            self.done.get_or_init(|| now);
        }
    }

    /// The events after the first run, over the time since it.
    fn rate(&self) -> Option<Rate> {
        let (start, first) = *self.first.get()?;
        Some(Rate {
            counted: self.goal.saturating_sub(first),
            elapsed: self.done.get()?.duration_since(start),
        })
    }
}

impl Handler for NullHandler {
    type Event = OrderPlaced;

    async fn handle(&self, _event: &OrderPlaced, _delivery: &Delivery) -> Result<(), HandlerError> {
        self.count(1);
        Ok(())
    }

    async fn handle_batch(&self, batch: &[Batched<OrderPlaced>]) -> Result<(), HandlerError> {
        self.count(batch.len() as u64);
        Ok(())
    }
}

/// The middle one of `rates`, per second.
fn median(rates: &[Rate]) -> f64 {
    let mut per_second: Vec<f64> = rates.iter().map(Rate::per_second).collect();
    per_second.sort_by(f64::total_cmp);
    per_second[per_second.len() / 2]
}

fn listed(rates: &[Rate]) -> String {
    rates
        .iter()
        .map(|r| format!("{:.0}", r.per_second()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The null handler's drain of the whole topic; each `attempt` reads it as a group of its own.
async fn null_handler_rate(p: &mut Pipeline, events: u64, attempt: usize) -> anyhow::Result<Rate> {
    // The settings the Postgres-backed consumers run with: runs of events over a few lanes.
    let settings =
        ConsumerSettings::batched(format!("null-{}-{attempt}", p.run), p.orders_topic.clone());
    p.create_topics(&[&settings.dead_letter_topic, &settings.retry_topic])
        .await?;
    let handler = NullHandler {
        goal: events,
        ..NullHandler::default()
    };
    let watched = handler.clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let kafka = p.kafka.clone();
    let task = tokio::spawn(async move {
        runtime::run(&kafka, settings, handler, async {
            let _ = stopped.await;
        })
        .await
    });
    let drained = progress::until(events, Duration::from_secs(60), || {
        let n = watched.handled.load(Ordering::Relaxed);
        async move { n }
    })
    .await;
    let _ = stop.send(());
    task.await.context("the null handler's runtime")??;
    drained
        .map_err(|stalled| anyhow::anyhow!("the null handler stalled at {stalled} of {events}"))?;
    watched
        .rate()
        .context("the null handler reached its goal without timing it")
}

/// Rows a consumer inserted or updated in its schema, from PostgreSQL's table statistics (its
/// connections closed when it stopped, which flushes them).
async fn rows_written(p: &Pipeline, service: &str) -> anyhow::Result<i64> {
    let pool = p.database_of(service).await?;
    let rows = sqlx::query_scalar(
        "SELECT coalesce(sum(n_tup_ins + n_tup_upd), 0)::bigint FROM pg_stat_user_tables
         WHERE schemaname = $1",
    )
    .bind(p.schema(service))
    .fetch_one(&pool)
    .await?;
    pool.close().await;
    Ok(rows)
}

/// Rows of an event's size inserted 500 per statement and transaction, from as many connections
/// at once as the batching consumers have lanes: what a consumer batching its writes gets at best.
async fn bulk_insert_rate(p: &Pipeline, rows: u64, attempt: usize) -> anyhow::Result<Rate> {
    let writers = ConsumerSettings::batched("", "").concurrency as u64;
    let schema = format!("bench_bulk_{}_{attempt}", p.run);
    let pool = orderflow_core::db::DatabaseConfig {
        url: p.database_url.clone(),
        schema: schema.clone(),
        max_connections: writers as u32,
    }
    .connect()
    .await?;
    sqlx::query(
        "CREATE TABLE bulk (event_id TEXT PRIMARY KEY, order_id TEXT NOT NULL,
             amount_minor BIGINT NOT NULL, detail JSONB NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .execute(&pool)
    .await?;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for writer in 0..writers {
        let pool = pool.clone();
        tasks.spawn(async move {
            // Writer w inserts the batches w, w + writers, w + 2 * writers, ...
            for first in (writer * 500..rows).step_by(500 * writers as usize) {
                insert_bulk(&pool, first..(first + 500).min(rows)).await?;
            }
            Ok::<_, sqlx::Error>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let rate = Rate {
        counted: rows,
        elapsed: started.elapsed(),
    };
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await?;
    Ok(rate)
}

async fn insert_bulk(pool: &sqlx::PgPool, batch: std::ops::Range<u64>) -> Result<(), sqlx::Error> {
    let ids: Vec<String> = batch.clone().map(|n| format!("evt-{n}")).collect();
    let orders: Vec<String> = batch.clone().map(|n| format!("ord-{n}")).collect();
    let amounts: Vec<i64> = batch.clone().map(|n| (n as i64 % 10_000) * 7).collect();
    let details: Vec<serde_json::Value> = batch
        .map(|n| serde_json::json!({"sku": format!("SKU-{}", n % 50), "quantity": n % 3 + 1, "currency": "EUR"}))
        .collect();
    let mut tx = pool.begin().await?;
    sqlx::query(
        "INSERT INTO bulk (event_id, order_id, amount_minor, detail)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::jsonb[])",
    )
    .bind(&ids)
    .bind(&orders)
    .bind(&amounts)
    .bind(&details)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}
