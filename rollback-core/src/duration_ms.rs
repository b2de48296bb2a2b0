//! Durations in JSON as whole milliseconds (`"duration_ms": 1520`-style numbers), readable
//! by any tool, instead of serde's `{"secs": 1, "nanos": 520000000}`. Reading also takes the
//! old `{secs, nanos}` form, so journals written before this change still resume.
//!
//! Use it on a field with `#[serde(with = "rollback_core::duration_ms")]`, or
//! `rollback_core::duration_ms::option` for an `Option<Duration>` (with `#[serde(default)]`).
//!
//! ```
//! use std::time::Duration;
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Step { #[serde(with = "rollback_core::duration_ms")] took: Duration }
//! let json = serde_json::to_string(&Step { took: Duration::from_millis(1520) }).unwrap();
//! assert_eq!(json, r#"{"took":1520}"#);
//! let old: Step = serde_json::from_str(r#"{"took":{"secs":1,"nanos":520000000}}"#).unwrap();
//! assert_eq!(old.took, Duration::from_millis(1520));
//! ```

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Writes `d` as whole milliseconds (rounded down; sub-millisecond durations are 0).
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads milliseconds (an integer or a float), or the legacy `{secs, nanos}` form.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Ok(Millis::deserialize(d)?.into())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Millis {
    Whole(u64),
    Fraction(f64),
    Legacy { secs: u64, nanos: u32 },
}

impl From<Millis> for Duration {
    fn from(m: Millis) -> Self {
        match m {
            Millis::Whole(ms) => Duration::from_millis(ms),
            Millis::Fraction(ms) => Duration::from_secs_f64(ms.max(0.0) / 1000.0),
            Millis::Legacy { secs, nanos } => Duration::new(secs, nanos),
        }
    }
}

/// The same for `Option<Duration>`: `null` when absent.
pub mod option {
    use super::Millis;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes milliseconds, or `null`.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Reads milliseconds, the legacy form, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Millis>::deserialize(d)?.map(Into::into))
    }
}
