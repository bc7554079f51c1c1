//! The storefront: places a batch of varied sample orders the way a real shop does, by taking
//! the payment at the provider (the payment simulator) and then calling checkout.
//!
//! `storefront-sim [COUNT]` (default 20), with `ORDERFLOW_CHECKOUT_URL` (http://127.0.0.1:8080)
//! and `ORDERFLOW_PAYMENT_SIM_URL` (http://127.0.0.1:8091).

use anyhow::{bail, Context};
use orderflow_core::event::tax_of;
use serde_json::{json, Value};

const PRODUCTS: &[(&str, &str, &str, &str, i64, &str)] = &[
    (
        "TSHIRT-ORG",
        "Organic tee",
        "apparel",
        "dtg",
        1999,
        "sup-printhaus",
    ),
    (
        "HOODIE",
        "Heavy hoodie",
        "apparel",
        "embroidery",
        4499,
        "sup-printhaus",
    ),
    (
        "MUG-11OZ",
        "Ceramic mug",
        "mugs",
        "sublimation",
        1299,
        "sup-mugworks",
    ),
    (
        "POSTER-A2",
        "Matte poster",
        "wall-art",
        "giclee",
        2499,
        "sup-paperlab",
    ),
    (
        "TOTE",
        "Canvas tote",
        "bags",
        "screen-print",
        1599,
        "sup-printhaus",
    ),
];
const CUSTOMERS: &[(&str, &str, &str, &str)] = &[
    ("Ana García", "ana@example.com", "es-ES", "ES"),
    ("John Smith", "john@example.com", "en-GB", "GB"),
    ("Lucía Pérez", "lucia@example.com", "es-MX", "ES"),
    ("Emma Brown", "emma@example.com", "en-US", "IE"),
];
const CHANNELS: &[&str] = &["web", "mobile", "marketplace", "pos"];

fn sample_order(run: &str, n: usize) -> (Value, i64) {
    let (name, email, locale, country) = CUSTOMERS[n % CUSTOMERS.len()];
    let mut lines = Vec::new();
    let (mut subtotal, mut tax) = (0, 0);
    for i in 0..=(n % 3) {
        let (sku, product, category, technique, price, supplier) =
            PRODUCTS[(n + i * 2) % PRODUCTS.len()];
        let quantity = 1 + ((n + i) % 3) as i64;
        subtotal += price * quantity;
        tax += tax_of(price * quantity, 2100);
        let size = ["S", "M", "L"][i % 3];
        let colour = ["black", "white", "navy"][n % 3];
        lines.push(json!({
            "line_id": format!("l{}", i + 1), "sku": format!("{sku}-{size}"),
            "quantity": quantity, "unit_price_minor": price, "tax_rate_bp": 2100,
            "supplier_id": supplier, "unit_cost_minor": price * 45 / 100,
            "product": {"name": product, "category": category, "design_id": format!("dsg-{}", 100 + n % 7),
                        "print_technique": technique, "size": size,
                        "colour": colour, "material": "cotton",
                        "attributes": {"collection": "autumn"}}
        }));
    }
    let shipping = 495;
    tax += tax_of(shipping, 2100);
    let total = subtotal + shipping + tax;
    let order_id = format!("demo-{run}-{n:04}");
    let mut order = json!({
        "order_id": order_id, "channel": CHANNELS[n % CHANNELS.len()], "currency": "EUR",
        "customer": {"id": format!("cus-{}", n % CUSTOMERS.len()), "email": email, "name": name, "locale": locale},
        "shipping_address": {"name": name, "line1": format!("{} Print Street", n + 1), "city": "Madrid",
                             "postal_code": "28013", "country": country},
        "lines": lines,
        "shipping": {"method": "standard", "price_minor": shipping, "tax_rate_bp": 2100},
        "payment": {"provider": "paysim", "reference": format!("pay-{order_id}")}
    });
    if n % 2 == 0 {
        order["sales_agent"] =
            json!({"id": "agent-7", "email": "agent7@example.com", "name": "Sam Agent"});
    }
    (order, total)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .with_context(|| format!("COUNT must be a number, not {arg:?}"))?,
        None => 20,
    };
    let checkout =
        std::env::var("ORDERFLOW_CHECKOUT_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let payments = std::env::var("ORDERFLOW_PAYMENT_SIM_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8091".into());
    let run = run_id();
    let http = reqwest::Client::new();
    for n in 0..count {
        let (order, total) = sample_order(&run, n);
        let reference = order["payment"]["reference"].as_str().expect("reference");
        http.put(format!("{payments}/v1/payments/{reference}"))
            .json(&json!({"status": "succeeded", "amount_minor": total, "currency": "EUR"}))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("taking payment {reference} at {payments}"))?;
        let response = http
            .post(format!("{checkout}/v1/orders"))
            .json(&order)
            .send()
            .await
            .with_context(|| format!("calling checkout at {checkout}"))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("checkout refused {}: {status} {body}", order["order_id"]);
        }
        let order_id = order["order_id"].as_str().expect("order id");
        println!("placed {order_id} ({total} EUR minor units): {status}");
    }
    Ok(())
}

/// A short id that keeps order ids of different runs apart.
fn run_id() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    format!("{:x}", secs)
}
