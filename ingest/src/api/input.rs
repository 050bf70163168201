//! Request parsing that names every bad field.
//!
//! Bodies are read as JSON values and checked field by field ([`Obj`]),
//! query strings as key/value pairs ([`Params`]); each collects every
//! problem before failing, so one 4xx lists them all. Strings are limited
//! in length and may not hold control characters (a note may hold line
//! breaks and tabs), which also keeps NUL out of PostgreSQL.

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde_json::{Map, Value};

use super::error::ApiError;
use parkwatch_incidents::blobs::is_sha256;
use parkwatch_incidents::model::LonLat;
use parkwatch_incidents::service::FieldError;

/// Largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 256 * 1024;

/// A JSON request body, parsed but not yet checked.
#[derive(Debug, Clone)]
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await?;
        if bytes.len() > MAX_JSON_BYTES {
            return Err(too_large(MAX_JSON_BYTES));
        }
        serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
            ApiError::bad_request(vec![FieldError::new(
                "body",
                format!("not valid JSON: {e}"),
            )])
        })
    }
}

/// Reads a whole body, mapping axum's rejections to [`ApiError`].
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                r.body_text(),
            )
        } else {
            ApiError::bad_request(vec![FieldError::new("body", r.body_text())])
        }
    })
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("body larger than {limit} bytes"),
    )
}

/// A numeric path id (`/incidents/{id}`).
#[derive(Debug, Clone, Copy)]
pub struct PathId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::bad_request(vec![FieldError::new("id", e.body_text())]))?;
        raw.parse::<i64>().map(PathId).map_err(|_| {
            ApiError::bad_request(vec![FieldError::new(
                "id",
                format!(
                    "{:?} is not an incident id (an integer)",
                    truncate(&raw, 40)
                ),
            )])
        })
    }
}

/// A path segment as text (`/blobs/{sha256}`).
#[derive(Debug, Clone)]
pub struct PathText(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathText {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(s)| PathText(s))
            .map_err(|e| ApiError::bad_request(vec![FieldError::new("path", e.body_text())]))
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Checks a string: length and characters.
fn check_text(s: &str, max_chars: usize, multiline: bool) -> Result<(), String> {
    let n = s.chars().count();
    if n > max_chars {
        return Err(format!("longer than {max_chars} characters ({n})"));
    }
    if s.chars()
        .any(|c| c.is_control() && !(multiline && matches!(c, '\n' | '\r' | '\t')))
    {
        return Err("contains control characters".into());
    }
    Ok(())
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON object being checked field by field.
#[derive(Debug)]
pub struct Obj<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
    /// Every problem so far.
    pub errors: Vec<FieldError>,
}

impl<'a> Obj<'a> {
    /// Starts checking `v`, which must be an object with only `allowed` keys.
    pub fn new(v: &'a Value, allowed: &[&str]) -> Result<Self, ApiError> {
        let Value::Object(map) = v else {
            return Err(ApiError::invalid(vec![FieldError::new(
                "body",
                format!("must be a JSON object, not {}", type_name(v)),
            )]));
        };
        let mut o = Obj {
            map,
            prefix: String::new(),
            errors: Vec::new(),
        };
        for k in map.keys() {
            if !allowed.contains(&k.as_str()) {
                o.errors.push(FieldError::new(
                    truncate(k, 64),
                    format!("unknown field (expected one of: {})", allowed.join(", ")),
                ));
            }
        }
        Ok(o)
    }

    fn name(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn fail(&mut self, key: &str, msg: impl Into<String>) {
        let f = self.name(key);
        self.errors.push(FieldError::new(f, msg));
    }

    /// An optional string.
    pub fn opt_str(&mut self, key: &str, max_chars: usize, multiline: bool) -> Option<String> {
        match self.get(key)? {
            Value::String(s) => match check_text(s, max_chars, multiline) {
                Ok(()) => Some(s.clone()),
                Err(m) => {
                    self.fail(key, m);
                    None
                }
            },
            other => {
                let t = type_name(other);
                self.fail(key, format!("must be a string, not {t}"));
                None
            }
        }
    }

    /// A required non-empty string.
    pub fn req_str(&mut self, key: &str, max_chars: usize) -> Option<String> {
        if self.get(key).is_none() {
            self.fail(key, "required");
            return None;
        }
        let s = self.opt_str(key, max_chars, false)?;
        if s.trim().is_empty() {
            self.fail(key, "must not be empty");
            return None;
        }
        Some(s)
    }

    /// A required enum value by its wire name.
    pub fn req_enum<T: FromStr<Err = String>>(&mut self, key: &str) -> Option<T> {
        if self.get(key).is_none() {
            self.fail(key, "required");
            return None;
        }
        self.opt_enum(key)
    }

    /// An optional enum value by its wire name.
    pub fn opt_enum<T: FromStr<Err = String>>(&mut self, key: &str) -> Option<T> {
        let s = self.opt_str(key, 64, false)?;
        match s.parse() {
            Ok(v) => Some(v),
            Err(m) => {
                self.fail(key, m);
                None
            }
        }
    }

    /// An optional integer in `min..=max`.
    pub fn opt_i64(&mut self, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.get(key)?;
        match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.fail(key, format!("{n} is outside {min}..={max}"));
                None
            }
            None => {
                let t = type_name(v);
                self.fail(key, format!("must be an integer, not {t}"));
                None
            }
        }
    }

    /// An optional list of sha256 strings (at most `max`).
    pub fn sha_list(&mut self, key: &str, max: usize) -> Vec<String> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        let Value::Array(items) = v else {
            let t = type_name(v);
            self.fail(key, format!("must be an array of sha256 strings, not {t}"));
            return Vec::new();
        };
        if items.len() > max {
            self.fail(key, format!("at most {max} items ({})", items.len()));
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.as_str() {
                Some(s) if is_sha256(s) => out.push(s.to_owned()),
                _ => self.fail(
                    &format!("{key}[{i}]"),
                    "must be a sha256 (64 lowercase hex digits) from POST /api/v1/blobs",
                ),
            }
        }
        out
    }

    /// A required `{lon, lat}` object.
    pub fn location(&mut self, key: &str) -> Option<LonLat> {
        let Some(v) = self.get(key) else {
            self.fail(key, "required: {\"lon\": .., \"lat\": ..} (WGS 84)");
            return None;
        };
        let mut inner = match Obj::new(v, &["lon", "lat"]) {
            Ok(o) => o,
            Err(_) => {
                let t = type_name(v);
                self.fail(key, format!("must be an object {{lon, lat}}, not {t}"));
                return None;
            }
        };
        inner.prefix = format!("{}{key}.", self.prefix);
        for e in inner.errors.iter_mut() {
            e.field = format!("{}{}", inner.prefix, e.field);
        }
        let lon = inner.coord("lon", 180.0);
        let lat = inner.coord("lat", 90.0);
        self.errors.append(&mut inner.errors);
        Some(LonLat {
            lon: lon?,
            lat: lat?,
        })
    }

    fn coord(&mut self, key: &str, limit: f64) -> Option<f64> {
        let Some(v) = self.get(key) else {
            self.fail(key, "required");
            return None;
        };
        match v.as_f64() {
            Some(x) if x.is_finite() && x.abs() <= limit => Some(x),
            Some(_) => {
                self.fail(key, format!("must be within -{limit}..={limit}"));
                None
            }
            None => {
                let t = type_name(v);
                self.fail(key, format!("must be a number, not {t}"));
                None
            }
        }
    }

    /// Fails with every problem collected, if any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid(self.errors))
        }
    }
}

/// Query parameters being checked.
#[derive(Debug)]
pub struct Params {
    pairs: Vec<(String, String)>,
    /// Every problem so far.
    pub errors: Vec<FieldError>,
}

impl Params {
    /// Parses a raw query string (`None`: no query).
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Params {
            pairs,
            errors: Vec::new(),
        }
    }

    fn raw(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    fn fail(&mut self, key: &str, msg: impl Into<String>) {
        self.errors.push(FieldError::new(key, msg));
    }

    /// An optional text parameter (printable, at most 200 characters).
    pub fn text(&mut self, key: &str) -> Option<String> {
        let v = self.raw(key)?.to_owned();
        match check_text(&v, 200, false) {
            Ok(()) => Some(v),
            Err(m) => {
                self.fail(key, m);
                None
            }
        }
    }

    /// An optional integer in `min..=max`.
    pub fn int(&mut self, key: &str, min: i64, max: i64) -> Option<i64> {
        let v = self.raw(key)?.to_owned();
        match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            Ok(n) => {
                self.fail(key, format!("{n} is outside {min}..={max}"));
                None
            }
            Err(_) => {
                self.fail(key, format!("{:?} is not an integer", truncate(&v, 40)));
                None
            }
        }
    }

    /// An optional boolean (`true`/`false`/`1`/`0`).
    pub fn bool(&mut self, key: &str) -> Option<bool> {
        let v = self.raw(key)?.to_owned();
        match v.as_str() {
            "true" | "1" => Some(true),
            "false" | "0" => Some(false),
            _ => {
                self.fail(key, format!("{:?} is not true or false", truncate(&v, 40)));
                None
            }
        }
    }

    /// A comma-separated list of enum values.
    pub fn enums<T: FromStr<Err = String>>(&mut self, key: &str) -> Vec<T> {
        let Some(v) = self.raw(key).map(str::to_owned) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.parse() {
                Ok(x) => out.push(x),
                Err(m) => self.fail(key, m),
            }
        }
        out
    }

    /// A grid code (digits only, so it can be a prefix).
    pub fn grid(&mut self, key: &str) -> Option<String> {
        let v = self.text(key)?;
        if v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit()) {
            Some(v)
        } else {
            self.fail(key, "a grid code is 1..=20 digits");
            None
        }
    }

    /// Fails with every problem collected, if any.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::bad_request(self.errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_report_every_bad_field() {
        let v: Value = serde_json::json!({
            "source": "fax",
            "location": {"lon": 500, "lat": "x"},
            "photos": ["abc"],
            "colour": "red",
            "title": "line\u{0}break"
        });
        let mut o = Obj::new(&v, &["source", "item", "location", "photos", "title"]).unwrap();
        let _ = o.req_enum::<parkwatch_incidents::Source>("source");
        let _ = o.req_str("item", 8);
        let _ = o.location("location");
        let _ = o.sha_list("photos", 5);
        let _ = o.opt_str("title", 200, false);
        let mut fields: Vec<String> = o.errors.iter().map(|e| e.field.clone()).collect();
        fields.sort();
        assert_eq!(
            fields,
            [
                "colour",
                "item",
                "location.lat",
                "location.lon",
                "photos[0]",
                "source",
                "title"
            ]
        );
    }

    #[test]
    fn params_parse_lists_ints_and_bools() {
        let mut p = Params::parse(Some("status=filed,closed&limit=abc&overdue=yes&grid=12a"));
        let s: Vec<parkwatch_incidents::Status> = p.enums("status");
        assert_eq!(s.len(), 2);
        assert_eq!(p.int("limit", 1, 500), None);
        assert_eq!(p.bool("overdue"), None);
        assert_eq!(p.grid("grid"), None);
        let fields: Vec<&str> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["limit", "overdue", "grid"]);
    }
}
