//! Shared set-up: a topic, its dead-letter topic, a consumer group and a schema of the test's own;
//! varied orders; and the expected report computed independently of the service's code.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use orderflow_core::config::KafkaConfig;
use orderflow_core::event::{tax_of, SalesAgent};
use orderflow_core::OrderPlaced;
use orderflow_testkit as kit;
use sales_reporting::{SalesReporting, Settings};
use serde_json::Value;

pub struct Setup {
    pub fixture: kit::ConsumerFixture,
    pub http: reqwest::Client,
}

impl std::ops::Deref for Setup {
    type Target = kit::ConsumerFixture;

    fn deref(&self) -> &kit::ConsumerFixture {
        &self.fixture
    }
}

pub async fn setup(partitions: i32) -> Setup {
    Setup {
        fixture: kit::ConsumerFixture::new("sales", partitions).await,
        http: reqwest::Client::new(),
    }
}

impl Setup {
    pub fn settings(&self, business_timezone: &str) -> Settings {
        Settings {
            kafka: KafkaConfig::plaintext(kit::kafka().brokers),
            consumer: self.batched_consumer_settings(),
            database: self.database(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            business_timezone: business_timezone.to_string(),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// The service in this process, on this test's topic, group and schema.
    pub async fn start(&self, business_timezone: &str) -> SalesReporting {
        sales_reporting::start(self.settings(business_timezone), self.pool.clone())
            .await
            .expect("sales reporting starts")
    }

    /// The environment that points the real binary at this test's topic, group and schema.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = self.service_env();
        env.push(("ORDERFLOW_REPORTING_LISTEN", "127.0.0.1:0".to_string()));
        env.push(("ORDERFLOW_BUSINESS_TIMEZONE", "Europe/Madrid".to_string()));
        env
    }

    pub async fn processed(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM processed_events WHERE consumer_group = $1")
            .bind(&self.group)
            .fetch_one(&self.pool)
            .await
            .unwrap_or(0)
    }

    /// Waits until `n` events are counted.
    pub async fn wait_processed(&self, n: i64) {
        let done = kit::eventually(Duration::from_secs(60), || async {
            self.processed().await >= n
        })
        .await;
        assert!(done, "{} of {n} events processed", self.processed().await);
    }
}

pub async fn produce(topic: &str, orders: &[OrderPlaced]) {
    let messages: Vec<(String, Vec<u8>)> = orders
        .iter()
        .map(|o| (o.order_id.clone(), o.encode().unwrap()))
        .collect();
    kit::produce(topic, &messages).await;
}

/// Milliseconds since the epoch of a UTC date and time.
pub fn utc_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> i64 {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis()
}

/// Mid-November 2026, well inside the month in any time zone.
pub fn mid_november() -> i64 {
    utc_ms(2026, 11, 15, 12, 0)
}

/// `n` orders that differ in currency, agent (or none), channel, quantities, repeated SKUs and
/// categories (one with a comma), all placed at `placed_at`.
pub fn varied_orders(prefix: &str, n: usize, placed_at: i64) -> Vec<OrderPlaced> {
    (0..n)
        .map(|i| {
            let mut o = kit::sample_order_placed(&format!("{prefix}-{i}"));
            o.placed_at = placed_at;
            if i % 3 == 0 {
                o.currency = "USD".into();
            }
            o.sales_agent = match i % 4 {
                0 => None,
                1 => Some(SalesAgent {
                    id: "agent-2".into(),
                    email: "agent2@example.com".into(),
                    name: "Kim Agent".into(),
                }),
                _ => o.sales_agent,
            };
            o.channel = ["web", "marketplace", "pos", "web", "app"][i % 5].into();
            o.lines[0].quantity = 1 + (i % 3) as i32;
            if i % 2 == 0 {
                // The same SKU again on another line: still one order for that SKU.
                let mut again = o.lines[0].clone();
                again.line_id = "l3".into();
                again.quantity = 1;
                o.lines.push(again);
            }
            if i % 5 == 0 {
                let mut poster = o.lines[1].clone();
                poster.line_id = "l4".into();
                poster.sku = "POSTER-A2".into();
                poster.product.category = "posters, large".into();
                poster.unit_price_minor = 2450 + i as i64;
                poster.tax_rate_bp = 1000;
                o.lines.push(poster);
            }
            o.shipping.price_minor = 300 + 10 * (i % 7) as i64;
            settle(&mut o);
            o
        })
        .collect()
}

/// Recomputes tax, totals and payment after the lines or shipping changed.
pub fn settle(o: &mut OrderPlaced) {
    for l in &mut o.lines {
        l.tax_minor = tax_of(l.unit_price_minor * i64::from(l.quantity), l.tax_rate_bp);
    }
    o.shipping.tax_minor = tax_of(o.shipping.price_minor, o.shipping.tax_rate_bp);
    o.settle_totals();
}

/// (currency, dimension, key) → [orders, units, net, tax, shipping, gross]; the totals are
/// dimension "total" with an empty key.
pub type Figures = BTreeMap<(String, String, String), [i64; 6]>;

/// The report the orders should give, worked out from the lines by the documented definitions.
pub fn expected(orders: &[OrderPlaced]) -> Figures {
    let mut sums: Figures = BTreeMap::new();
    let mut orders_per_key: BTreeMap<(String, String, String), BTreeSet<String>> = BTreeMap::new();
    for o in orders {
        let c = o.currency.clone();
        let mut add = |dimension: &str, key: &str, v: [i64; 5]| {
            let k = (c.clone(), dimension.to_string(), key.to_string());
            orders_per_key
                .entry(k.clone())
                .or_default()
                .insert(o.order_id.clone());
            let e = sums.entry(k).or_default();
            for (i, x) in v.into_iter().enumerate() {
                e[i + 1] += x;
            }
        };
        let mut whole = [0i64; 5];
        for l in &o.lines {
            let net = l.unit_price_minor * i64::from(l.quantity);
            let line = [
                i64::from(l.quantity),
                net,
                l.tax_minor,
                0,
                net + l.tax_minor,
            ];
            add("category", &l.product.category, line);
            add("sku", &l.sku, line);
            for (w, x) in whole.iter_mut().zip(line) {
                *w += x;
            }
        }
        whole[2] += o.shipping.tax_minor;
        whole[3] += o.shipping.price_minor;
        whole[4] += o.shipping.price_minor + o.shipping.tax_minor;
        add("total", "", whole);
        let agent = o.sales_agent.as_ref().map_or("(none)", |a| a.id.as_str());
        add("agent", agent, whole);
        add("channel", &o.channel, whole);
    }
    for (k, ids) in orders_per_key {
        sums.get_mut(&k).unwrap()[0] = ids.len() as i64;
    }
    sums
}

fn figures_of(v: &Value) -> [i64; 6] {
    [
        "orders",
        "units",
        "net_minor",
        "tax_minor",
        "shipping_minor",
        "gross_minor",
    ]
    .map(|f| {
        v[f].as_i64()
            .unwrap_or_else(|| panic!("{f} missing in {v}"))
    })
}

/// The figures of a JSON report.
pub fn from_json(report: &Value) -> Figures {
    let mut out = BTreeMap::new();
    for c in report["currencies"].as_array().expect("currencies") {
        let currency = c["currency"].as_str().unwrap().to_string();
        out.insert(
            (currency.clone(), "total".into(), String::new()),
            figures_of(c),
        );
        for dimension in ["category", "sku", "agent", "channel"] {
            for row in c[format!("by_{dimension}")].as_array().unwrap() {
                let key = row["key"].as_str().unwrap().to_string();
                let previous = out.insert(
                    (currency.clone(), dimension.to_string(), key),
                    figures_of(row),
                );
                assert!(previous.is_none(), "a key appears twice: {row}");
            }
        }
    }
    out
}

/// The figures of a CSV report for `month`, checking its header and month column.
pub fn from_csv(csv: &str, month: &str) -> Figures {
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("month,currency,dimension,key,orders,units,net_minor,tax_minor,shipping_minor,gross_minor")
    );
    let mut out = BTreeMap::new();
    for line in lines {
        let f = csv_fields(line);
        assert_eq!(f.len(), 10, "{line}");
        assert_eq!(f[0], month);
        let n: Vec<i64> = f[4..].iter().map(|x| x.parse().unwrap()).collect();
        let previous = out.insert(
            (f[1].clone(), f[2].clone(), f[3].clone()),
            [n[0], n[1], n[2], n[3], n[4], n[5]],
        );
        assert!(previous.is_none(), "a row appears twice: {line}");
    }
    out
}

/// Splits one CSV record (RFC 4180 quoting, no line breaks inside fields).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', false) => quoted = true,
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            ('"', true) => quoted = false,
            (',', false) => fields.push(String::new()),
            (c, _) => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

pub async fn get(http: &reqwest::Client, url: String) -> reqwest::Response {
    http.get(url).send().await.unwrap()
}

pub async fn report_json(s: &Setup, service: &SalesReporting, month: &str) -> Value {
    let response = get(
        &s.http,
        format!("http://{}/v1/reports/monthly/{month}", service.addr),
    )
    .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}
