//! "Sales in the last hour" for a business dashboard, as Prometheus gauges per currency:
//! `orderflow_sales_last_hour_orders` and `orderflow_sales_last_hour_gross_minor`.
//!
//! The gauges are computed on each scrape from `recent_sales`, which every instance writes in the
//! same transaction as the report, so any instance answers with the same, current figures for the
//! whole consumer group (a dashboard should take `max`, not `sum`, across instances).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sqlx::PgPool;

use crate::store;

/// The content type of the OpenMetrics text format that `render` writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CurrencyLabel {
    currency: String,
}

/// The registry with the last-hour gauges.
pub struct LastHourSales {
    registry: Registry,
    orders: Family<CurrencyLabel, Gauge>,
    gross: Family<CurrencyLabel, Gauge>,
    /// Keeps two scrapes from interleaving their updates and encodings.
    scrape: tokio::sync::Mutex<()>,
}

impl Default for LastHourSales {
    fn default() -> Self {
        let mut registry = Registry::default();
        let orders = Family::<CurrencyLabel, Gauge>::default();
        let gross = Family::<CurrencyLabel, Gauge>::default();
        registry.register(
            "orderflow_sales_last_hour_orders",
            "Orders placed within the last hour, per currency",
            orders.clone(),
        );
        registry.register(
            "orderflow_sales_last_hour_gross_minor",
            "Gross (order totals incl. tax and shipping) of orders placed within the last hour, in minor units, per currency",
            gross.clone(),
        );
        Self {
            registry,
            orders,
            gross,
            scrape: tokio::sync::Mutex::new(()),
        }
    }
}

impl LastHourSales {
    /// Refreshes the gauges from the database and encodes them.
    pub async fn render(&self, pool: &PgPool) -> Result<String, sqlx::Error> {
        let _scrape = self.scrape.lock().await;
        for (currency, orders, gross) in store::last_hour(pool).await? {
            let label = CurrencyLabel { currency };
            self.orders.get_or_create(&label).set(orders);
            self.gross.get_or_create(&label).set(gross);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        Ok(out)
    }
}
