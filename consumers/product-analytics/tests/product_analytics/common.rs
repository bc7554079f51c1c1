//! Shared set-up: a topic, its dead-letter topic, a consumer group, a database schema and an
//! archive folder per test; varied orders with recognisable personal data; and the check of an
//! archive read back by pyarrow (`tests/read_archive.py`) against the orders produced.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use orderflow_core::config::KafkaConfig;
use orderflow_core::event::{tax_of, OrderLine, OrderPlaced, Product, SalesAgent};
use orderflow_testkit::{self as kit, sample_order_placed};
use product_analytics::staging::{self, FlushPolicy, Progress};
use product_analytics::{ArchiveUrl, ProductAnalytics, Settings};
use serde_json::Value;

pub struct Setup {
    pub fixture: kit::ConsumerFixture,
    pub archive: PathBuf,
}

impl std::ops::Deref for Setup {
    type Target = kit::ConsumerFixture;

    fn deref(&self) -> &kit::ConsumerFixture {
        &self.fixture
    }
}

pub async fn setup(partitions: i32) -> Setup {
    Setup {
        fixture: kit::ConsumerFixture::new("product-analytics", partitions).await,
        archive: std::env::temp_dir().join(kit::unique("product-analytics-archive")),
    }
}

impl Setup {
    pub fn settings(&self, flush: FlushPolicy) -> Settings {
        Settings {
            kafka: KafkaConfig::plaintext(kit::kafka().brokers),
            consumer: self.batched_consumer_settings(),
            database: self.database(),
            archive: ArchiveUrl::Local(self.archive.clone()),
            flush,
            metrics_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// Starts the service in this process.
    pub async fn start(&self, flush: FlushPolicy) -> ProductAnalytics {
        product_analytics::start(self.settings(flush), self.pool.clone())
            .await
            .expect("service starts")
    }

    /// The environment that points the real binary at this test's topic, group, schema and
    /// archive.
    pub fn env(&self, flush_rows: usize, flush_interval_ms: u64) -> Vec<(&'static str, String)> {
        let mut env = self.service_env();
        env.extend([
            (
                "ORDERFLOW_ANALYTICS_ARCHIVE_URL",
                self.archive.display().to_string(),
            ),
            ("ORDERFLOW_ANALYTICS_FLUSH_ROWS", flush_rows.to_string()),
            (
                "ORDERFLOW_ANALYTICS_FLUSH_INTERVAL_MS",
                flush_interval_ms.to_string(),
            ),
            ("RUST_LOG", "info".into()),
        ]);
        env
    }

    pub async fn progress(&self) -> Progress {
        staging::progress(&self.pool).await.expect("progress")
    }

    /// Waits until `lines` lines are in written batches.
    pub async fn wait_written(&self, lines: usize, timeout: Duration) {
        let reached = kit::eventually(timeout, || async {
            self.progress().await.written == lines as i64
        })
        .await;
        assert!(
            reached,
            "expected {lines} archived lines, progress is {:?}",
            self.progress().await
        );
    }

    pub fn read_archive(&self) -> ArchiveContents {
        read_archive(&self.archive)
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.archive);
    }
}

pub fn policy(rows: usize, interval_ms: u64) -> FlushPolicy {
    FlushPolicy {
        rows,
        interval: Duration::from_millis(interval_ms),
    }
}

/// 2026-11-18T00:00:00Z.
const DAY_START_MS: i64 = 1_794_960_000_000;

/// A consistent order whose facts vary with `i`: 1 to 3 lines, three dates (one line a
/// millisecond before midnight UTC), currencies, channels, countries, attributes (some empty,
/// some not ASCII), and personal data that names the order so a leak can be traced.
pub fn order(prefix: &str, i: usize) -> OrderPlaced {
    let mut o = sample_order_placed(&format!("{prefix}-{i}"));
    o.placed_at = match i % 4 {
        0 => DAY_START_MS - 1,
        1 => DAY_START_MS,
        2 => DAY_START_MS + 86_400_000 + 45_296_789,
        _ => DAY_START_MS + 2 * 86_400_000 + (i as i64) * 1_000,
    };
    o.currency = ["EUR", "GBP", "USD"][i % 3].into();
    o.channel = ["web", "marketplace", "agent"][i % 3].into();
    o.shipping_address.country = ["ES", "GB", "US", "DE"][i % 4].into();
    let pii = personal_data(i);
    o.customer.name = pii[0].clone();
    o.customer.email = pii[1].clone();
    o.shipping_address.name = pii[0].clone();
    o.shipping_address.line1 = pii[2].clone();
    o.shipping_address.line2 = Some(pii[3].clone());
    o.sales_agent = Some(SalesAgent {
        id: "agent-7".into(),
        email: pii[4].clone(),
        name: pii[5].clone(),
    });
    o.lines = (0..1 + i % 3)
        .map(|n| {
            let quantity = 1 + ((i + n) % 4) as i32;
            let unit_price_minor = 500 + (i as i64) * 37 + (n as i64) * 1_000;
            let mut attributes = BTreeMap::new();
            if n != 1 {
                attributes.insert("fit".to_string(), ["regular", "slim"][i % 2].to_string());
            }
            if n == 2 {
                attributes.insert("finish".to_string(), "mate — brillo ✓".to_string());
            }
            OrderLine {
                line_id: format!("line-{n}"),
                sku: format!("SKU-{i}-{n}"),
                quantity,
                unit_price_minor,
                tax_rate_bp: 2100,
                tax_minor: tax_of(unit_price_minor * i64::from(quantity), 2100),
                supplier_id: "sup-printful".into(),
                unit_cost_minor: unit_price_minor / 2,
                product: Product {
                    name: format!("Product {i}/{n}"),
                    category: ["apparel", "mugs", "posters"][n].into(),
                    design_id: format!("dsg-{}", i % 5),
                    print_technique: ["dtg", "sublimation", "screen"][(i + n) % 3].into(),
                    size: ["S", "M", "XL"][n].into(),
                    colour: ["black", "white", "bottle green"][(i + 2 * n) % 3].into(),
                    material: ["organic cotton", "ceramic", "matte paper"][n].into(),
                    attributes,
                },
            }
        })
        .collect();
    o.settle_totals();
    o
}

/// Makes the totals and the payment agree with the lines again.
/// Customer name, e-mail, street, second address line, agent e-mail, agent name.
pub fn personal_data(i: usize) -> [String; 6] {
    [
        format!("Zoë Privado {i}"),
        format!("zoe.privado.{i}@buyer.example"),
        format!("{i} Calle Secreta"),
        format!("Piso {i}, puerta B"),
        format!("agent.{i}@shop.example"),
        format!("Agente Privado {i}"),
    ]
}

pub fn encoded(orders: &[OrderPlaced]) -> Vec<(String, Vec<u8>)> {
    orders
        .iter()
        .map(|o| (o.order_id.clone(), o.encode().expect("encode")))
        .collect()
}

pub fn line_count(orders: &[OrderPlaced]) -> usize {
    orders.iter().map(|o| o.lines.len()).sum()
}

/// An archive as pyarrow read it.
pub struct ArchiveContents {
    pub files: Vec<Value>,
    /// (order id, line id, date partition) of every row of the data set read as a whole.
    pub data_set_rows: Vec<(String, String, String)>,
    /// The raw bytes of every file.
    pub bytes: Vec<Vec<u8>>,
}

pub fn read_archive(folder: &std::path::Path) -> ArchiveContents {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/read_archive.py");
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(folder)
        .output()
        .expect("running python3");
    assert!(
        out.status.success(),
        "read_archive.py failed (pip install -r consumers/product-analytics/tests/requirements.txt): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).expect("read_archive.py prints JSON");
    let files = read["files"].as_array().expect("files").clone();
    let bytes = files
        .iter()
        .map(|f| std::fs::read(folder.join(f["path"].as_str().unwrap())).expect("file bytes"))
        .collect();
    let data_set_rows = read["data_set_rows"]
        .as_array()
        .expect("data set rows")
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().expect(k).to_string();
            (s("order_id"), s("order_line_id"), s("date"))
        })
        .collect();
    ArchiveContents {
        files,
        data_set_rows,
        bytes,
    }
}

pub const COLUMNS: [&str; 16] = [
    "order_line_id",
    "order_id",
    "placed_at",
    "sku",
    "category",
    "design_id",
    "print_technique",
    "size",
    "colour",
    "material",
    "attributes",
    "quantity",
    "unit_price_minor",
    "currency",
    "shipping_country",
    "channel",
];

/// The UTC date of epoch milliseconds as `YYYY-MM-DD`, by Howard Hinnant's civil-from-days
/// algorithm, so the check does not share the date code it checks.
fn utc_date(ms: i64) -> String {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Checks that the archive holds exactly the lines of `orders`, each once, with every field
/// equal to the order's; that each file sits in the partition of its lines' UTC date, has the
/// 16 columns (no personal data among them), no nullable column and Snappy compression; that
/// pandas-style reading of the whole data set sees the same rows and dates; and that no
/// customer or agent name, e-mail or address appears in any value or any byte of any file.
/// Returns the number of rows of each file.
pub fn assert_archive_holds_exactly(
    archive: &ArchiveContents,
    orders: &[OrderPlaced],
) -> Vec<usize> {
    let expected: HashMap<(String, String), (&OrderPlaced, &OrderLine)> = orders
        .iter()
        .flat_map(|o| {
            o.lines
                .iter()
                .map(move |l| ((o.order_id.clone(), l.line_id.clone()), (o, l)))
        })
        .collect();
    let mut seen: HashMap<(String, String), usize> = HashMap::new();
    let mut sizes = Vec::new();
    for file in &archive.files {
        let path = file["path"].as_str().unwrap();
        let columns: Vec<&str> = file["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(columns, COLUMNS, "{path}: columns");
        assert_eq!(
            file["types"]["placed_at"], "timestamp[ms, tz=UTC]",
            "{path}"
        );
        // pyarrow names the map's entries after the column: `map<string, string ('attributes')>`.
        let attributes = file["types"]["attributes"].as_str().unwrap();
        assert!(
            attributes.starts_with("map<string, string"),
            "{path}: {attributes}"
        );
        assert_eq!(file["types"]["quantity"], "int32", "{path}");
        assert_eq!(file["types"]["unit_price_minor"], "int64", "{path}");
        assert_eq!(file["nullable"], serde_json::json!([]), "{path}");
        assert_eq!(file["compression"], serde_json::json!(["SNAPPY"]), "{path}");
        let rows = file["rows"].as_array().unwrap();
        sizes.push(rows.len());
        assert!(!rows.is_empty(), "{path} is empty");
        for row in rows {
            let key = (
                row["order_id"].as_str().unwrap().to_string(),
                row["order_line_id"].as_str().unwrap().to_string(),
            );
            *seen.entry(key.clone()).or_default() += 1;
            let (o, l) = expected
                .get(&key)
                .unwrap_or_else(|| panic!("{path}: unexpected line {key:?}"));
            let p = &l.product;
            let attributes: BTreeMap<String, String> =
                serde_json::from_value(row["attributes"].clone()).unwrap();
            assert_eq!(row["placed_at"], o.placed_at, "{path} {key:?} placed_at");
            assert_eq!(row["sku"], l.sku.as_str(), "{key:?}");
            assert_eq!(row["category"], p.category.as_str(), "{key:?}");
            assert_eq!(row["design_id"], p.design_id.as_str(), "{key:?}");
            assert_eq!(
                row["print_technique"],
                p.print_technique.as_str(),
                "{key:?}"
            );
            assert_eq!(row["size"], p.size.as_str(), "{key:?}");
            assert_eq!(row["colour"], p.colour.as_str(), "{key:?}");
            assert_eq!(row["material"], p.material.as_str(), "{key:?}");
            assert_eq!(attributes, p.attributes, "{key:?} attributes");
            assert_eq!(row["quantity"], l.quantity, "{key:?}");
            assert_eq!(row["unit_price_minor"], l.unit_price_minor, "{key:?}");
            assert_eq!(row["currency"], o.currency.as_str(), "{key:?}");
            assert_eq!(
                row["shipping_country"],
                o.shipping_address.country.as_str(),
                "{key:?}"
            );
            assert_eq!(row["channel"], o.channel.as_str(), "{key:?}");
            let partition = format!("sold_lines/date={}/", utc_date(o.placed_at));
            assert!(
                path.starts_with(&partition),
                "{path}: {key:?} belongs in {partition}"
            );
        }
    }
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
    assert!(missing.is_empty(), "lines never archived: {missing:?}");
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "lines archived more than once: {twice:?}");

    let mut data_set: Vec<_> = archive.data_set_rows.clone();
    data_set.sort();
    let mut wanted: Vec<_> = expected
        .iter()
        .map(|((order, line), (o, _))| (order.clone(), line.clone(), utc_date(o.placed_at)))
        .collect();
    wanted.sort();
    assert_eq!(
        data_set, wanted,
        "the data set read whole, with its date partitions"
    );

    assert_no_personal_data(archive, orders);
    sizes
}

fn assert_no_personal_data(archive: &ArchiveContents, orders: &[OrderPlaced]) {
    let mut secrets: Vec<String> = Vec::new();
    for o in orders {
        let a = &o.shipping_address;
        secrets.extend([o.customer.name.clone(), o.customer.email.clone()]);
        secrets.extend([a.name.clone(), a.line1.clone(), a.postal_code.clone()]);
        secrets.extend(a.line2.clone());
        if let Some(agent) = &o.sales_agent {
            secrets.extend([agent.name.clone(), agent.email.clone()]);
        }
    }
    secrets.sort();
    secrets.dedup();
    for (file, bytes) in archive.files.iter().zip(&archive.bytes) {
        let text = file["rows"].to_string();
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "{}: a value holds personal data {secret:?}",
                file["path"]
            );
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{}: the file's bytes hold personal data {secret:?}",
                file["path"]
            );
        }
    }
}
