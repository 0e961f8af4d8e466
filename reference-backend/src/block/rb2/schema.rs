//! The rb2 column layout: arrow schema, parquet writer properties and where each column
//! sits in an opened file. The layout itself is documented in `rb2/mod.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use parquet::schema::types::{ColumnPath, SchemaDescriptor};

/// Parquet key-value metadata keys.
pub const KV_MAGIC: &str = "rb2.magic";
/// Format version key.
pub const KV_VERSION: &str = "rb2.version";
/// Block start (unix ns) that `trace_start` is relative to.
pub const KV_BASE_NS: &str = "rb2.base_ns";
/// JSON array of the dedicated span attribute keys, in column order.
pub const KV_DEDICATED: &str = "rb2.dedicated";
/// JSON array of the attribute keys whose string values are in `attrs.p`.
pub const KV_PLAIN_KEYS: &str = "rb2.plain_keys";
/// Value of [`KV_MAGIC`].
pub const MAGIC: &str = "rb2";
/// Value of [`KV_VERSION`].
pub const VERSION: &str = "1";

// Top-level column names.
pub const TRACE_ID: &str = "trace_id";
pub const TRACE_START: &str = "trace_start";
pub const TRACE_DURATION: &str = "trace_duration";
pub const ROOT_SERVICE: &str = "root_service";
pub const ROOT_NAME: &str = "root_name";
pub const GROUP: &str = "group";
pub const RES: &str = "res";
pub const SCOPE: &str = "scope";
pub const SERVICE: &str = "service";
pub const SPAN_ID: &str = "span_id";
pub const PARENT: &str = "parent";
pub const PARENT_ID: &str = "parent_id";
pub const ODD: &str = "odd";
pub const NAME: &str = "name";
pub const KIND: &str = "kind";
pub const START: &str = "start";
pub const DURATION: &str = "duration";
pub const STATUS_CODE: &str = "status_code";
pub const STATUS_MESSAGE: &str = "status_message";
pub const TRACE_STATE: &str = "trace_state";
pub const FLAGS: &str = "flags";
pub const DROPPED_ATTRS: &str = "dropped_attrs";
pub const DROPPED_EVENTS: &str = "dropped_events";
pub const DROPPED_LINKS: &str = "dropped_links";
pub const EVENTS: &str = "events";
pub const LINKS: &str = "links";
pub const ATTRS: &str = "attrs";

/// Children of an `attrs` list element, in order.
pub const ATTR_FIELDS: [&str; 6] = ["kv", "p", "i", "d", "b", "raw"];
/// Number of `attrs` children.
pub const ATTR_CHILDREN: usize = ATTR_FIELDS.len();
/// Index of each child in [`ATTR_FIELDS`]: the key, with the string value when the key
/// has few distinct values (dictionary-encoded; see [`KV_SEP`]).
pub const A_KV: usize = 0;
/// String value of a key with many distinct values (`rb2.plain_keys`; plain encoding).
pub const A_P: usize = 1;
/// Int value.
pub const A_I: usize = 2;
/// Double value.
pub const A_D: usize = 3;
/// Bool value.
pub const A_B: usize = 4;
/// Any other value: the whole encoded `KeyValue`.
pub const A_RAW: usize = 5;
/// In an `attrs.kv` entry, separates the key from its string value (never in UTF-8).
pub const KV_SEP: u8 = 0xff;

/// `group` values: how a span row relates to the previous row of its trace.
pub const GROUP_SAME: u8 = 0;
/// Starts a new `ScopeSpans` in the current `ResourceSpans`.
pub const GROUP_NEW_SCOPE: u8 = 1;
/// Starts a new `ResourceSpans` (and `ScopeSpans`).
pub const GROUP_NEW_RESOURCE: u8 = 2;
/// First row of a trace (and so of a `ResourceSpans` and `ScopeSpans`).
pub const GROUP_NEW_TRACE: u8 = 3;
/// Bit set on a span whose span id an earlier span of the trace has (search skips it).
pub const GROUP_DUP: u8 = 4;
/// The bits of `group` that say how the row relates to the previous one.
pub const GROUP_KIND: u8 = 3;

/// `parent` value of a span without a parent.
pub const PARENT_NONE: i32 = -1;

/// Name of the string column of dedicated attribute `n`.
pub fn ded_s(n: usize) -> String {
    format!("ded{n}_s")
}
/// Name of the int column of dedicated attribute `n`.
pub fn ded_i(n: usize) -> String {
    format!("ded{n}_i")
}
/// Name of the position column of dedicated attribute `n`.
pub fn ded_pos(n: usize) -> String {
    format!("ded{n}_pos")
}

fn dict_str() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

fn dict_bin() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Binary))
}

/// Fields of an `attrs` element.
pub fn attr_fields() -> Fields {
    Fields::from(vec![
        Field::new(ATTR_FIELDS[A_KV], dict_bin(), false),
        Field::new(ATTR_FIELDS[A_P], DataType::Utf8, true),
        Field::new(ATTR_FIELDS[A_I], DataType::Int64, true),
        Field::new(ATTR_FIELDS[A_D], DataType::Float64, true),
        Field::new(ATTR_FIELDS[A_B], DataType::Boolean, true),
        Field::new(ATTR_FIELDS[A_RAW], DataType::Binary, true),
    ])
}

/// The `attrs` list element field.
pub fn attr_item() -> Arc<Field> {
    Arc::new(Field::new(
        "element",
        DataType::Struct(attr_fields()),
        false,
    ))
}

/// The arrow schema of a block with `dedicated` attribute columns.
pub fn arrow_schema(dedicated: usize) -> SchemaRef {
    let mut fields = vec![
        Field::new(TRACE_ID, DataType::FixedSizeBinary(16), true),
        Field::new(TRACE_START, DataType::UInt64, true),
        Field::new(TRACE_DURATION, DataType::UInt64, true),
        Field::new(ROOT_SERVICE, dict_str(), true),
        Field::new(ROOT_NAME, dict_str(), true),
        Field::new(GROUP, DataType::UInt8, false),
        Field::new(RES, dict_bin(), false),
        Field::new(SCOPE, dict_bin(), false),
        Field::new(SERVICE, dict_str(), true),
        Field::new(SPAN_ID, DataType::FixedSizeBinary(8), true),
        Field::new(PARENT, DataType::Int32, true),
        Field::new(PARENT_ID, DataType::FixedSizeBinary(8), true),
        Field::new(ODD, DataType::Binary, true),
        Field::new(NAME, dict_str(), false),
        Field::new(KIND, DataType::Int32, false),
        Field::new(START, DataType::UInt64, false),
        Field::new(DURATION, DataType::UInt64, false),
        Field::new(STATUS_CODE, DataType::Int32, true),
        Field::new(STATUS_MESSAGE, dict_str(), true),
        Field::new(TRACE_STATE, dict_str(), false),
        Field::new(FLAGS, DataType::UInt32, false),
        Field::new(DROPPED_ATTRS, DataType::UInt32, false),
        Field::new(DROPPED_EVENTS, DataType::UInt32, false),
        Field::new(DROPPED_LINKS, DataType::UInt32, false),
        Field::new(EVENTS, DataType::Binary, true),
        Field::new(LINKS, DataType::Binary, true),
        Field::new(ATTRS, DataType::List(attr_item()), false),
    ];
    for n in 0..dedicated {
        fields.push(Field::new(ded_s(n), dict_str(), true));
        fields.push(Field::new(ded_i(n), DataType::Int64, true));
        fields.push(Field::new(ded_pos(n), DataType::UInt32, true));
    }
    Arc::new(Schema::new(fields))
}

/// Writer properties: zstd, dictionaries where values repeat, page statistics on the
/// columns search and lookup prune by, none on opaque blobs.
pub fn writer_properties(
    zstd_level: i32,
    page_rows: usize,
    page_bytes: usize,
    kv: Vec<KeyValue>,
    dedicated: usize,
) -> WriterProperties {
    let level = ZstdLevel::try_new(zstd_level).unwrap_or_default();
    let mut b = WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(level))
        .set_data_page_row_count_limit(page_rows)
        .set_write_batch_size(page_rows.clamp(8, 1024))
        .set_data_page_size_limit(page_bytes)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_statistics_truncate_length(None)
        .set_max_row_group_row_count(None)
        .set_max_row_group_bytes(None)
        .set_write_path_in_schema(false)
        .set_key_value_metadata(Some(kv));
    let col = |name: &str| ColumnPath::from(name);
    // Unique per row: a dictionary would only be abandoned after its first megabyte, and
    // until then every lookup decompresses it whole (span start and duration too).
    for name in [
        TRACE_ID,
        SPAN_ID,
        PARENT_ID,
        ODD,
        EVENTS,
        LINKS,
        TRACE_START,
        START,
        DURATION,
    ] {
        b = b.set_column_dictionary_enabled(col(name), false);
    }
    // Statistics only where search prunes by them (they cost footer bytes).
    let mut pruning = vec![
        TRACE_START.to_owned(),
        TRACE_DURATION.to_owned(),
        ROOT_SERVICE.to_owned(),
        ROOT_NAME.to_owned(),
        SERVICE.to_owned(),
        NAME.to_owned(),
    ];
    pruning.extend((0..dedicated).map(ded_s));
    for name in &pruning {
        b = b.set_column_statistics_enabled(col(name), EnabledStatistics::Chunk);
    }
    // Lookups pick pages by trace id; the time range prunes by trace start.
    b = b.set_column_statistics_enabled(col(TRACE_ID), EnabledStatistics::Page);
    b = b.set_column_encoding(col(TRACE_START), Encoding::DELTA_BINARY_PACKED);
    // Resources and scopes repeat across a whole block: keep them dictionary-encoded.
    for name in [RES, SCOPE] {
        b = b.set_column_dictionary_page_size_limit(col(name), 8 << 20);
    }
    for child in [A_P, A_RAW] {
        let path = ColumnPath::new(vec![
            ATTRS.to_owned(),
            "list".to_owned(),
            "element".to_owned(),
            ATTR_FIELDS[child].to_owned(),
        ]);
        b = b.set_column_dictionary_enabled(path, false);
    }
    b.build()
}

/// Where each column of an opened block sits: root field index (for whole columns) and
/// parquet leaf indices.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Root field index by name.
    roots: HashMap<String, usize>,
    /// Leaf index by top-level name (primitive columns).
    leaves: HashMap<String, usize>,
    /// Leaf index of each `attrs` child, in [`ATTR_FIELDS`] order.
    pub attr_leaves: [usize; ATTR_CHILDREN],
}

impl Layout {
    /// Map the columns of `schema`; `Err` names what is missing.
    pub fn new(schema: &SchemaDescriptor, dedicated: usize) -> Result<Self, String> {
        let mut leaves = HashMap::new();
        let mut attr_leaves = [usize::MAX; ATTR_CHILDREN];
        for (i, c) in schema.columns().iter().enumerate() {
            let parts = c.path().parts();
            match parts {
                [one] => {
                    leaves.insert(one.clone(), i);
                }
                [first, .., last] if first == ATTRS => {
                    if let Some(k) = ATTR_FIELDS.iter().position(|f| f == last) {
                        attr_leaves[k] = i;
                    }
                }
                _ => {}
            }
        }
        let root = schema.root_schema();
        let roots: HashMap<String, usize> = root
            .get_fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name().to_owned(), i))
            .collect();
        let expected = arrow_schema(dedicated);
        for f in expected.fields() {
            if !roots.contains_key(f.name()) {
                return Err(format!("column {} is missing", f.name()));
            }
        }
        if attr_leaves.contains(&usize::MAX) {
            return Err("attrs columns are incomplete".into());
        }
        Ok(Layout {
            roots,
            leaves,
            attr_leaves,
        })
    }

    /// Root index of a top-level column (present: checked in [`Layout::new`]).
    pub fn root(&self, name: &str) -> usize {
        self.roots.get(name).copied().unwrap_or(usize::MAX)
    }

    /// Leaf index of a primitive top-level column.
    pub fn leaf(&self, name: &str) -> usize {
        self.leaves.get(name).copied().unwrap_or(usize::MAX)
    }
}
