//! What a store accepts, it can give back: the one rule for event payloads and metadata, on
//! every backend.
//!
//! A payload is one JSON document (UTF-8), nested at most [`MAX_DEPTH`] arrays or objects
//! deep, whose strings (and keys) hold no NUL character. Each part of the rule closes a way to
//! store an event that can never be read again: `serde_json` writes a non-finite float as
//! `null` (which no `f64` field reads back), refuses to read documents nested about 128 levels
//! deep, and PostgreSQL refuses `\u0000` in `jsonb`.
//!
//! [`to_vec`] serializes under the rule (refusing instead of writing `null`); [`check`] checks
//! bytes from elsewhere.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{self, Error as _, Serialize, Serializer};

/// The deepest nesting of arrays and objects a stored document may have.
pub const MAX_DEPTH: usize = 64;

/// Serializes `value` to JSON under the store's rule: a non-finite float, a NUL character in a
/// string or key, or nesting deeper than [`MAX_DEPTH`] is an error, where `serde_json` alone
/// would write a document that cannot be read back.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(128);
    let mut json = serde_json::Serializer::new(&mut out);
    value.serialize(Checked {
        inner: &mut json,
        depth: 0,
    })?;
    Ok(out)
}

/// Checks that `bytes` are one JSON document under the store's rule; what is wrong in words
/// otherwise.
pub fn check(bytes: &[u8]) -> Result<(), String> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    Check { depth: 0 }
        .deserialize(&mut json)
        .and_then(|()| json.end())
        .map_err(|e| format!("the payload is not a storable JSON document: {e}"))
}

/// Checks a JSON value (metadata) under the store's rule.
pub(crate) fn check_value(value: &serde_json::Value, depth: usize) -> Result<(), String> {
    match value {
        serde_json::Value::String(s) if s.contains('\0') => {
            Err("a string holds a NUL character".to_owned())
        }
        serde_json::Value::Array(items) => {
            deeper(depth)?;
            items.iter().try_for_each(|v| check_value(v, depth + 1))
        }
        serde_json::Value::Object(map) => {
            deeper(depth)?;
            map.iter().try_for_each(|(k, v)| {
                if k.contains('\0') {
                    return Err("a key holds a NUL character".to_owned());
                }
                check_value(v, depth + 1)
            })
        }
        _ => Ok(()),
    }
}

fn deeper(depth: usize) -> Result<(), String> {
    if depth >= MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    Ok(())
}

fn no_nul(text: &str, what: &str) -> Result<(), String> {
    if text.contains('\0') {
        return Err(format!("{what} holds a NUL character"));
    }
    Ok(())
}

// ---- serializing under the rule --------------------------------------------------------------

/// A serializer that checks what it forwards to `inner`.
struct Checked<S> {
    inner: S,
    depth: usize,
}

/// A value serialized through [`Checked`] at `depth`.
struct At<'a, T: ?Sized> {
    value: &'a T,
    depth: usize,
}

impl<T: Serialize + ?Sized> Serialize for At<'_, T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(Checked {
            inner: serializer,
            depth: self.depth,
        })
    }
}

impl<S> Checked<S> {
    fn at<'a, T: ?Sized>(&self, value: &'a T) -> At<'a, T> {
        At {
            value,
            depth: self.depth,
        }
    }

    /// The depth inside one more array or object.
    fn nest<E: ser::Error>(&self, levels: usize) -> Result<usize, E> {
        let depth = self.depth + levels;
        if depth > MAX_DEPTH {
            return Err(E::custom(format_args!(
                "the event is nested deeper than {MAX_DEPTH} levels, and could not be read back"
            )));
        }
        Ok(depth)
    }
}

fn finite<E: ser::Error>(v: f64) -> Result<(), E> {
    if v.is_finite() {
        return Ok(());
    }
    Err(E::custom(format_args!(
        "the event holds the float {v}, which JSON cannot hold (it would be stored as null, \
         and never read back)"
    )))
}

fn text<E: ser::Error>(v: &str) -> Result<(), E> {
    no_nul(v, "a string").map_err(E::custom)
}

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method(self $(, $arg: $ty)*) -> Result<Self::Ok, Self::Error> {
            self.inner.$method($($arg),*)
        }
    )*};
}

impl<S: Serializer> Serializer for Checked<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Checked<S::SerializeSeq>;
    type SerializeTuple = Checked<S::SerializeTuple>;
    type SerializeTupleStruct = Checked<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Checked<S::SerializeTupleVariant>;
    type SerializeMap = Checked<S::SerializeMap>;
    type SerializeStruct = Checked<S::SerializeStruct>;
    type SerializeStructVariant = Checked<S::SerializeStructVariant>;

    forward! {
        serialize_bool(v: bool);
        serialize_i8(v: i8);
        serialize_i16(v: i16);
        serialize_i32(v: i32);
        serialize_i64(v: i64);
        serialize_i128(v: i128);
        serialize_u8(v: u8);
        serialize_u16(v: u16);
        serialize_u32(v: u32);
        serialize_u64(v: u64);
        serialize_u128(v: u128);
        serialize_bytes(v: &[u8]);
        serialize_none();
        serialize_unit();
        serialize_unit_struct(name: &'static str);
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str);
    }

    fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
        finite(f64::from(v))?;
        self.inner.serialize_f32(v)
    }

    fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
        finite(v)?;
        self.inner.serialize_f64(v)
    }

    fn serialize_char(self, v: char) -> Result<S::Ok, S::Error> {
        if v == '\0' {
            return Err(S::Error::custom("a char is NUL"));
        }
        self.inner.serialize_char(v)
    }

    fn serialize_str(self, v: &str) -> Result<S::Ok, S::Error> {
        text(v)?;
        self.inner.serialize_str(v)
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<S::Ok, S::Error> {
        let value = self.at(value);
        self.inner.serialize_some(&value)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let value = self.at(value);
        self.inner.serialize_newtype_struct(name, &value)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<S::Ok, S::Error> {
        let depth = self.nest(1)?;
        let value = At { value, depth };
        self.inner
            .serialize_newtype_variant(name, index, variant, &value)
    }

    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        let depth = self.nest(1)?;
        let inner = self.inner.serialize_seq(len)?;
        Ok(Checked { inner, depth })
    }

    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        let depth = self.nest(1)?;
        let inner = self.inner.serialize_tuple(len)?;
        Ok(Checked { inner, depth })
    }

    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        let depth = self.nest(1)?;
        let inner = self.inner.serialize_tuple_struct(name, len)?;
        Ok(Checked { inner, depth })
    }

    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        let depth = self.nest(2)?;
        let inner = self
            .inner
            .serialize_tuple_variant(name, index, variant, len)?;
        Ok(Checked { inner, depth })
    }

    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        let depth = self.nest(1)?;
        let inner = self.inner.serialize_map(len)?;
        Ok(Checked { inner, depth })
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        let depth = self.nest(1)?;
        let inner = self.inner.serialize_struct(name, len)?;
        Ok(Checked { inner, depth })
    }

    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        let depth = self.nest(2)?;
        let inner = self
            .inner
            .serialize_struct_variant(name, index, variant, len)?;
        Ok(Checked { inner, depth })
    }

    fn is_human_readable(&self) -> bool {
        self.inner.is_human_readable()
    }
}

/// The sequence-like compounds: each element is checked, then handed to the inner one.
macro_rules! checked_elements {
    ($($compound:ident :: $method:ident),* $(,)?) => {$(
        impl<S: ser::$compound> ser::$compound for Checked<S> {
            type Ok = S::Ok;
            type Error = S::Error;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
                let value = self.at(value);
                self.inner.$method(&value)
            }

            fn end(self) -> Result<S::Ok, S::Error> {
                self.inner.end()
            }
        }
    )*};
}

checked_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field,
);

impl<S: ser::SerializeMap> ser::SerializeMap for Checked<S> {
    type Ok = S::Ok;
    type Error = S::Error;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), S::Error> {
        let key = self.at(key);
        self.inner.serialize_key(&key)
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), S::Error> {
        let value = self.at(value);
        self.inner.serialize_value(&value)
    }

    fn end(self) -> Result<S::Ok, S::Error> {
        self.inner.end()
    }
}

/// The struct-like compounds: each field is checked, then handed to the inner one.
macro_rules! checked_fields {
    ($($compound:ident),* $(,)?) => {$(
        impl<S: ser::$compound> ser::$compound for Checked<S> {
            type Ok = S::Ok;
            type Error = S::Error;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), S::Error> {
                let value = self.at(value);
                self.inner.serialize_field(key, &value)
            }

            fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
                self.inner.skip_field(key)
            }

            fn end(self) -> Result<S::Ok, S::Error> {
                self.inner.end()
            }
        }
    )*};
}

checked_fields!(SerializeStruct, SerializeStructVariant);

// ---- checking bytes under the rule -------------------------------------------------------------

/// Walks a document, checking depth and strings.
#[derive(Clone, Copy)]
struct Check {
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON document")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<(), E> {
        no_nul(v, "a string").map_err(E::custom)
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        deeper(self.depth).map_err(de::Error::custom)?;
        let inner = Check {
            depth: self.depth + 1,
        };
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        deeper(self.depth).map_err(de::Error::custom)?;
        let inner = Check {
            depth: self.depth + 1,
        };
        while map.next_key_seed(inner)?.is_some() {
            map.next_value_seed(inner)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[derive(serde::Serialize)]
    struct Reading {
        value: f64,
        label: String,
    }

    #[test]
    fn finite_values_serialize_as_serde_json_does() {
        let reading = Reading {
            value: 1.5,
            label: "é \"x\"".into(),
        };
        assert_eq!(
            to_vec(&reading).unwrap(),
            serde_json::to_vec(&reading).unwrap()
        );
        let nested = vec![BTreeMap::from([("a", Some((1, -2.0)))])];
        assert_eq!(
            to_vec(&nested).unwrap(),
            serde_json::to_vec(&nested).unwrap()
        );
    }

    #[test]
    fn non_finite_floats_nul_and_deep_nesting_are_refused() {
        for value in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let error = to_vec(&Reading {
                value,
                label: String::new(),
            })
            .unwrap_err();
            assert!(error.to_string().contains("JSON cannot hold"), "{error}");
        }
        assert!(to_vec(&"a\0b").is_err());
        assert!(to_vec(&BTreeMap::from([("k\0", 1)])).is_err());
        let mut deep = serde_json::json!(1);
        for _ in 0..MAX_DEPTH {
            deep = serde_json::json!([deep]);
        }
        assert!(to_vec(&deep).is_ok(), "{MAX_DEPTH} levels are fine");
        let deeper = serde_json::json!([deep]);
        assert!(to_vec(&deeper).is_err());
        assert!(check(&serde_json::to_vec(&deeper).unwrap()).is_err());
        assert!(check(&serde_json::to_vec(&deep).unwrap()).is_ok());
    }

    #[test]
    fn check_takes_one_document_without_nul() {
        assert!(check(br#"{"a":[1,2,{"b":"c"}],"d":null}"#).is_ok());
        assert!(check(b"  42 ").is_ok());
        for bad in [
            &b""[..],
            b"{",
            b"{} {}",
            b"nope",
            br#"{"a":"\u0000"}"#,
            br#"{"\u0000":1}"#,
            br#""\ud800""#,
            b"\xff",
        ] {
            assert!(check(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
