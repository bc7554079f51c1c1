//! Avro single-object encoding (Avro spec, "Single-object encoding"): the two magic bytes
//! `C3 01`, the 8-byte little-endian CRC-64-AVRO (Rabin) fingerprint of the writer's schema, then
//! the Avro binary body. Any reader holding the `.avsc` files can decode a message; we resolve every
//! known writer version into the newest one, so old events stay readable after the schema evolves.
//! A body whose writer schema came from elsewhere (a schema registry, see `registry`) decodes with
//! [`decode_with_writer`].

use std::io::Read;
use std::sync::OnceLock;

use apache_avro::headers::HeaderBuilder;
use apache_avro::rabin::Rabin;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::types::Value;
use apache_avro::{GenericSingleObjectReader, Schema};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// The two bytes that open every single-object encoded message.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];
const HEADER_LEN: usize = 10;

/// Why bytes could not be decoded into an event. Always permanent: the same bytes never decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("message is {0} bytes, shorter than the 10-byte single-object header")]
    TooShort(usize),
    #[error(
        "message does not start with the Avro single-object magic C3 01 (found {0:02X} {1:02X})"
    )]
    BadMagic(u8, u8),
    #[error("schema fingerprint {fingerprint} is not a known {family} schema version")]
    UnknownFingerprint {
        family: &'static str,
        fingerprint: String,
    },
    #[error("malformed {family} {writer} body: {reason}")]
    Malformed {
        family: &'static str,
        /// `v<N>` for a known version, else where the writer schema came from.
        writer: String,
        reason: String,
    },
}

/// Why a value could not be encoded: a bug in our own types, never in the input.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {family}: {reason}")]
pub struct EncodeError {
    family: &'static str,
    reason: String,
}

/// One parsed schema version.
pub struct SchemaVersion {
    /// 1-based version number, the position in `schemas/<family>/v<N>.avsc`.
    pub version: usize,
    pub schema: Schema,
    pub fingerprint: [u8; 8],
    /// The `.avsc` text, with its docs and defaults, as a schema registry should hold it.
    pub source: &'static str,
    /// Reads a body written with this version; its named types are resolved once, here.
    reader: GenericSingleObjectReader,
    /// Reads a body written with this version straight into a type of the same shape, without
    /// building an Avro `Value` and copying its strings out of it (four times slower).
    direct: serde_avro_fast::Schema,
}

/// The single-object header is split off before the body is read.
struct NoHeader;

impl HeaderBuilder for NoHeader {
    fn build_header(&self) -> Vec<u8> {
        Vec::new()
    }
}

/// All versions of one event's schema, oldest first, parsed on first use.
pub struct SchemaFamily {
    name: &'static str,
    sources: &'static [&'static str],
    parsed: OnceLock<Vec<SchemaVersion>>,
}

impl SchemaFamily {
    pub const fn new(name: &'static str, sources: &'static [&'static str]) -> Self {
        Self {
            name,
            sources,
            parsed: OnceLock::new(),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Every version, oldest first. Panics only if a checked-in `.avsc` is invalid, which the
    /// codec tests catch before anything ships.
    pub fn versions(&self) -> &[SchemaVersion] {
        self.parsed.get_or_init(|| {
            self.sources
                .iter()
                .enumerate()
                .map(|(i, source)| {
                    let schema = Schema::parse_str(source).unwrap_or_else(|e| {
                        panic!("schemas/{} v{} is not valid Avro: {e}", self.name, i + 1)
                    });
                    let fingerprint = fingerprint_of(&schema);
                    let reader = GenericSingleObjectReader::new_with_header_builder(
                        schema.clone(),
                        NoHeader,
                    )
                    .unwrap_or_else(|e| {
                        panic!(
                            "schemas/{} v{} has unresolvable names: {e}",
                            self.name,
                            i + 1
                        )
                    });
                    let direct = source.parse().unwrap_or_else(|e| {
                        panic!("schemas/{} v{} is not valid Avro: {e}", self.name, i + 1)
                    });
                    SchemaVersion {
                        version: i + 1,
                        schema,
                        fingerprint,
                        source,
                        reader,
                        direct,
                    }
                })
                .collect()
        })
    }

    /// The version we write.
    pub fn latest(&self) -> &SchemaVersion {
        self.versions()
            .last()
            .expect("a schema family has at least one version")
    }

    fn by_fingerprint(&self, fingerprint: &[u8]) -> Option<&SchemaVersion> {
        self.versions()
            .iter()
            .find(|v| v.fingerprint[..] == *fingerprint)
    }

    /// Checks the compatibility rule: every version can read data written by the one before.
    pub fn check_backward_compatible(&self) -> Result<(), String> {
        for pair in self.versions().windows(2) {
            SchemaCompatibility::can_read(&pair[0].schema, &pair[1].schema).map_err(|e| {
                format!(
                    "{} v{} cannot read v{}: {e}",
                    self.name, pair[1].version, pair[0].version
                )
            })?;
        }
        Ok(())
    }
}

/// CRC-64-AVRO fingerprint of the schema's parsing canonical form, as the spec lays it out on the
/// wire (little-endian).
pub fn fingerprint_of(schema: &Schema) -> [u8; 8] {
    let bytes = schema.fingerprint::<Rabin>().bytes;
    bytes
        .try_into()
        .expect("a Rabin fingerprint is 8 bytes long")
}

/// Encodes `value` with the family's newest schema.
pub fn encode<T: Serialize>(family: &SchemaFamily, value: &T) -> Result<Vec<u8>, EncodeError> {
    let value = apache_avro::to_value(value).map_err(|e| EncodeError {
        family: family.name,
        reason: e.to_string(),
    })?;
    encode_value(family.name, family.latest(), value)
}

/// Encodes an Avro value with a given schema version (tests use it to write older versions).
pub fn encode_value(
    family: &'static str,
    version: &SchemaVersion,
    value: Value,
) -> Result<Vec<u8>, EncodeError> {
    let body = apache_avro::to_avro_datum(&version.schema, value).map_err(|e| EncodeError {
        family,
        reason: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.fingerprint);
    out.extend_from_slice(&body);
    Ok(out)
}

/// The writer version and the body of a single-object encoded message of `family`.
pub fn split_single_object<'a>(
    family: &'a SchemaFamily,
    bytes: &'a [u8],
) -> Result<(&'a SchemaVersion, &'a [u8]), DecodeError> {
    if bytes.len() < HEADER_LEN {
        return Err(DecodeError::TooShort(bytes.len()));
    }
    if bytes[..2] != MAGIC {
        return Err(DecodeError::BadMagic(bytes[0], bytes[1]));
    }
    let fingerprint = &bytes[2..HEADER_LEN];
    let writer =
        family
            .by_fingerprint(fingerprint)
            .ok_or_else(|| DecodeError::UnknownFingerprint {
                family: family.name,
                fingerprint: fingerprint.iter().map(|b| format!("{b:02x}")).collect(),
            })?;
    Ok((writer, &bytes[HEADER_LEN..]))
}

/// Decodes a single-object encoded message written with any known version into `T`, which
/// mirrors the newest version.
pub fn decode<T: DeserializeOwned>(family: &SchemaFamily, bytes: &[u8]) -> Result<T, DecodeError> {
    let (writer, body) = split_single_object(family, bytes)?;
    decode_body(family, Writer::Known(writer), body)
}

/// Decodes an Avro binary body written with `writer` (from a schema registry, say) into `T`,
/// resolving it into the family's newest version as for single-object messages.
pub fn decode_with_writer<T: DeserializeOwned>(
    family: &SchemaFamily,
    writer: &Schema,
    body: &[u8],
) -> Result<T, DecodeError> {
    decode_fingerprinted(family, writer, &fingerprint_of(writer), body)
}

/// [`decode_with_writer`] for a writer whose fingerprint is known already (a registry client
/// keeps it with the schema: working it out takes the schema's canonical form every time).
pub fn decode_fingerprinted<T: DeserializeOwned>(
    family: &SchemaFamily,
    writer: &Schema,
    fingerprint: &[u8; 8],
    body: &[u8],
) -> Result<T, DecodeError> {
    let writer = match family.by_fingerprint(fingerprint) {
        Some(known) => Writer::Known(known),
        None => Writer::Other(writer),
    };
    decode_body(family, writer, body)
}

/// The schema a body was written with.
enum Writer<'a> {
    Known(&'a SchemaVersion),
    Other(&'a Schema),
}

fn decode_body<T: DeserializeOwned>(
    family: &SchemaFamily,
    writer: Writer<'_>,
    bytes: &[u8],
) -> Result<T, DecodeError> {
    let malformed = |reason: String| DecodeError::Malformed {
        family: family.name,
        writer: match &writer {
            Writer::Known(known) => format!("v{}", known.version),
            Writer::Other(_) => "(registry schema)".to_string(),
        },
        reason,
    };
    match &writer {
        // A record written with the newest version already has T's shape, so it is read straight
        // into T. Other writers go through an Avro `Value`, which apache-avro can resolve.
        Writer::Known(known) if known.version == family.latest().version => {
            read_direct(&known.direct, bytes).map_err(malformed)
        }
        _ => read_resolved(family, &writer, bytes).map_err(malformed),
    }
}

/// Reads a body whose writer schema is `schema` into a type of the same shape.
fn read_direct<T: DeserializeOwned>(
    schema: &serde_avro_fast::Schema,
    bytes: &[u8],
) -> Result<T, String> {
    let mut rest = bytes;
    let mut reader = serde_avro_fast::de::read::ReaderRead::new(&mut rest);
    // No field can be longer than the body, so a corrupt length fails before allocating it.
    reader.max_alloc_size = bytes.len();
    let read =
        T::deserialize(serde_avro_fast::de::DeserializerState::new(reader, schema).deserializer());
    match (read, rest) {
        (Ok(value), []) => Ok(value),
        (Ok(_), rest) => Err(format!("{} trailing bytes after the record", rest.len())),
        // Reading stopped at the end of the input: it needed more.
        (Err(e), []) => Err(format!("the body ends inside its record: truncated ({e})")),
        (Err(e), _) => Err(e.to_string()),
    }
}

/// Reads a body into the family's newest version, resolving it from its writer's.
fn read_resolved<T: DeserializeOwned>(
    family: &SchemaFamily,
    writer: &Writer<'_>,
    bytes: &[u8],
) -> Result<T, String> {
    // apache-avro reads a union cut off at the end of input as null, so a truncated message could
    // pass as one without its trailing optional fields. A byte after the body keeps the reader
    // off the end: a whole record leaves it unread, a truncated one reads into it.
    let mut input = bytes.chain(&[0u8][..]);
    let value = match writer {
        Writer::Known(known) => known.reader.read_value(&mut input),
        Writer::Other(schema) => apache_avro::from_avro_datum(schema, &mut input, None),
    }
    .map_err(|e| e.to_string())?;
    match input.into_inner() {
        ([], [_]) => {}
        ([], []) => return Err("the body ends inside its record: truncated".into()),
        (rest, _) => return Err(format!("{} trailing bytes after the record", rest.len())),
    }
    let value = value
        .resolve(&family.latest().schema)
        .map_err(|e| e.to_string())?;
    apache_avro::from_value(&value).map_err(|e| e.to_string())
}
