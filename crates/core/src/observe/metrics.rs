//! The process's Prometheus metrics. Metrics recorded from code paths (the consumer runtime,
//! checkout's answers) live in one process-wide registry, registered once, so every service that
//! runs on the runtime exposes them without wiring of its own; several services in one process
//! (the end-to-end pipeline) tell theirs apart by the `group` label. Metrics read from a
//! service's own state at scrape time (checkout's outbox, the sales of the last hour) are
//! [`Collect`]ors of that service, rendered after the shared registry.

use std::sync::{Arc, LazyLock, Mutex};

use futures::future::BoxFuture;
use prometheus_client::registry::Registry;

/// The content type of the OpenMetrics text format that [`render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

/// Registers metrics in the process-wide registry. Call it once per metric family (from a
/// `LazyLock`), or the family is listed twice.
pub fn register(f: impl FnOnce(&mut Registry)) {
    f(&mut REGISTRY
        .lock()
        .expect("the metrics registry lock is never poisoned"));
}

pub type CollectError = Box<dyn std::error::Error + Send + Sync>;

/// Metrics a service computes from its own state when scraped.
pub trait Collect: Send + Sync + 'static {
    /// The metric families in OpenMetrics text without the closing `# EOF` (as
    /// `prometheus_client::encoding::text::encode_registry` writes them).
    fn collect(&self) -> BoxFuture<'_, Result<String, CollectError>>;
}

/// The process-wide registry, then each collector's families, then `# EOF`. A collector that
/// fails (its database is down) is left out and logged, so the runtime's metrics still answer
/// when they matter most.
pub async fn render(collectors: &[Arc<dyn Collect>]) -> String {
    let mut out = String::new();
    prometheus_client::encoding::text::encode_registry(
        &mut out,
        &REGISTRY
            .lock()
            .expect("the metrics registry lock is never poisoned"),
    )
    .expect("writing to a String cannot fail");
    for collector in collectors {
        match collector.collect().await {
            Ok(families) => out.push_str(&families),
            Err(e) => tracing::warn!(error = %e, "some metrics are left out of this scrape"),
        }
    }
    prometheus_client::encoding::text::encode_eof(&mut out)
        .expect("writing to a String cannot fail");
    out
}

/// A collector the service also keeps a handle on (to count into it).
impl<C: Collect> Collect for Arc<C> {
    fn collect(&self) -> BoxFuture<'_, Result<String, CollectError>> {
        C::collect(self)
    }
}
