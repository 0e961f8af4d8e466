//! Typed access to the columns of a decoded record batch.

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, DictionaryArray, FixedSizeBinaryArray,
    Float64Array, Int32Array, Int64Array, ListArray, StringArray, StructArray, UInt8Array,
    UInt32Array, UInt64Array,
};
use arrow::datatypes::Int32Type;
use arrow::record_batch::RecordBatch;

use super::schema::ATTR_FIELDS;

/// A dictionary-encoded string column.
#[derive(Clone, Copy)]
pub struct DictStr<'a> {
    /// Keys (null = no value).
    pub keys: &'a Int32Array,
    /// Dictionary values.
    pub values: &'a StringArray,
}

impl<'a> DictStr<'a> {
    /// Value of row `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a str> {
        if self.keys.is_null(i) {
            return None;
        }
        let k = self.keys.value(i) as usize;
        (k < self.values.len()).then(|| self.values.value(k))
    }
}

/// A dictionary-encoded binary column.
#[derive(Clone, Copy)]
pub struct DictBin<'a> {
    /// Keys (null = no value).
    pub keys: &'a Int32Array,
    /// Dictionary values.
    pub values: &'a BinaryArray,
}

impl<'a> DictBin<'a> {
    /// Value of row `i`.
    #[inline]
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        if self.keys.is_null(i) {
            return None;
        }
        let k = self.keys.value(i) as usize;
        (k < self.values.len()).then(|| self.values.value(k))
    }
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef, String> {
    batch
        .column_by_name(name)
        .ok_or_else(|| format!("column {name} was not read"))
}

fn typed<'a, T: 'static>(a: &'a dyn Array, name: &str) -> Result<&'a T, String> {
    a.as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| format!("column {name} has type {}", a.data_type()))
}

/// A top-level column of type `T`.
pub fn get<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T, String> {
    typed(column(batch, name)?.as_ref(), name)
}

fn dict_parts<'a>(a: &'a dyn Array, name: &str) -> Result<(&'a Int32Array, &'a ArrayRef), String> {
    let d: &DictionaryArray<Int32Type> = typed(a, name)?;
    Ok((d.keys(), d.values()))
}

/// A dictionary string array.
pub fn dict_str_of<'a>(a: &'a dyn Array, name: &str) -> Result<DictStr<'a>, String> {
    let (keys, values) = dict_parts(a, name)?;
    Ok(DictStr {
        keys,
        values: typed(values.as_ref(), name)?,
    })
}

/// A dictionary string column.
pub fn dict_str<'a>(batch: &'a RecordBatch, name: &str) -> Result<DictStr<'a>, String> {
    dict_str_of(column(batch, name)?.as_ref(), name)
}

/// A dictionary binary column.
pub fn dict_bin<'a>(batch: &'a RecordBatch, name: &str) -> Result<DictBin<'a>, String> {
    let (keys, values) = dict_parts(column(batch, name)?.as_ref(), name)?;
    Ok(DictBin {
        keys,
        values: typed(values.as_ref(), name)?,
    })
}

/// The `attrs` list with whichever element children were read.
pub struct Attrs<'a> {
    /// The list (offsets per row).
    pub list: &'a ListArray,
    /// Key.
    pub key: Option<DictStr<'a>>,
    /// String value.
    pub s: Option<DictStr<'a>>,
    /// Int value.
    pub i: Option<&'a Int64Array>,
    /// Double value.
    pub d: Option<&'a Float64Array>,
    /// Bool value.
    pub b: Option<&'a BooleanArray>,
    /// Encoded `KeyValue` of any other value.
    pub raw: Option<&'a BinaryArray>,
}

impl<'a> Attrs<'a> {
    /// The `attrs` column of `batch`.
    pub fn of(batch: &'a RecordBatch) -> Result<Self, String> {
        let list: &ListArray = get(batch, super::schema::ATTRS)?;
        let elements: &StructArray = list.values().as_struct_opt().ok_or("attrs element")?;
        let child = |n: usize| elements.column_by_name(ATTR_FIELDS[n]);
        Ok(Attrs {
            list,
            key: child(0)
                .map(|a| dict_str_of(a.as_ref(), "attrs.key"))
                .transpose()?,
            s: child(1)
                .map(|a| dict_str_of(a.as_ref(), "attrs.s"))
                .transpose()?,
            i: child(2).map(|a| typed(a.as_ref(), "attrs.i")).transpose()?,
            d: child(3).map(|a| typed(a.as_ref(), "attrs.d")).transpose()?,
            b: child(4).map(|a| typed(a.as_ref(), "attrs.b")).transpose()?,
            raw: child(5)
                .map(|a| typed(a.as_ref(), "attrs.raw"))
                .transpose()?,
        })
    }

    /// Element range of row `row`.
    #[inline]
    pub fn range(&self, row: usize) -> std::ops::Range<usize> {
        let o = self.list.value_offsets();
        o[row] as usize..o[row + 1] as usize
    }
}

/// Every column of a fully read batch, typed.
pub struct All<'a> {
    pub trace_id: &'a FixedSizeBinaryArray,
    pub trace_start: &'a UInt64Array,
    pub group: &'a UInt8Array,
    pub res: DictBin<'a>,
    pub scope: DictBin<'a>,
    pub span_id: &'a FixedSizeBinaryArray,
    pub parent: &'a Int32Array,
    pub parent_id: &'a FixedSizeBinaryArray,
    pub odd: &'a BinaryArray,
    pub name: DictStr<'a>,
    pub kind: &'a Int32Array,
    pub start: &'a UInt64Array,
    pub duration: &'a UInt64Array,
    pub status_code: &'a Int32Array,
    pub status_message: DictStr<'a>,
    pub trace_state: DictStr<'a>,
    pub flags: &'a UInt32Array,
    pub dropped_attrs: &'a UInt32Array,
    pub dropped_events: &'a UInt32Array,
    pub dropped_links: &'a UInt32Array,
    pub events: &'a BinaryArray,
    pub links: &'a BinaryArray,
    pub attrs: Attrs<'a>,
    /// Per dedicated key: string, int, position.
    pub ded: Vec<(DictStr<'a>, &'a Int64Array, &'a UInt32Array)>,
}

impl<'a> All<'a> {
    /// Typed views of `batch` (every column read).
    pub fn of(batch: &'a RecordBatch, dedicated: usize) -> Result<Self, String> {
        use super::schema::*;
        let ded = (0..dedicated)
            .map(|n| {
                Ok((
                    dict_str(batch, &ded_s(n))?,
                    get::<Int64Array>(batch, &ded_i(n))?,
                    get::<UInt32Array>(batch, &ded_pos(n))?,
                ))
            })
            .collect::<Result<_, String>>()?;
        Ok(All {
            trace_id: get(batch, TRACE_ID)?,
            trace_start: get(batch, TRACE_START)?,
            group: get(batch, GROUP)?,
            res: dict_bin(batch, RES)?,
            scope: dict_bin(batch, SCOPE)?,
            span_id: get(batch, SPAN_ID)?,
            parent: get(batch, PARENT)?,
            parent_id: get(batch, PARENT_ID)?,
            odd: get(batch, ODD)?,
            name: dict_str(batch, NAME)?,
            kind: get(batch, KIND)?,
            start: get(batch, START)?,
            duration: get(batch, DURATION)?,
            status_code: get(batch, STATUS_CODE)?,
            status_message: dict_str(batch, STATUS_MESSAGE)?,
            trace_state: dict_str(batch, TRACE_STATE)?,
            flags: get(batch, FLAGS)?,
            dropped_attrs: get(batch, DROPPED_ATTRS)?,
            dropped_events: get(batch, DROPPED_EVENTS)?,
            dropped_links: get(batch, DROPPED_LINKS)?,
            events: get(batch, EVENTS)?,
            links: get(batch, LINKS)?,
            attrs: Attrs::of(batch)?,
            ded,
        })
    }
}
