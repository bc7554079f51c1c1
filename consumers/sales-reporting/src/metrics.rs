//! "Sales in the last hour" for a business dashboard, as Prometheus gauges per currency:
//! `orderflow_sales_last_hour_orders` and `orderflow_sales_last_hour_gross_minor`; and the
//! month's top products, per currency and SKU: `orderflow_sales_month_top_sku_units` and
//! `orderflow_sales_month_top_sku_gross_minor` (the [`TOP_PRODUCTS`] best by gross).
//!
//! The gauges are computed on each scrape from `recent_sales_by_minute` and the month's rows,
//! which every instance writes in the same transaction as it marks the orders processed, so any
//! instance answers with the same, current figures for the whole consumer group (a dashboard
//! should take `max`, not `sum`, across instances). They are a collector of the service's
//! `/metrics`, after the runtime's metrics.

use futures::future::BoxFuture;
use orderflow_core::observe::metrics::{Collect, CollectError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sqlx::PgPool;

use crate::store;

/// How many products per currency the top-products gauges show.
pub const TOP_PRODUCTS: i64 = 10;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CurrencyLabel {
    currency: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProductLabels {
    currency: String,
    sku: String,
}

/// The registry with the last-hour gauges, and the database they are read from.
pub struct LastHourSales {
    pool: PgPool,
    registry: Registry,
    orders: Family<CurrencyLabel, Gauge>,
    gross: Family<CurrencyLabel, Gauge>,
    top_units: Family<ProductLabels, Gauge>,
    top_gross: Family<ProductLabels, Gauge>,
    /// Keeps two scrapes from interleaving their updates and encodings.
    scrape: tokio::sync::Mutex<()>,
}

impl LastHourSales {
    pub fn new(pool: PgPool) -> Self {
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
        let top_units = Family::<ProductLabels, Gauge>::default();
        let top_gross = Family::<ProductLabels, Gauge>::default();
        registry.register(
            "orderflow_sales_month_top_sku_units",
            "Units sold this month (business time zone) of the best-selling SKUs by gross, per currency",
            top_units.clone(),
        );
        registry.register(
            "orderflow_sales_month_top_sku_gross_minor",
            "Gross of the best-selling SKUs this month (business time zone), in minor units, per currency",
            top_gross.clone(),
        );
        Self {
            pool,
            registry,
            orders,
            gross,
            top_units,
            top_gross,
            scrape: tokio::sync::Mutex::new(()),
        }
    }

    /// Refreshes the gauges from the database and encodes them, without the closing `# EOF`.
    pub async fn render(&self) -> Result<String, sqlx::Error> {
        let _scrape = self.scrape.lock().await;
        for (currency, orders, gross) in store::last_hour(&self.pool).await? {
            let label = CurrencyLabel { currency };
            self.orders.get_or_create(&label).set(orders);
            self.gross.get_or_create(&label).set(gross);
        }
        // A product that left the top is dropped, not left at its last figure.
        self.top_units.clear();
        self.top_gross.clear();
        for (currency, sku, units, gross) in store::top_products(&self.pool, TOP_PRODUCTS).await? {
            let labels = ProductLabels { currency, sku };
            self.top_units.get_or_create(&labels).set(units);
            self.top_gross.get_or_create(&labels).set(gross);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        Ok(out)
    }
}

impl Collect for LastHourSales {
    fn collect(&self) -> BoxFuture<'_, Result<String, CollectError>> {
        Box::pin(async move { Ok(self.render().await?) })
    }
}
