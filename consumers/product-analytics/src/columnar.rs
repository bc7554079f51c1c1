//! The Parquet layout of the archive: one column per field of [`SoldLine`], Snappy-compressed.
//! The partition date is not a column: it is the `date=YYYY-MM-DD` folder, which DuckDB, Spark
//! and pyarrow/pandas turn into a `date` column themselves (pyarrow refuses a file that also has
//! the column). Encoding is deterministic, so writing a batch again gives the same bytes.

use std::sync::Arc;

use arrow_array::builder::{MapBuilder, MapFieldNames, StringBuilder};
use arrow_array::{
    ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;

use crate::line::SoldLine;

/// The names of the map's parts the Parquet spec gives (`key_value`, `key`, `value`), which
/// Spark and DuckDB expect.
fn map_names() -> MapFieldNames {
    MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    }
}

fn key_field() -> Field {
    Field::new("key", DataType::Utf8, false)
}

fn value_field() -> Field {
    Field::new("value", DataType::Utf8, false)
}

/// The schema of every archive file.
pub fn schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    let attributes = DataType::Map(
        Arc::new(Field::new(
            "key_value",
            DataType::Struct(Fields::from(vec![key_field(), value_field()])),
            false,
        )),
        false,
    );
    Arc::new(Schema::new(vec![
        text("order_line_id"),
        text("order_id"),
        Field::new(
            "placed_at",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        text("sku"),
        text("category"),
        text("design_id"),
        text("print_technique"),
        text("size"),
        text("colour"),
        text("material"),
        Field::new("attributes", attributes, false),
        Field::new("quantity", DataType::Int32, false),
        Field::new("unit_price_minor", DataType::Int64, false),
        text("currency"),
        text("shipping_country"),
        text("channel"),
    ]))
}

/// The lines as one Arrow record batch, in the order given.
pub fn record_batch(lines: &[SoldLine]) -> Result<RecordBatch, ArrowError> {
    let text = |get: fn(&SoldLine) -> &str| -> ArrayRef {
        Arc::new(lines.iter().map(get).map(Some).collect::<StringArray>())
    };
    let mut attributes = MapBuilder::new(
        Some(map_names()),
        StringBuilder::new(),
        StringBuilder::new(),
    )
    .with_keys_field(key_field())
    .with_values_field(value_field());
    for line in lines {
        for (key, value) in &line.attributes {
            attributes.keys().append_value(key);
            attributes.values().append_value(value);
        }
        attributes.append(true)?;
    }
    let columns: Vec<ArrayRef> = vec![
        text(|l| &l.order_line_id),
        text(|l| &l.order_id),
        Arc::new(
            TimestampMillisecondArray::from_iter_values(
                lines.iter().map(|l| l.placed_at.timestamp_millis()),
            )
            .with_timezone("UTC"),
        ),
        text(|l| &l.sku),
        text(|l| &l.category),
        text(|l| &l.design_id),
        text(|l| &l.print_technique),
        text(|l| &l.size),
        text(|l| &l.colour),
        text(|l| &l.material),
        Arc::new(attributes.finish()),
        Arc::new(Int32Array::from_iter_values(
            lines.iter().map(|l| l.quantity),
        )),
        Arc::new(Int64Array::from_iter_values(
            lines.iter().map(|l| l.unit_price_minor),
        )),
        text(|l| &l.currency),
        text(|l| &l.shipping_country),
        text(|l| &l.channel),
    ];
    RecordBatch::try_new(schema(), columns)
}

/// One Parquet file holding the lines, in the order given.
pub fn encode(lines: &[SoldLine]) -> Result<Vec<u8>, ParquetError> {
    let batch = record_batch(lines)?;
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema(), Some(properties))?;
    writer.write(&batch)?;
    writer.into_inner()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use arrow_array::cast::AsArray;
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    use super::*;

    fn line(id: &str, attributes: &[(&str, &str)]) -> SoldLine {
        SoldLine {
            order_line_id: id.into(),
            order_id: "o-1".into(),
            placed_at: chrono::DateTime::from_timestamp_millis(1_795_000_000_123).unwrap(),
            sku: "MUG".into(),
            category: "mugs".into(),
            design_id: "dsg".into(),
            print_technique: "sublimation".into(),
            size: "11oz".into(),
            colour: "white".into(),
            material: "ceramic".into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            quantity: 2,
            unit_price_minor: 1299,
            currency: "EUR".into(),
            shipping_country: "ES".into(),
            channel: "web".into(),
        }
    }

    #[test]
    fn the_same_lines_encode_to_the_same_bytes() {
        let lines = [line("a", &[("fit", "regular")]), line("b", &[])];
        assert_eq!(encode(&lines).unwrap(), encode(&lines).unwrap());
    }

    #[test]
    fn a_file_reads_back_with_snappy_and_the_map_column() {
        let lines = [
            line("a", &[("fit", "regular"), ("gsm", "180")]),
            line("b", &[]),
        ];
        let path = std::env::temp_dir().join(format!("columnar-{}.parquet", std::process::id()));
        std::fs::write(&path, encode(&lines).unwrap()).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let builder = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let column = builder.metadata().row_group(0).column(0);
        assert_eq!(column.compression(), Compression::SNAPPY);
        let batches: Vec<_> = builder.build().unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(batches.len(), 1);
        let read = &batches[0];
        assert_eq!(read.schema(), schema());
        let attributes = read.column(10).as_map();
        assert_eq!(attributes.value(0).len(), 2);
        assert_eq!(attributes.value(1).len(), 0);
        let keys = attributes.keys().as_string::<i32>();
        assert_eq!((keys.value(0), keys.value(1)), ("fit", "gsm"));
    }
}
