//! `order <ORDER_ID>`: where one order is. Checkout's `orders` and `outbox` tables say whether
//! it was accepted and published; per consumer group, the group's `processed_events`, its retry
//! topic past its committed offset and its dead-letter topic say whether it was processed, is
//! waiting for a retry, was dead-lettered, or is still pending; and each service's own tables say
//! what it did (its `effect` module).

use std::fmt;
use std::ops::ControlFlow;

use chrono::{DateTime, TimeZone, Utc};
use orderflow_core::headers::{RETRY_NOT_BEFORE, RETRY_REASON};
use orderflow_core::topics::{dead_letter_topic, retry_topic};
use rdkafka::Message;
use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::cluster::{blocking, Cluster};
use crate::dlq::DeadLetter;
use crate::error::{Context, Error};
use crate::record::{self, Coordinates};

/// The consumer services whose effects `order` knows how to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Service {
    SupplierDispatch,
    Notifications,
    Accounting,
    SalesReporting,
    ProductAnalytics,
}

impl Service {
    pub const ALL: [Service; 5] = [
        Service::SupplierDispatch,
        Service::Notifications,
        Service::Accounting,
        Service::SalesReporting,
        Service::ProductAnalytics,
    ];

    /// The service's name, which is also its default consumer group.
    pub fn name(self) -> &'static str {
        match self {
            Service::SupplierDispatch => "supplier-dispatch",
            Service::Notifications => "notifications",
            Service::Accounting => "accounting",
            Service::SalesReporting => "sales-reporting",
            Service::ProductAnalytics => "product-analytics",
        }
    }
}

/// One consumer service as deployed: its group and database schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    pub service: Service,
    pub group: String,
    pub schema: String,
}

impl Deployment {
    /// The service under its own group, in the schema named after the group ('-' as '_').
    pub fn default_for(service: Service) -> Self {
        Self::with_group(service, service.name())
    }

    pub fn with_group(service: Service, group: &str) -> Self {
        Self {
            service,
            group: group.to_string(),
            schema: group.replace('-', "_"),
        }
    }
}

/// Which order to look for, and where.
#[derive(Debug, Clone)]
pub struct OrderQuery {
    pub order_id: String,
    pub topic: String,
    pub checkout_schema: String,
    pub consumers: Vec<Deployment>,
}

impl OrderQuery {
    /// The deployed defaults: `orders.placed`, schema `checkout`, the five services.
    pub fn new(order_id: impl Into<String>) -> Self {
        Self {
            order_id: order_id.into(),
            topic: orderflow_core::topics::ORDERS_PLACED.to_string(),
            checkout_schema: "checkout".into(),
            consumers: Service::ALL.map(Deployment::default_for).to_vec(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckoutOrder {
    pub event_id: String,
    pub status: String,
    pub placed_at: DateTime<Utc>,
    pub currency: String,
    pub total_minor: i64,
    pub published: bool,
    pub published_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The group's idempotency store has the order's event (supplier-dispatch: every print
    /// job of the order is accepted and announced).
    Processed,
    /// On the group's retry topic past its committed offset.
    Retrying,
    /// On the group's dead-letter topic (and not processed since).
    DeadLettered,
    /// None of the above: not delivered yet, or being handled.
    Pending,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Processed => "processed",
            Status::Retrying => "retrying",
            Status::DeadLettered => "dead-lettered",
            Status::Pending => "pending",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerState {
    pub service: Service,
    pub group: String,
    pub schema: String,
    pub status: Status,
    pub detail: String,
    /// What the service did for the order, from its own tables.
    pub effect: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effect_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OrderReport {
    pub order_id: String,
    pub topic: String,
    /// `None`: checkout has no such order (see `checkout_note`).
    pub checkout: Option<CheckoutOrder>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkout_note: Option<String>,
    pub consumers: Vec<ConsumerState>,
}

/// What the group's topics hold for the order.
#[derive(Debug, Default)]
struct Sightings {
    dead_letters: Vec<DeadLetter>,
    /// (where, not before, why) of each copy on the retry topic not yet committed.
    retries: Vec<(Coordinates, Option<String>, Option<String>)>,
    event_ids: Vec<String>,
    /// (placed_at millis, currency) from a decoded copy, for sales-reporting's month.
    placed: Option<(i64, String)>,
}

/// Finds where `query.order_id` is.
pub async fn order(
    cluster: &Cluster,
    database_url: &str,
    query: &OrderQuery,
) -> Result<OrderReport, Error> {
    let options = database_url
        .parse::<PgConnectOptions>()
        .context("reading the database URL")?;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone())
        .await
        .context("connecting")?;

    let (checkout, checkout_note) =
        checkout_order(&pool, &query.checkout_schema, &query.order_id).await?;

    let mut consumers = Vec::with_capacity(query.consumers.len());
    for deployment in &query.consumers {
        let sightings = blocking({
            let cluster = cluster.clone();
            let topic = query.topic.clone();
            let group = deployment.group.clone();
            let order_id = query.order_id.clone();
            move || sightings(&cluster, &topic, &group, &order_id)
        })
        .await?;
        let mut event_ids = sightings.event_ids.clone();
        if let Some(c) = &checkout {
            event_ids.push(c.event_id.clone());
        }
        let schema_pool = PgPoolOptions::new().max_connections(1).connect_lazy_with(
            options
                .clone()
                .options([("search_path", quote_identifier(&deployment.schema).as_str())]),
        );
        let processed = match processed_at(&pool, deployment, &event_ids).await? {
            Some(at) => Some(format!("processed at {at}")),
            None => finished(&schema_pool, deployment.service, &query.order_id)
                .await
                .context(format!("reading {}'s tables", deployment.service.name()))?,
        };
        let (status, detail) = status_of(
            deployment,
            &query.topic,
            processed,
            &sightings,
            checkout.as_ref(),
        );
        let placed = checkout
            .as_ref()
            .map(|c| (c.placed_at, c.currency.clone()))
            .or_else(|| {
                let (ms, currency) = sightings.placed.clone()?;
                Some((Utc.timestamp_millis_opt(ms).single()?, currency))
            });
        let effect = effect(
            &schema_pool,
            deployment.service,
            &query.order_id,
            status,
            placed,
        )
        .await;
        schema_pool.close().await;
        let (effect, effect_error) = match effect {
            Ok(effect) => (effect, None),
            Err(e) if is_undefined_table(&e) => (None, None),
            Err(e) => (None, Some(e.to_string())),
        };
        consumers.push(ConsumerState {
            service: deployment.service,
            group: deployment.group.clone(),
            schema: deployment.schema.clone(),
            status,
            detail,
            effect,
            effect_error,
        });
    }
    pool.close().await;
    Ok(OrderReport {
        order_id: query.order_id.clone(),
        topic: query.topic.clone(),
        checkout,
        checkout_note,
        consumers,
    })
}

/// The order as checkout stored it, or why it is not there.
async fn checkout_order(
    pool: &PgPool,
    schema: &str,
    order_id: &str,
) -> Result<(Option<CheckoutOrder>, Option<String>), Error> {
    if !table_exists(pool, schema, "orders").await? {
        return Ok((
            None,
            Some(format!(
                "no checkout tables in schema {schema} (give checkout's schema with \
                 --checkout-schema)"
            )),
        ));
    }
    let s = quote_identifier(schema);
    let row: Option<(String, String, DateTime<Utc>, String, i64)> = sqlx::query_as(&format!(
        "SELECT event_id, status, placed_at, currency, total_minor FROM {s}.orders
         WHERE order_id = $1"
    ))
    .bind(order_id)
    .fetch_optional(pool)
    .await
    .context("reading checkout's orders")?;
    let Some((event_id, status, placed_at, currency, total_minor)) = row else {
        return Ok((
            None,
            Some(format!(
                "checkout (schema {schema}) has no order {order_id}"
            )),
        ));
    };
    let (published, published_at): (Option<bool>, Option<DateTime<Utc>>) =
        sqlx::query_as(&format!(
            "SELECT bool_or(published_at IS NOT NULL), max(published_at) FROM {s}.outbox
             WHERE order_id = $1"
        ))
        .bind(order_id)
        .fetch_one(pool)
        .await
        .context("reading checkout's outbox")?;
    Ok((
        Some(CheckoutOrder {
            event_id,
            status,
            placed_at,
            currency,
            total_minor,
            published: published.unwrap_or(false),
            published_at,
        }),
        None,
    ))
}

async fn table_exists(pool: &PgPool, schema: &str, table: &str) -> Result<bool, Error> {
    let name = format!("{}.{}", quote_identifier(schema), quote_identifier(table));
    let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(&name)
        .fetch_one(pool)
        .await
        .context(format!("looking for table {name}"))?;
    Ok(found.is_some())
}

/// When the group processed one of the order's events, from the runtime's `processed_events`
/// in the group's schema.
async fn processed_at(
    pool: &PgPool,
    deployment: &Deployment,
    event_ids: &[String],
) -> Result<Option<DateTime<Utc>>, Error> {
    let schema = &deployment.schema;
    if event_ids.is_empty() || !table_exists(pool, schema, "processed_events").await? {
        return Ok(None);
    }
    sqlx::query_scalar(&format!(
        "SELECT min(processed_at) FROM {}.processed_events
         WHERE consumer_group = $1 AND event_id = ANY($2)",
        quote_identifier(schema)
    ))
    .bind(&deployment.group)
    .bind(event_ids)
    .fetch_one(pool)
    .await
    .context(format!("reading {schema}.processed_events"))
}

/// Whether a service that keeps its own record of what it finished (rather than the runtime's
/// `processed_events`) is done with the order, described.
async fn finished(
    pool: &PgPool,
    service: Service,
    order_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    match service {
        Service::SupplierDispatch => {
            match supplier_dispatch::effect::finished(pool, order_id).await {
                Ok(true) => Ok(Some(
                    "processed: every print job accepted and announced".into(),
                )),
                Ok(false) => Ok(None),
                Err(e) if is_undefined_table(&e) => Ok(None),
                Err(e) => Err(e),
            }
        }
        _ => Ok(None),
    }
}

/// The service has not created its tables in this schema: it never ran there.
fn is_undefined_table(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("42P01"))
}

/// The order's records on the group's dead-letter topic, and on its retry topic past the
/// group's committed offset.
fn sightings(
    cluster: &Cluster,
    topic: &str,
    group: &str,
    order_id: &str,
) -> Result<Sightings, Error> {
    let mut found = Sightings::default();
    let is_order = |message: &rdkafka::message::BorrowedMessage<'_>| {
        let decoded = record::decode(message, cluster.registry()).ok();
        let matches = record::key_of(message).as_deref() == Some(order_id)
            || decoded.as_ref().is_some_and(|e| e.order_id == order_id);
        matches.then_some(decoded)
    };
    let dlq = dead_letter_topic(topic, group);
    if cluster.partition_count(&dlq)?.is_some() {
        cluster.read_all(&dlq, |message| {
            if let Some(decoded) = is_order(message) {
                if let Some(event) = decoded {
                    found.event_ids.push(event.event_id.clone());
                    found.placed = Some((event.placed_at, event.currency.clone()));
                }
                found
                    .dead_letters
                    .push(DeadLetter::of(message, cluster.registry()));
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    let retry = retry_topic(topic, group);
    if cluster.partition_count(&retry)?.is_some() {
        cluster.read_uncommitted(group, &retry, |message| {
            if let Some(decoded) = is_order(message) {
                if let Some(event) = decoded {
                    found.event_ids.push(event.event_id.clone());
                    found.placed = Some((event.placed_at, event.currency.clone()));
                }
                found.retries.push((
                    Coordinates {
                        partition: message.partition(),
                        offset: message.offset(),
                    },
                    record::header(message, RETRY_NOT_BEFORE),
                    record::header(message, RETRY_REASON),
                ));
            }
            Ok(ControlFlow::Continue(()))
        })?;
    }
    Ok(found)
}

fn status_of(
    deployment: &Deployment,
    topic: &str,
    processed: Option<String>,
    sightings: &Sightings,
    checkout: Option<&CheckoutOrder>,
) -> (Status, String) {
    if let Some(detail) = processed {
        return (Status::Processed, detail);
    }
    if let Some((at, not_before, reason)) = sightings.retries.last() {
        let mut detail = format!("on {} at {at}", retry_topic(topic, &deployment.group));
        if let Some(t) = not_before {
            detail.push_str(&format!(", not before {t}"));
        }
        if let Some(r) = reason {
            detail.push_str(&format!(", after: {r}"));
        }
        return (Status::Retrying, detail);
    }
    if let Some(letter) = sightings.dead_letters.last() {
        return (
            Status::DeadLettered,
            format!(
                "in {} at {}: {} (attempts {}, failed at {}); `orderflowctl dlq redrive --group \
                 {} --at {}` once the cause is fixed",
                dead_letter_topic(topic, &deployment.group),
                letter.at,
                letter.reason.as_deref().unwrap_or("no reason given"),
                letter.attempts.map_or("-".into(), |a| a.to_string()),
                letter.failed_at.as_deref().unwrap_or("-"),
                deployment.group,
                letter.at
            ),
        );
    }
    let detail = match checkout {
        Some(c) if !c.published => "not delivered: checkout has not published the order yet",
        _ => "not processed yet: not delivered, or being handled (see `orderflowctl lag`)",
    };
    (Status::Pending, detail.to_string())
}

/// What the service did for the order, from its own tables.
async fn effect(
    pool: &PgPool,
    service: Service,
    order_id: &str,
    status: Status,
    placed: Option<(DateTime<Utc>, String)>,
) -> Result<Option<String>, sqlx::Error> {
    match service {
        Service::SupplierDispatch => supplier_dispatch::effect::effect(pool, order_id).await,
        Service::Notifications => notifications::effect::effect(pool, order_id).await,
        Service::Accounting => accounting::effect::effect(pool, order_id).await,
        // The report keeps sums, so its row only says something about an order it counted.
        Service::SalesReporting => match (status, placed) {
            (Status::Processed, Some((placed_at, currency))) => {
                sales_reporting::effect::effect(pool, placed_at, &currency).await
            }
            _ => Ok(None),
        },
        Service::ProductAnalytics => product_analytics::effect::effect(pool, order_id).await,
    }
}

/// A Postgres identifier in double quotes, safe to splice into SQL.
fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl fmt::Display for OrderReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "order {}", self.order_id)?;
        match &self.checkout {
            Some(c) => {
                writeln!(
                    f,
                    "  checkout:  {} at {}, {} {} minor units, event {}",
                    c.status, c.placed_at, c.currency, c.total_minor, c.event_id
                )?;
                match c.published_at {
                    Some(at) if c.published => {
                        writeln!(f, "  published: yes, to {} at {at}", self.topic)?
                    }
                    _ => writeln!(f, "  published: no, waiting in checkout's outbox")?,
                }
            }
            None => writeln!(
                f,
                "  checkout:  {}",
                self.checkout_note.as_deref().unwrap_or("not found")
            )?,
        }
        let width = self
            .consumers
            .iter()
            .map(|c| c.group.len())
            .max()
            .unwrap_or(0);
        for c in &self.consumers {
            writeln!(
                f,
                "  {:width$}  {:<13}  {}",
                c.group,
                c.status.as_str(),
                c.detail
            )?;
            if let Some(effect) = &c.effect {
                writeln!(f, "  {:width$}  {:<13}  effect: {effect}", "", "")?;
            }
            if let Some(error) = &c.effect_error {
                writeln!(f, "  {:width$}  {:<13}  effect unknown: {error}", "", "")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_follow_the_group_name() {
        let d = Deployment::default_for(Service::SupplierDispatch);
        assert_eq!(d.group, "supplier-dispatch");
        assert_eq!(d.schema, "supplier_dispatch");
        let d = Deployment::with_group(Service::Accounting, "accounting-eu");
        assert_eq!(d.schema, "accounting_eu");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_identifier("checkout"), "\"checkout\"");
        assert_eq!(quote_identifier("a\"b"), "\"a\"\"b\"");
    }
}
