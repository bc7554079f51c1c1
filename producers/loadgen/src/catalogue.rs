//! Orders as a storefront's customers place them: a catalogue of print-on-demand products from
//! several suppliers, customers in three currencies, one to five lines (mostly few), and a sales
//! agent on about a third of the orders. The `n`th order of a run is always the same, so a run
//! can be repeated and its payments scripted before it starts.

use orderflow_core::event::tax_of;
use serde_json::{json, Value};

/// (sku, name, category, print technique, material, price in cents of the currency, supplier)
const PRODUCTS: &[(&str, &str, &str, &str, &str, i64, &str)] = &[
    (
        "TEE-ORG",
        "Organic tee",
        "apparel",
        "dtg",
        "organic cotton",
        1999,
        "sup-printhaus",
    ),
    (
        "TEE-VNECK",
        "V-neck tee",
        "apparel",
        "dtg",
        "cotton",
        2199,
        "sup-printhaus",
    ),
    (
        "HOODIE",
        "Heavy hoodie",
        "apparel",
        "embroidery",
        "cotton fleece",
        4499,
        "sup-printhaus",
    ),
    (
        "SWEAT",
        "Crew sweatshirt",
        "apparel",
        "screen-print",
        "cotton",
        3499,
        "sup-threadline",
    ),
    (
        "CAP",
        "Dad cap",
        "accessories",
        "embroidery",
        "twill",
        1799,
        "sup-threadline",
    ),
    (
        "TOTE",
        "Canvas tote",
        "bags",
        "screen-print",
        "canvas",
        1599,
        "sup-threadline",
    ),
    (
        "MUG-11OZ",
        "Ceramic mug",
        "mugs",
        "sublimation",
        "ceramic",
        1299,
        "sup-mugworks",
    ),
    (
        "MUG-15OZ",
        "Large mug",
        "mugs",
        "sublimation",
        "ceramic",
        1499,
        "sup-mugworks",
    ),
    (
        "BOTTLE",
        "Steel bottle",
        "drinkware",
        "laser",
        "steel",
        2499,
        "sup-mugworks",
    ),
    (
        "POSTER-A2",
        "Matte poster",
        "wall-art",
        "giclee",
        "matte paper",
        2499,
        "sup-paperlab",
    ),
    (
        "CANVAS-40",
        "Framed canvas",
        "wall-art",
        "giclee",
        "canvas",
        5999,
        "sup-paperlab",
    ),
    (
        "CARDS-10",
        "Greeting cards",
        "stationery",
        "offset",
        "card",
        999,
        "sup-paperlab",
    ),
    (
        "STICKERS",
        "Sticker sheet",
        "stationery",
        "die-cut",
        "vinyl",
        599,
        "sup-stickerbox",
    ),
    (
        "PHONE-CASE",
        "Phone case",
        "accessories",
        "uv",
        "polycarbonate",
        2299,
        "sup-stickerbox",
    ),
];
const SIZES: &[&str] = &["XS", "S", "M", "L", "XL"];
const COLOURS: &[&str] = &["black", "white", "navy", "heather", "sand"];
const CHANNELS: &[&str] = &["web", "web", "mobile", "mobile", "marketplace", "pos"];

/// (name, e-mail, locale, country, currency, tax rate in basis points, city, postal code)
type Customer = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    i32,
    &'static str,
    &'static str,
);
const CUSTOMERS: &[Customer] = &[
    (
        "Ana García",
        "ana@example.com",
        "es-ES",
        "ES",
        "EUR",
        2100,
        "Madrid",
        "28013",
    ),
    (
        "Jordi Puig",
        "jordi@example.com",
        "ca-ES",
        "ES",
        "EUR",
        2100,
        "Barcelona",
        "08002",
    ),
    (
        "Lucía Pérez",
        "lucia@example.com",
        "es-ES",
        "ES",
        "EUR",
        2100,
        "Sevilla",
        "41001",
    ),
    (
        "Marie Dubois",
        "marie@example.com",
        "fr-FR",
        "FR",
        "EUR",
        2000,
        "Lyon",
        "69002",
    ),
    (
        "Lukas Meyer",
        "lukas@example.com",
        "de-DE",
        "DE",
        "EUR",
        1900,
        "Berlin",
        "10115",
    ),
    (
        "John Smith",
        "john@example.com",
        "en-GB",
        "GB",
        "GBP",
        2000,
        "London",
        "SW1A 1AA",
    ),
    (
        "Olivia Jones",
        "olivia@example.com",
        "en-GB",
        "GB",
        "GBP",
        2000,
        "Leeds",
        "LS1 4AP",
    ),
    (
        "Emma Brown",
        "emma@example.com",
        "en-US",
        "US",
        "USD",
        825,
        "Austin",
        "78701",
    ),
];
/// (id, e-mail, name)
const AGENTS: &[(&str, &str, &str)] = &[
    ("agent-7", "agent7@example.com", "Sam Agent"),
    ("agent-12", "agent12@example.com", "Alex Seller"),
    ("agent-31", "agent31@example.com", "Rosa Ventas"),
];
const SHIPPING_MINOR: i64 = 495;

/// One order ready to post, with what its payment must say.
#[derive(Debug, Clone)]
pub struct GeneratedOrder {
    pub order_id: String,
    /// The JSON request body, serialized once.
    pub body: Vec<u8>,
    pub payment_reference: String,
    pub currency: String,
    pub total_minor: i64,
    pub lines: usize,
    pub has_agent: bool,
}

/// A well-mixed number from `n` (SplitMix64), so neighbouring orders differ in every choice.
fn mix(n: u64, salt: u64) -> u64 {
    let mut z = n
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(salt.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick<T: Copy>(items: &[T], n: u64, salt: u64) -> T {
    items[(mix(n, salt) % items.len() as u64) as usize]
}

/// Lines per order: 45% one, 25% two, 15% three, 10% four, 5% five.
fn line_count(n: u64) -> usize {
    match mix(n, 1) % 100 {
        0..45 => 1,
        45..70 => 2,
        70..85 => 3,
        85..95 => 4,
        _ => 5,
    }
}

/// The `n`th order of `run`; its id is `lg-<run>-<n>` (`run` is letters, digits, '-' or '_').
pub fn order(run: &str, n: u64) -> GeneratedOrder {
    let (name, email, locale, country, currency, tax_bp, city, postal_code) = pick(CUSTOMERS, n, 2);
    let order_id = format!("lg-{run}-{n}");
    let count = line_count(n);
    let mut lines = Vec::with_capacity(count);
    let (mut subtotal, mut tax) = (0, 0);
    for i in 0..count as u64 {
        let (sku, product, category, technique, material, price, supplier) =
            pick(PRODUCTS, n * 8 + i, 3);
        let quantity = 1 + (mix(n * 8 + i, 4) % 3) as i64;
        let size = pick(SIZES, n * 8 + i, 5);
        let colour = pick(COLOURS, n * 8 + i, 6);
        subtotal += price * quantity;
        tax += tax_of(price * quantity, tax_bp);
        lines.push(json!({
            "line_id": format!("l{}", i + 1),
            "sku": format!("{sku}-{size}-{}", colour.to_uppercase()),
            "quantity": quantity,
            "unit_price_minor": price,
            "tax_rate_bp": tax_bp,
            "supplier_id": supplier,
            "unit_cost_minor": price * 45 / 100,
            "product": {
                "name": product, "category": category,
                "design_id": format!("dsg-{}", 100 + mix(n * 8 + i, 7) % 400),
                "print_technique": technique, "size": size, "colour": colour, "material": material,
                "attributes": {"collection": pick(&["autumn", "winter", "classics"], n, 8)}
            }
        }));
    }
    tax += tax_of(SHIPPING_MINOR, tax_bp);
    let total_minor = subtotal + SHIPPING_MINOR + tax;
    let payment_reference = format!("pay-{order_id}");
    let mut body: Value = json!({
        "order_id": order_id,
        "channel": pick(CHANNELS, n, 9),
        "currency": currency,
        "customer": {"id": format!("cus-{}", mix(n, 10) % 5_000), "email": email, "name": name, "locale": locale},
        "shipping_address": {"name": name, "line1": format!("{} Print Street", 1 + n % 300),
                             "city": city, "postal_code": postal_code, "country": country},
        "lines": lines,
        "shipping": {"method": "standard", "price_minor": SHIPPING_MINOR, "tax_rate_bp": tax_bp},
        "payment": {"provider": "paysim", "reference": payment_reference},
    });
    let has_agent = mix(n, 11) % 3 == 0;
    if has_agent {
        let (id, email, name) = pick(AGENTS, n, 12);
        body["sales_agent"] = json!({"id": id, "email": email, "name": name});
    }
    GeneratedOrder {
        order_id,
        body: serde_json::to_vec(&body).expect("an order serializes"),
        payment_reference,
        currency: currency.to_string(),
        total_minor,
        lines: count,
        has_agent,
    }
}
