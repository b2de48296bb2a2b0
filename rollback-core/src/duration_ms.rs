//! Durations in JSON as whole milliseconds (`"duration_ms": 1520`-style numbers), readable
//! by any tool, instead of serde's `{"secs": 1, "nanos": 520000000}`. Reading also takes the
//! old `{secs, nanos}` form, so journals written before this change still resume.
//!
//! Reading also takes a human form, as a config file would write it: `"30s"`, `"5m"`,
//! `"1h 30m"`, `"250ms"` ([humantime](https://docs.rs/humantime)'s syntax).
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
//! let human: Step = serde_json::from_str(r#"{"took":"1m 30s"}"#).unwrap();
//! assert_eq!(human.took, Duration::from_secs(90));
//! ```

use serde::{Deserialize, Deserializer, Serializer};
use std::time::Duration;

/// Writes `d` as whole milliseconds (rounded down; sub-millisecond durations are 0).
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads milliseconds (an integer or a float), a human form (`"30s"`), or the legacy
/// `{secs, nanos}` form.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    Millis::deserialize(d)?
        .into_duration()
        .map_err(serde::de::Error::custom)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Millis {
    Whole(u64),
    Fraction(f64),
    Human(String),
    Legacy { secs: u64, nanos: u32 },
}

impl Millis {
    fn into_duration(self) -> Result<Duration, String> {
        match self {
            Millis::Whole(ms) => Ok(Duration::from_millis(ms)),
            Millis::Fraction(ms) if ms.is_finite() && ms >= 0.0 => Ok(Duration::from_secs_f64(ms / 1000.0)),
            Millis::Fraction(ms) => Err(format!(
                "{ms} is not a duration: give milliseconds >= 0 or e.g. \"30s\""
            )),
            Millis::Human(text) => humantime::parse_duration(&text).map_err(|e| {
                format!("`{text}` is not a duration ({e}): write e.g. \"30s\", \"5m\", \"1h 30m\", \"250ms\"")
            }),
            Millis::Legacy { secs, nanos } => Ok(Duration::new(secs, nanos)),
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
        Option::<Millis>::deserialize(d)?
            .map(Millis::into_duration)
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}
