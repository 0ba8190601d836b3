//! Druid's simple granularities (`DAY`, `FIFTEEN_MINUTE`, ...), as config values: segment and
//! query granularity of a datasource. See
//! <https://druid.apache.org/docs/latest/querying/granularities>.

use serde::{Deserialize, Serialize};

/// A Druid simple granularity, written as Druid writes it (`DAY`, `FIFTEEN_MINUTE`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum Granularity {
    None,
    Second,
    Minute,
    FiveMinute,
    TenMinute,
    FifteenMinute,
    ThirtyMinute,
    Hour,
    SixHour,
    EightHour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
    All,
}

/// Every granularity with its Druid name and ISO 8601 period (none for `NONE` and `ALL`).
const GRANULARITIES: [(Granularity, &str, Option<&str>); 16] = [
    (Granularity::None, "NONE", None),
    (Granularity::Second, "SECOND", Some("PT1S")),
    (Granularity::Minute, "MINUTE", Some("PT1M")),
    (Granularity::FiveMinute, "FIVE_MINUTE", Some("PT5M")),
    (Granularity::TenMinute, "TEN_MINUTE", Some("PT10M")),
    (Granularity::FifteenMinute, "FIFTEEN_MINUTE", Some("PT15M")),
    (Granularity::ThirtyMinute, "THIRTY_MINUTE", Some("PT30M")),
    (Granularity::Hour, "HOUR", Some("PT1H")),
    (Granularity::SixHour, "SIX_HOUR", Some("PT6H")),
    (Granularity::EightHour, "EIGHT_HOUR", Some("PT8H")),
    (Granularity::Day, "DAY", Some("P1D")),
    (Granularity::Week, "WEEK", Some("P1W")),
    (Granularity::Month, "MONTH", Some("P1M")),
    (Granularity::Quarter, "QUARTER", Some("P3M")),
    (Granularity::Year, "YEAR", Some("P1Y")),
    (Granularity::All, "ALL", None),
];

impl Granularity {
    /// Druid's name, e.g. `FIFTEEN_MINUTE`.
    pub fn name(self) -> &'static str {
        GRANULARITIES.iter().find(|g| g.0 == self).map_or("NONE", |g| g.1)
    }

    /// The ISO 8601 period of one bucket (`PT15M`), `None` for `NONE` and `ALL`.
    pub fn period(self) -> Option<&'static str> {
        GRANULARITIES.iter().find(|g| g.0 == self).and_then(|g| g.2)
    }
}

impl TryFrom<String> for Granularity {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        let upper = text.trim().to_ascii_uppercase();
        GRANULARITIES.iter().find(|g| g.1 == upper).map(|g| g.0).ok_or_else(|| {
            let names: Vec<&str> = GRANULARITIES.iter().map(|g| g.1).collect();
            format!("unknown granularity {text:?}; one of {}", names.join(", "))
        })
    }
}

impl From<Granularity> for String {
    fn from(g: Granularity) -> String {
        g.name().to_string()
    }
}
