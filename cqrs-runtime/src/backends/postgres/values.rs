//! [`SqlValue`] as a PostgreSQL parameter and column value.

use std::error::Error;

use bytes::BytesMut;
use tokio_postgres::types::{Format, FromSql, IsNull, ToSql, Type, to_sql_checked};

use crate::store::{SqlError, SqlValue};

type BoxError = Box<dyn Error + Sync + Send>;

fn is_text(ty: &Type) -> bool {
    [
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
    ]
    .contains(ty)
}

fn is_json(ty: &Type) -> bool {
    *ty == Type::JSON || *ty == Type::JSONB
}

fn is_int(ty: &Type) -> bool {
    [Type::INT2, Type::INT4, Type::INT8].contains(ty)
}

fn is_float(ty: &Type) -> bool {
    *ty == Type::FLOAT4 || *ty == Type::FLOAT8
}

/// Whether `ty` has a [`SqlValue`] form when read ([`SqlValue`]'s `FromSql`).
pub(super) fn readable(ty: &Type) -> bool {
    is_text(ty)
        || is_json(ty)
        || is_int(ty)
        || is_float(ty)
        || [Type::BOOL, Type::BYTEA, Type::OID].contains(ty)
}

fn mismatch(value: &SqlValue, ty: &Type) -> BoxError {
    Box::new(SqlError::Value {
        value: value.to_string(),
        column_type: ty.name().to_owned(),
    })
}

fn put_json(text: &[u8], ty: &Type, out: &mut BytesMut) {
    if *ty == Type::JSONB {
        // jsonb's binary format: a version byte, then the text.
        out.extend_from_slice(&[1]);
    }
    out.extend_from_slice(text);
}

impl SqlValue {
    /// Whether this value is sent in binary to a parameter of type `ty` (else in text format,
    /// parsed by the server).
    fn binary_for(&self, ty: &Type) -> bool {
        match self {
            Self::Null | Self::Bytes(_) => true,
            Self::Int(_) => is_int(ty) || is_float(ty),
            Self::Float(_) => is_float(ty),
            Self::Text(_) => is_text(ty) || is_json(ty),
            Self::Json(_) => is_json(ty) || is_text(ty),
            Self::Bool(_) => *ty == Type::BOOL,
        }
    }
}

/// Binds to the type PostgreSQL inferred for the placeholder: integers narrow to `smallint` and
/// `integer` (range-checked) or widen to floats; other target types (`numeric`, `uuid`,
/// `timestamptz`, `date`, ...) receive the value in text format and the server parses it.
impl ToSql for SqlValue {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        if !self.binary_for(ty) {
            let text = match self {
                Self::Int(v) => v.to_string(),
                Self::Float(v) => v.to_string(),
                Self::Text(v) => v.clone(),
                Self::Json(v) => v.to_string(),
                Self::Bool(v) => v.to_string(),
                Self::Null | Self::Bytes(_) => return Err(mismatch(self, ty)),
            };
            out.extend_from_slice(text.as_bytes());
            return Ok(IsNull::No);
        }
        match self {
            Self::Null => return Ok(IsNull::Yes),
            Self::Int(v) if *ty == Type::INT8 => return v.to_sql(ty, out),
            Self::Int(v) if *ty == Type::INT4 => return i32::try_from(*v)?.to_sql(ty, out),
            Self::Int(v) if *ty == Type::INT2 => return i16::try_from(*v)?.to_sql(ty, out),
            Self::Int(v) if *ty == Type::FLOAT8 => return (*v as f64).to_sql(ty, out),
            Self::Int(v) if *ty == Type::FLOAT4 => return (*v as f32).to_sql(ty, out),
            Self::Float(v) if *ty == Type::FLOAT8 => return v.to_sql(ty, out),
            Self::Float(v) if *ty == Type::FLOAT4 => return (*v as f32).to_sql(ty, out),
            Self::Text(v) if is_json(ty) => put_json(v.as_bytes(), ty, out),
            Self::Text(v) => out.extend_from_slice(v.as_bytes()),
            Self::Bytes(v) if *ty == Type::BYTEA => out.extend_from_slice(v),
            Self::Json(v) => put_json(v.to_string().as_bytes(), ty, out),
            Self::Bool(v) => out.extend_from_slice(&[u8::from(*v)]),
            _ => return Err(mismatch(self, ty)),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    fn encode_format(&self, ty: &Type) -> Format {
        if self.binary_for(ty) {
            Format::Binary
        } else {
            Format::Text
        }
    }

    to_sql_checked!();
}

/// Reads integers, floats, booleans, text, `bytea` and `json`/`jsonb` columns; `NULL` is
/// [`SqlValue::Null`]. Cast other types in the query (`col::text`).
impl<'a> FromSql<'a> for SqlValue {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(if *ty == Type::INT2 {
            Self::Int(i16::from_sql(ty, raw)?.into())
        } else if *ty == Type::INT4 {
            Self::Int(i32::from_sql(ty, raw)?.into())
        } else if *ty == Type::INT8 {
            Self::Int(i64::from_sql(ty, raw)?)
        } else if *ty == Type::OID {
            Self::Int(u32::from_sql(ty, raw)?.into())
        } else if *ty == Type::FLOAT4 {
            Self::Float(f32::from_sql(ty, raw)?.into())
        } else if *ty == Type::FLOAT8 {
            Self::Float(f64::from_sql(ty, raw)?)
        } else if *ty == Type::BOOL {
            Self::Bool(bool::from_sql(ty, raw)?)
        } else if *ty == Type::BYTEA {
            Self::Bytes(raw.to_vec())
        } else if *ty == Type::JSONB {
            let text = raw.strip_prefix(&[1]).ok_or("unsupported jsonb version")?;
            Self::Json(serde_json::from_slice(text)?)
        } else if *ty == Type::JSON {
            Self::Json(serde_json::from_slice(raw)?)
        } else if is_text(ty) {
            Self::Text(std::str::from_utf8(raw)?.to_owned())
        } else {
            return Err(Box::new(SqlError::ColumnType {
                column: "?".to_owned(),
                column_type: ty.name().to_owned(),
            }));
        })
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(Self::Null)
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}
