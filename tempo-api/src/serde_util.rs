//! Serde helpers for gogo `jsonpb` number conventions.
//!
//! jsonpb writes 64-bit integers as decimal strings and 32-bit integers as
//! numbers. It writes non-finite doubles as the strings `"NaN"`,
//! `"Infinity"` and `"-Infinity"`. The readers here accept both the string and
//! the number form so that hand-written or third-party JSON also parses.

use serde::de::{self, Deserializer, Visitor};
use serde::ser::Serializer;
use std::fmt;

/// `skip_serializing_if` helper for numeric zero values.
pub(crate) fn is_zero<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

struct IntVisitor<T>(std::marker::PhantomData<T>);

impl<T> Visitor<'_> for IntVisitor<T>
where
    T: TryFrom<u64> + TryFrom<i64> + std::str::FromStr,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a decimal string")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("integer {v} out of range")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::custom(format!("integer {v} out of range")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        // JSON numbers such as `1e3` or `5.0` that hold an exact integer.
        if v.fract() == 0.0 && v.is_finite() {
            let s = format!("{v:.0}");
            return s
                .parse::<T>()
                .map_err(|_| E::custom(format!("integer {v} out of range")));
        }
        Err(E::custom(format!("expected an integer, got {v}")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.trim()
            .parse::<T>()
            .map_err(|_| E::custom(format!("invalid integer string {v:?}")))
    }
}

fn deserialize_int<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64> + TryFrom<i64> + std::str::FromStr,
{
    d.deserialize_any(IntVisitor(std::marker::PhantomData))
}

/// `u64` as a decimal string (jsonpb `uint64`/`fixed64`).
pub(crate) mod u64_str {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        deserialize_int(d)
    }
}

/// `Option<i64>` as a decimal string (jsonpb `int64` inside a oneof).
pub(crate) mod opt_i64_str {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.collect_str(v),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        deserialize_int(d).map(Some)
    }
}

/// `BTreeMap<String, i64>` with values as decimal strings (jsonpb
/// `map<string, int64>`).
pub(crate) mod map_i64_str {
    use super::*;
    use serde::Deserialize;
    use serde::ser::SerializeMap;
    use std::collections::BTreeMap;

    pub(crate) fn serialize<S: Serializer>(
        v: &BTreeMap<String, i64>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(v.len()))?;
        for (k, v) in v {
            m.serialize_entry(k, &v.to_string())?;
        }
        m.end()
    }

    struct Lenient(i64);

    impl<'de> Deserialize<'de> for Lenient {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            deserialize_int(d).map(Lenient)
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, i64>, D::Error> {
        let raw = BTreeMap::<String, Lenient>::deserialize(d)?;
        Ok(raw.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}

/// `Option<f64>` as a JSON number, or `"NaN"` / `"Infinity"` / `"-Infinity"`.
pub(crate) mod opt_f64 {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            None => s.serialize_none(),
            Some(v) if v.is_nan() => s.serialize_str("NaN"),
            Some(v) if v.is_infinite() && *v > 0.0 => s.serialize_str("Infinity"),
            Some(v) if v.is_infinite() => s.serialize_str("-Infinity"),
            Some(v) => s.serialize_f64(*v),
        }
    }

    struct F64Visitor;

    impl Visitor<'_> for F64Visitor {
        type Value = f64;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number, a numeric string, \"NaN\", \"Infinity\" or \"-Infinity\"")
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<f64, E> {
            Ok(v)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<f64, E> {
            Ok(v as f64)
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<f64, E> {
            match v {
                "NaN" => Ok(f64::NAN),
                "Infinity" => Ok(f64::INFINITY),
                "-Infinity" => Ok(f64::NEG_INFINITY),
                other => other
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| E::custom(format!("invalid double string {other:?}"))),
            }
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        d.deserialize_any(F64Visitor).map(Some)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
    #[serde(default)]
    struct T {
        #[serde(with = "super::u64_str")]
        a: u64,
        #[serde(with = "super::opt_i64_str", skip_serializing_if = "Option::is_none")]
        b: Option<i64>,
        #[serde(with = "super::opt_f64", skip_serializing_if = "Option::is_none")]
        c: Option<f64>,
        #[serde(with = "super::map_i64_str")]
        m: BTreeMap<String, i64>,
    }

    #[test]
    fn integers_serialize_as_strings_and_read_both_forms() {
        let t = T {
            a: u64::MAX,
            b: Some(-5),
            c: Some(1.5),
            m: BTreeMap::from([("k".to_string(), -3)]),
        };
        let s = serde_json::to_string(&t).unwrap();
        assert_eq!(
            s,
            r#"{"a":"18446744073709551615","b":"-5","c":1.5,"m":{"k":"-3"}}"#
        );
        assert_eq!(serde_json::from_str::<T>(&s).unwrap(), t);
        let n: T = serde_json::from_str(r#"{"a":7,"b":-5,"c":"2.5","m":{"k":4}}"#).unwrap();
        assert_eq!((n.a, n.b, n.c, n.m["k"]), (7, Some(-5), Some(2.5), 4));
        assert!(serde_json::from_str::<T>(r#"{"a":"x"}"#).is_err());
        assert!(serde_json::from_str::<T>(r#"{"a":-1}"#).is_err());
    }

    #[test]
    fn non_finite_doubles_use_jsonpb_names() {
        for (v, s) in [
            (f64::INFINITY, r#""Infinity""#),
            (f64::NEG_INFINITY, r#""-Infinity""#),
            (f64::NAN, r#""NaN""#),
        ] {
            let t = T {
                c: Some(v),
                ..T::default()
            };
            let json = serde_json::to_string(&t).unwrap();
            assert!(json.contains(&format!(r#""c":{s}"#)), "{json}");
            let back: T = serde_json::from_str(&json).unwrap();
            let c = back.c.unwrap();
            assert!(c == v || (c.is_nan() && v.is_nan()));
        }
    }
}
