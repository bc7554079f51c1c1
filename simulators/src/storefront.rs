//! The storefront's catalogue: varied, valid order requests for checkout (several suppliers,
//! categories, channels, locales, 1-3 lines, every other order with a sales agent), shared by
//! `storefront-sim`, the end-to-end test and load generation.

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

/// The `n`th sample order of run `run` (order id `demo-<run>-<n>`), and its total in minor units.
pub fn sample_order(run: &str, n: usize) -> (Value, i64) {
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
