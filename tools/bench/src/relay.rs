//! Phase 2: the outbox relay. Orders are written to a fresh checkout schema while no relay runs,
//! then checkout starts and the relay publishes them; the rate is the rows marked published
//! (after Kafka's acknowledgement) per second, from the first to the last. A batch's rows share
//! one `published_at`, so the rate is read from the count over time, not from those stamps.

use std::time::Duration;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use orderflow_bench::cpu::CpuSnapshot;
use orderflow_bench::memory::Sampler;
use orderflow_faults::pipeline::Pipeline;

use crate::{events, Bench};

pub async fn run(bench: &mut Bench) -> anyhow::Result<()> {
    let mut p = Pipeline::prepare(&bench.servers, "bench-relay", &bench.service_env()).await;
    let pool = p.database_of("checkout").await?;
    checkout::store::MIGRATOR.run(&pool).await?;
    let count = bench.relay_events;
    futures::stream::iter(0..count)
        .map(|n| {
            let (pool, topic, run) = (&pool, &p.orders_topic, &p.run);
            async move {
                let (request, event) = events::order_placed(run, n);
                let payload = event.encode().context("encoding an event")?;
                checkout::store::insert_order(
                    pool,
                    &request,
                    &event,
                    &payload,
                    topic,
                    &serde_json::json!({}),
                )
                .await
                .context("writing an order and its outbox row")?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(2)
        .try_collect::<()>()
        .await?;
    println!("  {count} orders in the outbox");

    let cpu = CpuSnapshot::take();
    p.start_service("checkout");
    let pid = p.pid("checkout").context("checkout did not start")?;
    let sampler = Sampler::start(pid, Duration::from_millis(500));
    let drained = crate::progress::until(count, Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM outbox WHERE published_at IS NOT NULL",
            )
            .fetch_one(&pool)
            .await
            .unwrap_or(0) as u64
        }
    })
    .await;
    let memory = sampler.profile();
    bench.profile("outbox relay", &cpu);
    bench.discard(p).await;
    let rate = drained
        .map_err(|stalled| anyhow::anyhow!("the relay stalled at {stalled} of {count}"))?
        .per_second();
    println!(
        "  relay: {rate:.0} events/s (commit to ack), checkout peak {:.1} MiB",
        memory.peak_mib
    );
    bench.figure(
        "relay",
        "relay.events_per_s",
        "Outbox relay, commit to Kafka ack (events/s)",
        rate,
        "events/s",
        true,
    );
    bench.figure(
        "memory",
        "memory.checkout.relay.peak_mib",
        "checkout peak while relaying (MiB)",
        memory.peak_mib,
        "MiB",
        false,
    );
    Ok(())
}
