//! A month's report as users ask for it: the request values (month, currency, format), the
//! report assembled from the stored rows, and its JSON and CSV renderings.

use std::fmt;
use std::str::FromStr;

use chrono::{Datelike, NaiveDate};
use serde::{Serialize, Serializer};
use sqlx::PgPool;

use crate::sale::{Dimension, Figures};
use crate::store::{self, ReportRow};

/// A calendar month of the business time zone, written `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month(NaiveDate);

impl Month {
    /// The month's first day, as stored.
    pub fn first_day(self) -> NaiveDate {
        self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("month {0:?} is not a month: expected YYYY-MM, for example 2026-11")]
pub struct BadMonth(pub String);

impl FromStr for Month {
    type Err = BadMonth;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMonth(s.to_string());
        let (year, month) = s.split_once('-').ok_or_else(bad)?;
        let digits = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(year, 4) || !digits(month, 2) {
            return Err(bad());
        }
        let (year, month) = (
            year.parse().map_err(|_| bad())?,
            month.parse().map_err(|_| bad())?,
        );
        NaiveDate::from_ymd_opt(year, month, 1)
            .map(Month)
            .ok_or_else(bad)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.0.year(), self.0.month())
    }
}

impl Serialize for Month {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An ISO 4217 currency code to filter on; lowercase is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency(String);

impl Currency {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("currency {0:?} is not a currency: expected a three-letter ISO 4217 code such as EUR")]
pub struct BadCurrency(pub String);

impl FromStr for Currency {
    type Err = BadCurrency;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic()) {
            Ok(Currency(s.to_ascii_uppercase()))
        } else {
            Err(BadCurrency(s.to_string()))
        }
    }
}

/// How a report is written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Json,
    Csv,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("format {0:?} is not a report format: expected json or csv")]
pub struct BadFormat(pub String);

impl FromStr for Format {
    type Err = BadFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err(BadFormat(s.to_string())),
        }
    }
}

/// A month's sales, one section per currency (amounts of different currencies never add up).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub month: Month,
    /// The time zone the months are counted in; none before the consumer first started.
    pub business_timezone: Option<String>,
    pub currencies: Vec<CurrencyReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CurrencyReport {
    pub currency: String,
    #[serde(flatten)]
    pub total: Figures,
    pub by_category: Vec<KeyedFigures>,
    pub by_sku: Vec<KeyedFigures>,
    pub by_agent: Vec<KeyedFigures>,
    pub by_channel: Vec<KeyedFigures>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyedFigures {
    pub key: String,
    #[serde(flatten)]
    pub figures: Figures,
}

impl CurrencyReport {
    fn new(currency: String) -> Self {
        Self {
            currency,
            total: Figures::default(),
            by_category: Vec::new(),
            by_sku: Vec::new(),
            by_agent: Vec::new(),
            by_channel: Vec::new(),
        }
    }

    fn breakdown(&self, dimension: Dimension) -> &[KeyedFigures] {
        match dimension {
            Dimension::Category => &self.by_category,
            Dimension::Sku => &self.by_sku,
            Dimension::Agent => &self.by_agent,
            Dimension::Channel => &self.by_channel,
        }
    }

    fn breakdown_mut(&mut self, dimension: Dimension) -> &mut Vec<KeyedFigures> {
        match dimension {
            Dimension::Category => &mut self.by_category,
            Dimension::Sku => &mut self.by_sku,
            Dimension::Agent => &mut self.by_agent,
            Dimension::Channel => &mut self.by_channel,
        }
    }
}

impl Report {
    /// The report of `month`, of one currency or all.
    pub async fn load(
        pool: &PgPool,
        month: Month,
        currency: Option<&Currency>,
    ) -> Result<Self, sqlx::Error> {
        let rows = store::report_rows(pool, month.first_day(), currency.map(Currency::as_str));
        let (rows, business_timezone) = tokio::try_join!(rows, store::pinned_time_zone(pool))?;
        Ok(Self::from_rows(month, business_timezone, rows))
    }

    /// Assembles rows ordered by currency (then by gross, largest first, within a dimension).
    fn from_rows(month: Month, business_timezone: Option<String>, rows: Vec<ReportRow>) -> Self {
        let mut currencies: Vec<CurrencyReport> = Vec::new();
        for row in rows {
            if currencies.last().map(|c| &c.currency) != Some(&row.currency) {
                currencies.push(CurrencyReport::new(row.currency.clone()));
            }
            let section = currencies.last_mut().expect("pushed above");
            match Dimension::from_name(&row.dimension) {
                Some(dimension) => section.breakdown_mut(dimension).push(KeyedFigures {
                    key: row.key,
                    figures: row.figures,
                }),
                None => section.total = row.figures,
            }
        }
        Self {
            month,
            business_timezone,
            currencies,
        }
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => {
                let mut json =
                    serde_json::to_string_pretty(self).expect("a report serializes to JSON");
                json.push('\n');
                json
            }
            Format::Csv => self.to_csv(),
        }
    }

    /// One row per figure set: the currency's total (dimension `total`, empty key) first, then
    /// each breakdown. Amounts stay in minor units, as everywhere else.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "month,currency,dimension,key,orders,units,net_minor,tax_minor,shipping_minor,gross_minor\n",
        );
        let mut row = |currency: &str, dimension: &str, key: &str, f: &Figures| {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                self.month,
                csv_field(currency),
                dimension,
                csv_field(key),
                f.orders,
                f.units,
                f.net_minor,
                f.tax_minor,
                f.shipping_minor,
                f.gross_minor
            ));
        };
        for c in &self.currencies {
            row(&c.currency, "total", "", &c.total);
            for dimension in Dimension::ALL {
                for k in c.breakdown(dimension) {
                    row(&c.currency, dimension.as_str(), &k.key, &k.figures);
                }
            }
        }
        out
    }
}

/// Quotes a field that holds a separator, a quote or a line break (RFC 4180); keys come from
/// orders, so a category or SKU may contain any of them.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_strictly_yyyy_mm() {
        assert_eq!("2026-11".parse::<Month>().unwrap().to_string(), "2026-11");
        assert_eq!(
            "2026-02".parse::<Month>().unwrap().first_day(),
            NaiveDate::from_ymd_opt(2026, 2, 1).unwrap()
        );
        for bad in [
            "2026-13",
            "2026-00",
            "2026-1",
            "26-11",
            "2026/11",
            "2026-11-01",
            "",
            "+202-11",
        ] {
            let err = bad.parse::<Month>().unwrap_err();
            assert!(err.to_string().contains("expected YYYY-MM"), "{bad}: {err}");
        }
    }

    #[test]
    fn csv_fields_with_separators_are_quoted() {
        assert_eq!(csv_field("TEE-M"), "TEE-M");
        assert_eq!(csv_field("mugs, large"), "\"mugs, large\"");
        assert_eq!(csv_field("12\" print"), "\"12\"\" print\"");
    }

    #[test]
    fn currency_and_format_accept_lowercase_and_name_what_is_wrong() {
        assert_eq!("eur".parse::<Currency>().unwrap().as_str(), "EUR");
        assert!("EURO"
            .parse::<Currency>()
            .unwrap_err()
            .to_string()
            .contains("ISO 4217"));
        assert_eq!("CSV".parse::<Format>().unwrap(), Format::Csv);
        assert!("xml"
            .parse::<Format>()
            .unwrap_err()
            .to_string()
            .contains("json or csv"));
    }
}
