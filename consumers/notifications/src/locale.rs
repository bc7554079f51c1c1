//! How e-mails speak to their reader: which of our languages a customer's locale maps to, and
//! how amounts and dates are written in it. Amounts arrive in integer minor units; the currency's
//! exponent (ISO 4217) says where the decimal separator goes.

use chrono::{DateTime, Datelike, Utc};
use iso_currency::Currency;

/// A language we have templates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Es,
}

impl Lang {
    /// The language of a BCP 47-ish locale (`es`, `es-ES`, `es_MX`, `EN-gb`); English for any
    /// language we have no templates for.
    pub fn for_locale(locale: &str) -> Self {
        let language = locale
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match language.as_str() {
            "es" => Lang::Es,
            _ => Lang::En,
        }
    }

    /// The folder of this language's templates and the value recorded with each e-mail.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }
}

/// The currency is not one ISO 4217 knows, so its amounts cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("currency {0:?} is not an ISO 4217 currency")]
pub struct UnknownCurrency(pub String);

/// Writes an amount for a reader of `lang`: `€1,234.56` in English, `1234,56 €` and
/// `12.345,67 €` in Spanish (which, as CLDR does, groups thousands from five digits on).
/// Currencies without a well-known unambiguous symbol are written with their code
/// (`CHF 1,234.56`, `1234,56 CHF`), since `$` or `kr` alone could mean several currencies.
pub fn money(minor: i64, currency: &str, lang: Lang) -> Result<String, UnknownCurrency> {
    let known = Currency::from_code(currency).ok_or_else(|| UnknownCurrency(currency.into()))?;
    let exponent = u32::from(known.exponent().unwrap_or(0));
    let scale = 10u64.pow(exponent);
    let magnitude = minor.unsigned_abs();
    let (units, fraction) = (magnitude / scale, magnitude % scale);
    let (group, decimal, min_grouping) = match lang {
        Lang::En => (',', '.', 4),
        Lang::Es => ('.', ',', 5),
    };
    let mut number = grouped(units, group, min_grouping);
    if exponent > 0 {
        number.push(decimal);
        number.push_str(&format!("{fraction:0width$}", width = exponent as usize));
    }
    let sign = if minor < 0 { "-" } else { "" };
    let symbol = match currency {
        "EUR" => Some("€"),
        "GBP" => Some("£"),
        "USD" => Some("US$"),
        _ => None,
    };
    Ok(match (lang, symbol) {
        (Lang::En, Some(symbol)) => format!("{sign}{symbol}{number}"),
        (Lang::En, None) => format!("{sign}{currency}\u{a0}{number}"),
        (Lang::Es, symbol) => format!("{sign}{number}\u{a0}{}", symbol.unwrap_or(currency)),
    })
}

/// `units` with `separator` between groups of three digits, when it has at least
/// `min_digits` digits.
fn grouped(units: u64, separator: char, min_digits: usize) -> String {
    let digits = units.to_string();
    if digits.len() < min_digits {
        return digits;
    }
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(separator);
        }
        out.push(c);
    }
    out
}

const MONTHS_EN: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const MONTHS_ES: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];

/// The (UTC) day of `at` in words: `17 November 2026`, `17 de noviembre de 2026`.
pub fn date(at: DateTime<Utc>, lang: Lang) -> String {
    let month = at.month0() as usize;
    match lang {
        Lang::En => format!("{} {} {}", at.day(), MONTHS_EN[month], at.year()),
        Lang::Es => format!("{} de {} de {}", at.day(), MONTHS_ES[month], at.year()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_map_to_their_language_and_unknown_ones_to_english() {
        assert_eq!(Lang::for_locale("es-ES"), Lang::Es);
        assert_eq!(Lang::for_locale("es_MX"), Lang::Es);
        assert_eq!(Lang::for_locale("ES"), Lang::Es);
        assert_eq!(Lang::for_locale("en-GB"), Lang::En);
        assert_eq!(Lang::for_locale("fr-FR"), Lang::En);
        assert_eq!(Lang::for_locale(""), Lang::En);
    }

    #[test]
    fn english_amounts_put_the_symbol_first_and_group_with_commas() {
        assert_eq!(money(123_456, "EUR", Lang::En).unwrap(), "€1,234.56");
        assert_eq!(money(5, "GBP", Lang::En).unwrap(), "£0.05");
        assert_eq!(
            money(123_456_789, "USD", Lang::En).unwrap(),
            "US$1,234,567.89"
        );
        assert_eq!(money(999, "EUR", Lang::En).unwrap(), "€9.99");
        assert_eq!(money(-2_500, "EUR", Lang::En).unwrap(), "-€25.00");
    }

    #[test]
    fn spanish_amounts_put_the_symbol_last_and_group_from_five_digits() {
        assert_eq!(money(123_456, "EUR", Lang::Es).unwrap(), "1234,56\u{a0}€");
        assert_eq!(
            money(1_234_567, "EUR", Lang::Es).unwrap(),
            "12.345,67\u{a0}€"
        );
        assert_eq!(
            money(123_456_789, "EUR", Lang::Es).unwrap(),
            "1.234.567,89\u{a0}€"
        );
        assert_eq!(money(7_562, "EUR", Lang::Es).unwrap(), "75,62\u{a0}€");
    }

    #[test]
    fn the_currency_exponent_places_the_decimal_separator() {
        assert_eq!(money(1_235, "JPY", Lang::En).unwrap(), "JPY\u{a0}1,235");
        assert_eq!(money(1_235, "JPY", Lang::Es).unwrap(), "1235\u{a0}JPY");
        assert_eq!(
            money(1_234_567, "BHD", Lang::En).unwrap(),
            "BHD\u{a0}1,234.567"
        );
        assert_eq!(money(123_456, "CHF", Lang::Es).unwrap(), "1234,56\u{a0}CHF");
    }

    #[test]
    fn unknown_currencies_are_refused() {
        assert_eq!(
            money(100, "ABC", Lang::En).unwrap_err(),
            UnknownCurrency("ABC".into())
        );
    }

    #[test]
    fn dates_are_written_in_words() {
        let at = DateTime::from_timestamp_millis(1_795_000_000_000).unwrap();
        assert_eq!(date(at, Lang::En), "18 November 2026");
        assert_eq!(date(at, Lang::Es), "18 de noviembre de 2026");
    }
}
