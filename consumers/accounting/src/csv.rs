//! Just enough RFC 4180 for the chart of accounts and the journal export: fields are quoted when
//! they hold a comma, a quote or a line break, with quotes doubled; records end with CRLF.

use std::borrow::Cow;

/// One field, quoted when it needs to be.
pub fn field(value: &str) -> Cow<'_, str> {
    if value.contains([',', '"', '\r', '\n']) {
        Cow::Owned(format!("\"{}\"", value.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(value)
    }
}

/// Appends one record, CRLF-terminated, to `out`.
pub fn write_record<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, value) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&field(value));
    }
    out.push_str("\r\n");
}

/// Splits one line (without its line ending) into fields. Quoted fields may hold commas and
/// doubled quotes, not line breaks: the chart has one account per line.
pub fn parse_record(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars().peekable();
    // Whether the field being read started with a quote, and whether that quote was closed.
    let mut quoted = false;
    let mut closed = false;
    while let Some(c) = chars.next() {
        if quoted && !closed {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    current.push('"');
                } else {
                    closed = true;
                }
            } else {
                current.push(c);
            }
            continue;
        }
        match c {
            ',' => {
                fields.push(std::mem::take(&mut current));
                quoted = false;
                closed = false;
            }
            '"' if current.is_empty() && !quoted => quoted = true,
            _ if closed => return Err(format!("text after a closing quote: {line:?}")),
            '"' => return Err(format!("a quote inside an unquoted field: {line:?}")),
            _ => current.push(c),
        }
    }
    if quoted && !closed {
        return Err(format!("a quoted field is not closed: {line:?}"));
    }
    fields.push(current);
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed() {
        let mut out = String::new();
        write_record(&mut out, ["plain", "a,b", "say \"hi\"", "two\nlines", ""]);
        assert_eq!(out, "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\r\n");
    }

    #[test]
    fn records_parse_back() {
        assert_eq!(
            parse_record("1,\"Payable, \"\"EU\"\"\",,x").unwrap(),
            vec!["1", "Payable, \"EU\"", "", "x"]
        );
        assert_eq!(parse_record("").unwrap(), vec![""]);
        assert!(parse_record("\"open").unwrap_err().contains("not closed"));
        assert!(parse_record("a\"b").unwrap_err().contains("unquoted"));
        assert!(parse_record("\"a\"b")
            .unwrap_err()
            .contains("closing quote"));
    }
}
