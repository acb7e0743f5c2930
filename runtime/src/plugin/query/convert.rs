//! Conversions between the read API's JSON and query-string values and
//! the component model's values: parameters by their declared WIT type,
//! results to JSON.

use serde_json::{Map, Value as Json};
use wasmtime::component::{Type, Val};

use super::QueryError;

/// A WIT type as WIT spells it, for error messages.
pub(super) fn describe(t: &Type) -> String {
    match t {
        Type::List(l) => format!("list<{}>", describe(&l.ty())),
        Type::Option(o) => format!("option<{}>", describe(&o.ty())),
        Type::Result(r) => format!(
            "result<{}, {}>",
            r.ok().map_or("_".into(), |t| describe(&t)),
            r.err().map_or("_".into(), |t| describe(&t))
        ),
        Type::Record(r) => format!(
            "record {{ {} }}",
            r.fields()
                .map(|f| format!("{}: {}", f.name, describe(&f.ty)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Tuple(t) => format!(
            "tuple<{}>",
            t.types()
                .map(|t| describe(&t))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Type::Enum(e) => format!("enum {{ {} }}", e.names().collect::<Vec<_>>().join(", ")),
        Type::Flags(f) => format!("flags {{ {} }}", f.names().collect::<Vec<_>>().join(", ")),
        Type::Variant(v) => format!(
            "variant {{ {} }}",
            v.cases().map(|c| c.name).collect::<Vec<_>>().join(", ")
        ),
        Type::Bool => "bool".into(),
        Type::S8 => "s8".into(),
        Type::U8 => "u8".into(),
        Type::S16 => "s16".into(),
        Type::U16 => "u16".into(),
        Type::S32 => "s32".into(),
        Type::U32 => "u32".into(),
        Type::S64 => "s64".into(),
        Type::U64 => "u64".into(),
        Type::Float32 => "f32".into(),
        Type::Float64 => "f64".into(),
        Type::Char => "char".into(),
        Type::String => "string".into(),
        Type::Map(_) => "map".into(),
        Type::Own(_) | Type::Borrow(_) => "resource".into(),
        Type::Future(_) => "future".into(),
        Type::Stream(_) => "stream".into(),
        Type::ErrorContext => "error-context".into(),
        Type::FixedLengthList(_) => "fixed-length list".into(),
    }
}

/// The value of parameter `name` of type `ty` from its query-string
/// values (none, one, or several for a list).
pub(super) fn param_value(name: &str, ty: &Type, values: &[&str]) -> Result<Val, QueryError> {
    let err = |problem: String| QueryError::Param {
        name: name.to_owned(),
        problem,
    };
    match ty {
        Type::Option(o) => match values {
            [] => Ok(Val::Option(None)),
            _ => Ok(Val::Option(Some(Box::new(param_value(
                name,
                &o.ty(),
                values,
            )?)))),
        },
        Type::List(l) => {
            let items: Vec<&str> = match values {
                [one] if one.trim_start().starts_with('[') => {
                    let json: Json = serde_json::from_str(one)
                        .map_err(|e| err(format!("not a JSON array: {e}")))?;
                    return from_json(ty, &json).map_err(err);
                }
                [one] => one.split(',').filter(|s| !s.is_empty()).collect(),
                many => many.to_vec(),
            };
            items
                .into_iter()
                .map(|v| scalar(&l.ty(), v).map_err(&err))
                .collect::<Result<Vec<_>, _>>()
                .map(Val::List)
        }
        _ => match values {
            [] => Err(err(format!("is required ({})", describe(ty)))),
            [one] => scalar(ty, one).map_err(err),
            _ => Err(err("is given more than once".into())),
        },
    }
}

/// One query-string value as `ty`: scalars parse directly, anything else
/// is read as JSON.
fn scalar(ty: &Type, v: &str) -> Result<Val, String> {
    let bad = |what: &str| format!("`{v}` is not {what}");
    Ok(match ty {
        Type::String => Val::String(v.to_owned()),
        Type::Bool => match v {
            "true" | "1" => Val::Bool(true),
            "false" | "0" => Val::Bool(false),
            _ => return Err(bad("a boolean")),
        },
        Type::Char => {
            let mut c = v.chars();
            match (c.next(), c.next()) {
                (Some(ch), None) => Val::Char(ch),
                _ => return Err(bad("one character")),
            }
        }
        Type::Enum(e) => {
            if e.names().any(|n| n == v) {
                Val::Enum(v.to_owned())
            } else {
                return Err(format!(
                    "`{v}` is not one of {}",
                    e.names().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        Type::S8
        | Type::U8
        | Type::S16
        | Type::U16
        | Type::S32
        | Type::U32
        | Type::S64
        | Type::U64
        | Type::Float32
        | Type::Float64 => {
            let json: Json = serde_json::from_str(v).map_err(|_| bad("a number"))?;
            from_json(ty, &json)?
        }
        other => {
            let json: Json = serde_json::from_str(v)
                .map_err(|e| format!("expected JSON for {}: {e}", describe(other)))?;
            from_json(other, &json)?
        }
    })
}

/// A JSON value as `ty`.
fn from_json(ty: &Type, j: &Json) -> Result<Val, String> {
    let mismatch = || format!("{j} does not fit {}", describe(ty));
    let int = |lo: i128, hi: i128| -> Result<i128, String> {
        let n = j
            .as_i64()
            .map(i128::from)
            .or_else(|| j.as_u64().map(i128::from))
            .ok_or_else(mismatch)?;
        if (lo..=hi).contains(&n) {
            Ok(n)
        } else {
            Err(format!("{n} is out of range for {}", describe(ty)))
        }
    };
    Ok(match ty {
        Type::Bool => Val::Bool(j.as_bool().ok_or_else(mismatch)?),
        Type::S8 => Val::S8(int(i8::MIN.into(), i8::MAX.into())? as i8),
        Type::U8 => Val::U8(int(0, u8::MAX.into())? as u8),
        Type::S16 => Val::S16(int(i16::MIN.into(), i16::MAX.into())? as i16),
        Type::U16 => Val::U16(int(0, u16::MAX.into())? as u16),
        Type::S32 => Val::S32(int(i32::MIN.into(), i32::MAX.into())? as i32),
        Type::U32 => Val::U32(int(0, u32::MAX.into())? as u32),
        Type::S64 => Val::S64(int(i64::MIN.into(), i64::MAX.into())? as i64),
        Type::U64 => Val::U64(int(0, u64::MAX.into())? as u64),
        Type::Float32 => Val::Float32(j.as_f64().ok_or_else(mismatch)? as f32),
        Type::Float64 => Val::Float64(j.as_f64().ok_or_else(mismatch)?),
        Type::String => Val::String(j.as_str().ok_or_else(mismatch)?.to_owned()),
        Type::Char | Type::Enum(_) => scalar(ty, j.as_str().ok_or_else(mismatch)?)?,
        Type::List(l) => Val::List(
            j.as_array()
                .ok_or_else(mismatch)?
                .iter()
                .map(|x| from_json(&l.ty(), x))
                .collect::<Result<_, _>>()?,
        ),
        Type::Option(o) => match j {
            Json::Null => Val::Option(None),
            other => Val::Option(Some(Box::new(from_json(&o.ty(), other)?))),
        },
        Type::Record(r) => {
            let obj = j.as_object().ok_or_else(mismatch)?;
            let mut fields = Vec::new();
            for f in r.fields() {
                let v = match obj.get(f.name) {
                    Some(v) => from_json(&f.ty, v)?,
                    None if matches!(f.ty, Type::Option(_)) => Val::Option(None),
                    None => return Err(format!("field `{}` is missing", f.name)),
                };
                fields.push((f.name.to_owned(), v));
            }
            Val::Record(fields)
        }
        Type::Tuple(t) => {
            let items = j.as_array().ok_or_else(mismatch)?;
            if items.len() != t.types().len() {
                return Err(mismatch());
            }
            Val::Tuple(
                t.types()
                    .zip(items)
                    .map(|(ty, x)| from_json(&ty, x))
                    .collect::<Result<_, _>>()?,
            )
        }
        Type::Flags(f) => {
            let names = j.as_array().ok_or_else(mismatch)?;
            let mut out = Vec::new();
            for n in names {
                let n = n.as_str().ok_or_else(mismatch)?;
                if !f.names().any(|x| x == n) {
                    return Err(format!("`{n}` is not a flag of {}", describe(ty)));
                }
                out.push(n.to_owned());
            }
            Val::Flags(out)
        }
        other => {
            return Err(format!(
                "parameters of type {} are not supported",
                describe(other)
            ));
        }
    })
}

/// A component value as JSON: records become objects (field names as
/// declared), lists and tuples arrays, options `null` or the value,
/// results `{"ok": …}` / `{"err": …}`, variants `{"case": payload}` (or
/// the case name alone), enums their name, flags a list of names.
pub fn to_json(v: &Val) -> Json {
    match v {
        Val::Bool(b) => Json::Bool(*b),
        Val::S8(n) => (*n).into(),
        Val::U8(n) => (*n).into(),
        Val::S16(n) => (*n).into(),
        Val::U16(n) => (*n).into(),
        Val::S32(n) => (*n).into(),
        Val::U32(n) => (*n).into(),
        Val::S64(n) => (*n).into(),
        Val::U64(n) => (*n).into(),
        Val::Float32(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Json::Null, Json::Number)
        }
        Val::Float64(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Val::Char(c) => Json::String(c.to_string()),
        Val::String(s) => Json::String(s.clone()),
        Val::List(items) | Val::Tuple(items) | Val::FixedLengthList(items) => {
            Json::Array(items.iter().map(to_json).collect())
        }
        Val::Map(pairs) => Json::Array(
            pairs
                .iter()
                .map(|(k, v)| Json::Array(vec![to_json(k), to_json(v)]))
                .collect(),
        ),
        Val::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Val::Variant(case, payload) => match payload {
            None => Json::String(case.clone()),
            Some(p) => Json::Object(Map::from_iter([(case.clone(), to_json(p))])),
        },
        Val::Enum(name) => Json::String(name.clone()),
        Val::Option(o) => o.as_deref().map_or(Json::Null, to_json),
        Val::Result(r) => match r {
            Ok(v) => Json::Object(Map::from_iter([(
                "ok".to_owned(),
                v.as_deref().map_or(Json::Null, to_json),
            )])),
            Err(e) => Json::Object(Map::from_iter([(
                "err".to_owned(),
                e.as_deref().map_or(Json::Null, to_json),
            )])),
        },
        Val::Flags(names) => Json::Array(names.iter().cloned().map(Json::String).collect()),
        Val::Resource(_) | Val::Future(_) | Val::Stream(_) | Val::ErrorContext(_) => Json::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_json() {
        let v = Val::Record(vec![
            ("id".into(), Val::String("a".into())),
            ("price".into(), Val::Option(None)),
            ("n".into(), Val::U32(3)),
            ("tags".into(), Val::List(vec![Val::Enum("x".into())])),
        ]);
        assert_eq!(
            to_json(&v),
            serde_json::json!({"id": "a", "price": null, "n": 3, "tags": ["x"]})
        );
        assert_eq!(
            to_json(&Val::Result(Err(Some(Box::new(Val::String("no".into())))))),
            serde_json::json!({"err": "no"})
        );
    }

    #[test]
    fn query_string_values_parse_by_type() {
        assert!(matches!(scalar(&Type::U32, "7"), Ok(Val::U32(7))));
        assert!(
            scalar(&Type::U8, "300")
                .unwrap_err()
                .contains("out of range")
        );
        assert!(matches!(scalar(&Type::Bool, "true"), Ok(Val::Bool(true))));
        assert!(
            scalar(&Type::S64, "x")
                .unwrap_err()
                .contains("not a number")
        );
        assert!(matches!(scalar(&Type::String, "x,y"), Ok(Val::String(s)) if s == "x,y"));
    }
}
