//! Exact event times.
//!
//! Landing data carries times as epoch seconds (integer or fractional, as JSON numbers or CSV
//! text), Kafka timestamps as epoch milliseconds (or seconds in the seed files), or ISO-8601
//! strings. Every time becomes an exact count of microseconds since the epoch (UTC): decimal
//! text is scaled digit by digit, never through a binary float.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Microseconds in one second.
pub const MICROS_PER_SECOND: i64 = 1_000_000;

/// A Kafka timestamp below this is in seconds, at or above it in milliseconds (10^11 seconds
/// is the year 5138; 10^11 milliseconds is March 1973).
pub const KAFKA_SECONDS_LIMIT: i128 = 100_000_000_000;

/// Parses decimal text (`123`, `-4.5`, `1678451168.0`, `1.6784e9`) as the integer
/// `value * 10^scale`, rounding half away from zero past the last kept digit.
pub fn parse_decimal_scaled(text: &str, scale: u32) -> Option<i128> {
    Plain::of(text.as_bytes()).and_then(|p| p.scaled(scale)).or_else(|| general_decimal_scaled(text, scale))
}

/// A plain decimal: an optional `-`, digits with at most one `.` among them, no exponent, at
/// most 19 digits (so that they fit in `u64`: 19 nines are under `u64::MAX`). The common shape
/// of a time or a heart rate, read once ([`Plain::of`], or by the envelope scanner while it
/// checks the JSON number) and then scaled or converted without walking the text again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plain {
    /// Whether a `-` came first.
    pub negative: bool,
    /// All the digits, as one integer (`12.50` is 1250).
    pub digits: u64,
    /// How many of them follow the point.
    pub fraction: u32,
}

impl Plain {
    /// Most digits a plain decimal has.
    pub const MAX_DIGITS: usize = 19;

    /// The plain decimal `bytes` spells exactly (nothing before or after it), if it is one.
    pub fn of(bytes: &[u8]) -> Option<Plain> {
        let (negative, rest) = match bytes.split_first()? {
            (b'-', rest) => (true, rest),
            _ => (false, bytes),
        };
        let whole = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (fraction, after) = match rest.get(whole) {
            Some(b'.') => {
                let fraction = rest[whole + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
                (fraction, whole + 1 + fraction)
            }
            _ => (0, whole),
        };
        if after != rest.len() || whole + fraction == 0 || whole + fraction > Self::MAX_DIGITS {
            return None;
        }
        // At most 19 digits: no overflow.
        let digits = rest.iter().filter(|b| b.is_ascii_digit()).fold(0u64, |v, b| v * 10 + u64::from(b - b'0'));
        Some(Plain { negative, digits, fraction: fraction as u32 })
    }

    /// The value times `10^scale`, rounding half away from zero past the last kept digit;
    /// `None` when the shift is past the table (the general path scales it).
    pub fn scaled(self, scale: u32) -> Option<i128> {
        let shift = i64::from(scale) - i64::from(self.fraction);
        let magnitude = match usize::try_from(shift) {
            Ok(up) => i128::from(self.digits).checked_mul(i128::from(*POW10.get(up)?))?,
            Err(_) => {
                let divisor = *POW10.get(usize::try_from(-shift).ok()?)?;
                let (q, r) = (self.digits / divisor, self.digits % divisor);
                // `r < divisor <= 10^19`, so `2 r` fits in `u128`.
                i128::from(q) + i128::from(u128::from(r) * 2 >= u128::from(divisor))
            }
        };
        Some(if self.negative { -magnitude } else { magnitude })
    }

    /// The value as `serde_json` reads this text into an `f64` (bit for bit: the digits as an
    /// `f64` divided by the power of ten, then negated, as serde does without its
    /// `float_roundtrip` feature, which fitlake does not enable).
    pub fn to_f64(self) -> f64 {
        let f = self.digits as f64 / POW10_F64[self.fraction as usize];
        if self.negative {
            -f
        } else {
            f
        }
    }
}

/// Powers of ten that fit in `u64`: `POW10[n]` is `10^n`.
const POW10: [u64; 20] = {
    let mut table = [1u64; 20];
    let mut n = 1;
    while n < 20 {
        table[n] = table[n - 1] * 10;
        n += 1;
    }
    table
};

/// The same powers as `f64` literals, as `serde_json`'s own table has them (all exact).
const POW10_F64: [f64; Plain::MAX_DIGITS + 1] =
    [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19];

/// [`parse_decimal_scaled`] of any decimal text.
fn general_decimal_scaled(text: &str, scale: u32) -> Option<i128> {
    let text = text.trim();
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().ok()?),
        None => (text, 0),
    };
    let bytes = mantissa.as_bytes();
    let (negative, digits) = match bytes.first()? {
        b'-' => (true, &bytes[1..]),
        b'+' => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let (mut value, mut frac_len, mut significant, mut seen_dot, mut any_digit) = (0i128, 0i32, 0u32, false, false);
    for &b in digits {
        match b {
            b'0'..=b'9' => {
                any_digit = true;
                if value != 0 || b != b'0' {
                    significant += 1;
                    if significant > 36 {
                        return None;
                    }
                }
                value = value * 10 + i128::from(b - b'0');
                frac_len += i32::from(seen_dot);
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => return None,
        }
    }
    if !any_digit {
        return None;
    }
    let magnitude = shift_decimal(value, exponent + scale as i32 - frac_len)?;
    Some(if negative { -magnitude } else { magnitude })
}

/// `value * 10^shift` for a non-negative `value`, rounding half away from zero when `shift`
/// is negative.
fn shift_decimal(value: i128, shift: i32) -> Option<i128> {
    if shift >= 0 {
        return value.checked_mul(10i128.checked_pow(shift as u32)?);
    }
    let Some(divisor) = 10i128.checked_pow(shift.unsigned_abs()) else {
        return Some(0);
    };
    let (q, r) = (value / divisor, value % divisor);
    Some(q + i128::from(r * 2 >= divisor))
}

/// Epoch seconds as decimal text, exactly, in microseconds.
pub fn seconds_text_to_micros(text: &str) -> Option<i64> {
    parse_decimal_scaled(text, 6).and_then(|v| i64::try_from(v).ok())
}

/// An ISO-8601 date-time (with offset, or naive and taken as UTC) in epoch microseconds.
pub fn iso_to_micros(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
        return Some(dt.timestamp_micros());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"] {
        if let Ok(dt) = NaiveDateTime::parse_from_str(text, format) {
            return Some(dt.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|dt| dt.and_utc().timestamp_micros())
}

/// An event time given as text: epoch seconds (integer or fractional) or ISO-8601.
pub fn event_time_text_to_micros(text: &str) -> Option<i64> {
    event_time_text_to_micros_wide(text).and_then(|v| i64::try_from(v).ok())
}

/// [`event_time_text_to_micros`], wide: epoch seconds beyond `i64` microseconds are kept (to
/// be refused by a [`TimeWindow`] with the unit they look like).
pub fn event_time_text_to_micros_wide(text: &str) -> Option<i128> {
    parse_decimal_scaled(text, 6).or_else(|| iso_to_micros(text).map(i128::from))
}

/// [`event_time_json_to_micros`], wide (see [`event_time_text_to_micros_wide`]).
pub fn event_time_json_to_micros_wide(raw: &str) -> Option<i128> {
    // JSON's space is ASCII.
    let raw = raw.trim_ascii();
    match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) => event_time_text_to_micros_wide(inner),
        None => parse_decimal_scaled(raw, 6),
    }
}

/// An event time given as a raw JSON value: a number of epoch seconds, or a string holding
/// epoch seconds or an ISO-8601 date-time.
pub fn event_time_json_to_micros(raw: &str) -> Option<i64> {
    event_time_json_to_micros_wide(raw).and_then(|v| i64::try_from(v).ok())
}

/// A Kafka envelope timestamp as a raw JSON number: milliseconds, or seconds when below
/// [`KAFKA_SECONDS_LIMIT`] (the seed files), in epoch microseconds.
pub fn kafka_timestamp_to_micros(raw: &str) -> Option<i64> {
    // JSON's space is ASCII.
    let raw = raw.trim_ascii();
    if raw.starts_with('"') {
        return event_time_json_to_micros(raw);
    }
    kafka_micros_of(parse_decimal_scaled(raw, 6)?)
}

/// [`kafka_timestamp_to_micros`] of a JSON value's `text`, of which `plain` is [`Plain::of`] (a
/// number the scanner read: its digits are not read again).
pub(crate) fn kafka_number_to_micros(text: &str, plain: Option<Plain>) -> Option<i64> {
    match plain.and_then(|p| p.scaled(6)) {
        Some(as_seconds) => kafka_micros_of(as_seconds),
        None => kafka_timestamp_to_micros(text),
    }
}

/// A Kafka timestamp read as seconds scaled by 10^6: the microseconds it means.
fn kafka_micros_of(as_seconds: i128) -> Option<i64> {
    let micros = if as_seconds.abs() < KAFKA_SECONDS_LIMIT * 1_000_000 {
        as_seconds
    } else {
        // Milliseconds: the same digits scaled by 10^3 instead of 10^6.
        let ms = as_seconds.abs();
        let rounded = ms / 1000 + i128::from(ms % 1000 >= 500);
        if as_seconds < 0 {
            -rounded
        } else {
            rounded
        }
    };
    i64::try_from(micros).ok()
}

/// The plausible window of event times: a time outside it is a fault in the data (a value in
/// the wrong unit, a sentinel, a byte flip), quarantined with a reason before it reaches a
/// table, where it could break other engines' readers (Spark stops at the year 9999, Python's
/// `datetime` at 9999 too) or the statistics of a Delta file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    /// The earliest plausible time, epoch microseconds (inclusive).
    pub earliest_micros: i64,
    /// The latest plausible time, epoch microseconds (exclusive).
    pub latest_micros: i64,
}

impl Default for TimeWindow {
    /// 2000-01-01 (inclusive) to 2100-01-01 (exclusive), UTC.
    fn default() -> Self {
        TimeWindow {
            earliest_micros: 946_684_800 * MICROS_PER_SECOND,
            latest_micros: 4_102_444_800 * MICROS_PER_SECOND,
        }
    }
}

/// The unit a time was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Epoch seconds (landing event times; seed Kafka timestamps).
    Seconds,
    /// Epoch milliseconds (Kafka timestamps).
    Milliseconds,
}

impl TimeWindow {
    /// A window from `earliest` (inclusive) to `latest` (exclusive), midnight UTC.
    pub fn between(earliest: NaiveDate, latest: NaiveDate) -> Option<TimeWindow> {
        let micros = |d: NaiveDate| d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros());
        let (earliest_micros, latest_micros) = (micros(earliest)?, micros(latest)?);
        (earliest_micros < latest_micros).then_some(TimeWindow { earliest_micros, latest_micros })
    }

    /// True when `micros` lies in the window.
    pub fn contains(&self, micros: i64) -> bool {
        (self.earliest_micros..self.latest_micros).contains(&micros)
    }

    /// `micros` (as wide as the text gave it) when it lies in the window; otherwise the
    /// quarantine reason, naming `field` and the value as written (`raw`, read as `unit`) and
    /// saying which finer unit it looks like. `field` is only written out for a refusal (pass
    /// `format_args!` for a composed name: nothing is formatted for a time inside).
    pub fn check(
        &self,
        field: impl std::fmt::Display,
        micros: i128,
        raw: &str,
        unit: Unit,
    ) -> std::result::Result<i64, String> {
        let inside = |m: i128| i64::try_from(m).ok().filter(|m| self.contains(*m));
        if let Some(m) = inside(micros) {
            return Ok(m);
        }
        let hint = [(1_000i128, "milliseconds"), (1_000_000, "microseconds"), (1_000_000_000, "nanoseconds")]
            .into_iter()
            .filter(|(_, name)| !(unit == Unit::Milliseconds && *name == "milliseconds"))
            .find(|(factor, _)| {
                let factor = if unit == Unit::Milliseconds { factor / 1_000 } else { *factor };
                inside(micros / factor).is_some()
            })
            .map(|(_, name)| format!(" (looks like {name})"))
            .unwrap_or_default();
        Err(format!(
            "{field}: {} is outside the plausible window {} to {}{hint}",
            raw.trim(),
            date_text(self.earliest_micros),
            date_text(self.latest_micros),
        ))
    }
}

/// `micros` as an ISO date-time (or the number, if out of chrono's range).
fn date_text(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros).map_or_else(|| micros.to_string(), |t| t.format("%Y-%m-%d").to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The common case's arithmetic gives what the general one gives.
        #[test]
        fn plain_decimals_scale_as_any_decimal(text in "[-+ ]?[0-9]{0,21}(\\.[0-9]{0,9})?(e-?[0-9])?", scale in 0u32..10) {
            prop_assert_eq!(parse_decimal_scaled(&text, scale), general_decimal_scaled(&text, scale), "{}", text);
        }

        /// A plain decimal converts to the `f64` serde reads from the same text, bit for bit.
        #[test]
        fn plain_decimals_read_as_serde_reads_them(text in "-?(0|[1-9][0-9]{0,19})(\\.[0-9]{1,19})?") {
            if let Some(plain) = Plain::of(text.as_bytes()) {
                let serde = serde_json::from_str::<f64>(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(plain.to_f64().to_bits(), serde.to_bits(), "{}", text);
            }
        }
    }

    #[test]
    fn decimal_text_is_scaled_exactly() {
        assert_eq!(seconds_text_to_micros("1678451168"), Some(1_678_451_168_000_000));
        assert_eq!(seconds_text_to_micros("1678451168.0"), Some(1_678_451_168_000_000));
        assert_eq!(seconds_text_to_micros("1678451168.123456"), Some(1_678_451_168_123_456));
        assert_eq!(seconds_text_to_micros("1678451168.1234565"), Some(1_678_451_168_123_457));
        assert_eq!(seconds_text_to_micros("1.6784511681e9"), Some(1_678_451_168_100_000));
        assert_eq!(seconds_text_to_micros("-1.5"), Some(-1_500_000));
        assert_eq!(seconds_text_to_micros("0.0000004"), Some(0));
        assert_eq!(seconds_text_to_micros("0.0000005"), Some(1));
        assert_eq!(seconds_text_to_micros("abc"), None);
        assert_eq!(seconds_text_to_micros(""), None);
        assert_eq!(seconds_text_to_micros("."), None);
    }

    #[test]
    fn no_128_second_steps() {
        // The original notebooks cast through a 32-bit float: 1678524300 became 1678524288.
        assert_eq!(seconds_text_to_micros("1678524300.0"), Some(1_678_524_300 * MICROS_PER_SECOND));
    }

    #[test]
    fn kafka_timestamps_accept_seconds_and_milliseconds() {
        assert_eq!(kafka_timestamp_to_micros("1678451168"), Some(1_678_451_168_000_000));
        assert_eq!(kafka_timestamp_to_micros("1678451168123"), Some(1_678_451_168_123_000));
        assert_eq!(kafka_timestamp_to_micros("99999999999"), Some(99_999_999_999_000_000));
        assert_eq!(kafka_timestamp_to_micros("100000000000"), Some(100_000_000_000_000));
    }

    #[test]
    fn iso_strings_are_accepted() {
        assert_eq!(event_time_json_to_micros("\"2023-03-11T08:45:00Z\""), Some(1_678_524_300_000_000));
        assert_eq!(event_time_json_to_micros("\"2023-03-11 08:45:00.5\""), Some(1_678_524_300_500_000));
        assert_eq!(event_time_json_to_micros("\"2023-03-11T09:45:00+01:00\""), Some(1_678_524_300_000_000));
        assert_eq!(event_time_json_to_micros("\"1678524300\""), Some(1_678_524_300_000_000));
        assert_eq!(event_time_json_to_micros("\"yesterday\""), None);
    }

    #[test]
    fn times_outside_the_window_say_which_unit_they_look_like() {
        let window = TimeWindow::default();
        let seconds = |raw: &str| {
            window.check("value.time", event_time_text_to_micros_wide(raw).unwrap_or(0), raw, Unit::Seconds)
        };
        assert_eq!(seconds("1678521900"), Ok(1_678_521_900_000_000));
        let reason = seconds("1678521900000").expect_err("outside");
        assert_eq!(reason, "value.time: 1678521900000 is outside the plausible window 2000-01-01 to 2100-01-01 (looks like milliseconds)");
        assert!(seconds("1678521900000000").expect_err("outside").ends_with("(looks like microseconds)"));
        assert!(seconds("-9000000000000").expect_err("outside").ends_with("2100-01-01"), "no unit fits");
        let ms = |raw: &str| {
            window.check("timestamp", kafka_timestamp_to_micros(raw).map_or(0, i128::from), raw, Unit::Milliseconds)
        };
        assert_eq!(ms("1678521900000"), Ok(1_678_521_900_000_000));
        assert!(ms("1678521900000000").expect_err("outside").ends_with("(looks like microseconds)"));
        assert!(ms("9000000000000000").expect_err("outside").ends_with("2100-01-01"));
        assert!(window.check("t", window.latest_micros.into(), "x", Unit::Seconds).is_err(), "the end is exclusive");
        assert!(window.check("t", window.earliest_micros.into(), "x", Unit::Seconds).is_ok());
    }
}
