//! The fast path of the multiplex parser: a scanner for the flat JSON objects of the common
//! envelope and `bpm` payload, which takes a line apart in one pass without building serde
//! values.
//!
//! It answers only when it is sure: any shape it does not know (an unknown or repeated field,
//! a `\u` escape, an embedded object, a number serde would refuse, anything malformed) gives
//! `None`, and the caller takes the general serde path, which gives the same answer for what
//! the scanner accepts (tested on every shape below against serde) and the quarantine reason
//! for what it does not.

use std::borrow::Cow;

use crate::time::Plain;

/// A JSON number's text and, when it is a plain decimal ([`Plain`]), its digits, read once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Number<'a> {
    /// The number's text.
    pub text: &'a str,
    /// [`Plain::of`] the text.
    pub plain: Option<Plain>,
}

impl<'a> Number<'a> {
    /// A number whose text another path (serde) has read.
    pub fn of(text: &'a str) -> Self {
        Number { text, plain: Plain::of(text.as_bytes()) }
    }
}

/// A position in JSON text.
struct Cursor<'a> {
    src: &'a str,
    text: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn new(src: &'a str) -> Self {
        Cursor { src, text: src.as_bytes(), at: 0 }
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.text.get(self.at) {
            self.at += 1;
        }
    }

    /// Skips space, then takes `byte` if it is next.
    fn take(&mut self, byte: u8) -> Option<()> {
        self.skip_space();
        (self.text.get(self.at) == Some(&byte)).then(|| self.at += 1)
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_space();
        self.text.get(self.at).copied()
    }

    /// A string's text, unescaped in the same pass (borrowed when it has no escapes); `None`
    /// for a `\u` escape or an unknown one (the general path decides those) and for a raw
    /// control character (not JSON).
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.take(b'"')?;
        let start = self.at;
        let mut unescaped: Option<String> = None;
        let mut run = start;
        let mut at = start;
        loop {
            at = run_end(self.text, at);
            // Every byte that stops a run is ASCII, so `run` and `at` are character boundaries.
            let plain = self.src.get(run..at)?;
            match *self.text.get(at)? {
                b'"' => {
                    self.at = at + 1;
                    return Some(match unescaped {
                        None => Cow::Borrowed(plain),
                        Some(mut text) => {
                            text.push_str(plain);
                            Cow::Owned(text)
                        }
                    });
                }
                b'\\' => {
                    // Unescaped, the string is no longer than the rest of the text: one
                    // allocation, never grown.
                    let text = unescaped.get_or_insert_with(|| String::with_capacity(self.text.len() - start));
                    text.push_str(plain);
                    let escaped = *self.text.get(at + 1)?;
                    at += 2;
                    run = at;
                    match escaped {
                        // The character is the escaped byte itself: it starts the next run
                        // (one copy for both instead of a push of its own).
                        b'"' | b'\\' | b'/' => run -= 1,
                        b'b' => text.push('\u{8}'),
                        b'f' => text.push('\u{c}'),
                        b'n' => text.push('\n'),
                        b'r' => text.push('\r'),
                        b't' => text.push('\t'),
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    /// A field name that is one of `names`, written without escapes; `None` for any other (the
    /// object has no such field: the general path decides). Compared in place, sixteen bytes
    /// at a time, rather than scanned as a string.
    fn name<F: Copy>(&mut self, names: &[Name<F>]) -> Option<F> {
        self.take(b'"')?;
        let rest = self.text.get(self.at..)?;
        let name = match rest.first_chunk::<16>() {
            Some(window) => {
                let word = u128::from_le_bytes(*window);
                names.iter().find(|name| word & name.mask == name.quoted)?
            }
            // Near the end of the text.
            None => names
                .iter()
                .find(|name| rest.get(name.text.len()) == Some(&b'"') && rest.starts_with(name.text.as_bytes()))?,
        };
        self.at += name.text.len() + 1;
        Some(name.field)
    }

    /// A number, strictly as JSON writes numbers: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`;
    /// a plain decimal's digits are read in the same pass.
    fn number(&mut self) -> Option<Number<'a>> {
        self.skip_space();
        let text = self.text;
        let start = self.at;
        let mut at = start;
        let negative = text.get(at) == Some(&b'-');
        at += usize::from(negative);
        // The digits so far as one integer, wrapping: trusted only when there are at most
        // `Plain::MAX_DIGITS` of them.
        let mut digits = 0u64;
        let mut run = |at: &mut usize| {
            let from = *at;
            while let Some(d) = text.get(*at).map(|b| b.wrapping_sub(b'0')).filter(|d| *d < 10) {
                digits = digits.wrapping_mul(10).wrapping_add(u64::from(d));
                *at += 1;
            }
            *at - from
        };
        let whole = run(&mut at);
        if whole == 0 || (whole > 1 && text[at - whole] == b'0') {
            return None;
        }
        let mut fraction = 0;
        if text.get(at) == Some(&b'.') {
            at += 1;
            fraction = run(&mut at);
            if fraction == 0 {
                return None;
            }
        }
        let mut exponent = false;
        if let Some(b'e' | b'E') = text.get(at) {
            exponent = true;
            at += 1;
            if let Some(b'+' | b'-') = text.get(at) {
                at += 1;
            }
            let from = at;
            while text.get(at).is_some_and(u8::is_ascii_digit) {
                at += 1;
            }
            if at == from {
                return None;
            }
        }
        self.at = at;
        let plain = (!exponent && whole + fraction <= Plain::MAX_DIGITS).then_some(Plain {
            negative,
            digits,
            fraction: fraction as u32,
        });
        Some(Number { text: self.src.get(start..at)?, plain })
    }

    /// An integer serde reads as `i64`: a number without fraction or exponent, in range.
    fn integer(&mut self) -> Option<i64> {
        self.skip_space();
        let negative = self.text.get(self.at) == Some(&b'-');
        self.at += usize::from(negative);
        let (start, mut magnitude) = (self.at, 0u64);
        while let Some(&b) = self.text.get(self.at).filter(|b| b.is_ascii_digit()) {
            magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
            self.at += 1;
        }
        let digits = self.at - start;
        if digits == 0 || (digits > 1 && self.text[start] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.text.get(self.at) {
            return None;
        }
        if negative {
            // serde reads `-0` as a float, which it refuses as an `i64`.
            (magnitude > 0).then(|| 0i64.checked_sub_unsigned(magnitude)).flatten()
        } else {
            i64::try_from(magnitude).ok()
        }
    }

    /// The end of the object: its `}` and nothing but space after it.
    fn end(&mut self) -> Option<()> {
        self.take(b'}')?;
        self.skip_space();
        (self.at == self.text.len()).then_some(())
    }

    /// Walks the fields of an object whose fields are among `names`, calling `field` with each
    /// name (the scanner's position at its value); stops with `None` at any other name and
    /// when `field` does.
    fn object<F: Copy>(&mut self, names: &[Name<F>], mut field: impl FnMut(&mut Self, F) -> Option<()>) -> Option<()> {
        self.take(b'{')?;
        if self.peek()? == b'}' {
            return self.end();
        }
        loop {
            let name = self.name(names)?;
            self.take(b':')?;
            field(self, name)?;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => return self.end(),
                _ => return None,
            }
        }
    }
}

/// A field name an object may have, with its text and closing quote as the little-endian
/// number sixteen bytes of JSON spell when they start with them.
#[derive(Clone, Copy)]
struct Name<F> {
    /// The field it names.
    field: F,
    text: &'static str,
    /// The name's bytes and the closing quote.
    quoted: u128,
    /// The bits of those bytes.
    mask: u128,
}

impl<F: Copy> Name<F> {
    /// The name of `field`, of at most 15 bytes (longer ones do not compile).
    const fn new(text: &'static str, field: F) -> Name<F> {
        let bytes = text.as_bytes();
        assert!(!bytes.is_empty() && bytes.len() < 16, "a field name of 1 to 15 bytes");
        let mut quoted = (b'"' as u128) << (8 * bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            quoted |= (bytes[i] as u128) << (8 * i);
            i += 1;
        }
        let mask = if bytes.len() == 15 { u128::MAX } else { (1u128 << (8 * (bytes.len() + 1))) - 1 };
        Name { field, text, quoted, mask }
    }
}

/// The names of the envelope's fields.
const ENVELOPE: [Name<Envelope>; 6] = [
    Name::new("topic", Envelope::Topic),
    Name::new("partition", Envelope::Partition),
    Name::new("offset", Envelope::Offset),
    Name::new("timestamp", Envelope::Timestamp),
    Name::new("key", Envelope::Key),
    Name::new("value", Envelope::Value),
];

/// The envelope's fields.
#[derive(Clone, Copy)]
enum Envelope {
    Topic,
    Partition,
    Offset,
    Timestamp,
    Key,
    Value,
}

/// A `bpm` payload's fields.
#[derive(Clone, Copy)]
enum Payload {
    DeviceId,
    Time,
    Heartrate,
}

/// The names of a `bpm` payload's fields.
const BPM: [Name<Payload>; 3] = [
    Name::new("device_id", Payload::DeviceId),
    Name::new("time", Payload::Time),
    Name::new("heartrate", Payload::Heartrate),
];

/// Bytes that end a run of plain string text: the quote, the backslash and the control
/// characters.
const STOPS_STRING: [bool; 256] = {
    let mut stops = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        stops[b] = true;
        b += 1;
    }
    stops[b'"' as usize] = true;
    stops[b'\\' as usize] = true;
    stops
};

/// The first byte at or after `at` that ends a run of plain string text ([`STOPS_STRING`]),
/// or the text's end. Eight bytes are tested at a time (SWAR): for each kind of stop a word
/// gets the high bit of every byte that is one, exactly from the lowest such byte up (a
/// borrow can only mark bytes above a true one), so the lowest mark is the first stop.
fn run_end(text: &[u8], mut at: usize) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = ONES << 7;
    // High bit of each byte of `word` below `n` (`n` at most 128; bytes of 128 and up never).
    let below = |word: u64, n: u8| word.wrapping_sub(ONES * u64::from(n)) & !word & HIGHS;
    while let Some(chunk) = text.get(at..at + 8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else { break };
        let word = u64::from_le_bytes(bytes);
        let stops =
            below(word ^ (ONES * u64::from(b'"')), 1) | below(word ^ (ONES * u64::from(b'\\')), 1) | below(word, 0x20);
        if stops != 0 {
            return at + (stops.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    while at < text.len() && !STOPS_STRING[usize::from(text[at])] {
        at += 1;
    }
    at
}

/// Sets `slot` once; a second value for it (a repeated field, which serde refuses) stops the
/// scan.
fn once<T>(slot: &mut Option<T>, value: Option<T>) -> Option<()> {
    match slot {
        Some(_) => None,
        None => {
            *slot = Some(value?);
            Some(())
        }
    }
}

/// The fields of an envelope, as [`crate::multiplex`] reads them.
#[derive(Debug, PartialEq)]
pub(crate) struct EnvelopeFields<'a> {
    pub key: Option<Cow<'a, str>>,
    pub value: Cow<'a, str>,
    pub topic: Cow<'a, str>,
    pub partition: i64,
    pub offset: i64,
    /// The timestamp's raw JSON number.
    pub timestamp: Number<'a>,
}

/// An envelope whose `key` is a string or null, `value` a string, and `timestamp` a number.
pub(crate) fn envelope(line: &str) -> Option<EnvelopeFields<'_>> {
    let (mut key, mut value, mut topic, mut partition, mut offset, mut timestamp) =
        (None, None, None, None, None, None);
    let mut cursor = Cursor::new(line);
    cursor.object(&ENVELOPE, |c, name| match name {
        Envelope::Key => {
            let text = if c.peek()? == b'n' {
                c.text.get(c.at..c.at + 4).filter(|t| *t == b"null")?;
                c.at += 4;
                None
            } else {
                Some(c.string()?)
            };
            once(&mut key, Some(text))
        }
        Envelope::Value => once(&mut value, c.string()),
        Envelope::Topic => once(&mut topic, c.string()),
        Envelope::Partition => once(&mut partition, c.integer()),
        Envelope::Offset => once(&mut offset, c.integer()),
        Envelope::Timestamp => once(&mut timestamp, c.number()),
    })?;
    Some(EnvelopeFields {
        key: key?,
        value: value?,
        topic: topic?,
        partition: partition?,
        offset: offset?,
        timestamp: timestamp?,
    })
}

/// The fields of a `bpm` payload: the device, the time's raw JSON number, the heart rate.
pub(crate) fn bpm(value: &str) -> Option<(i64, Number<'_>, f64)> {
    let (mut device_id, mut time, mut heartrate) = (None, None, None);
    let mut cursor = Cursor::new(value);
    cursor.object(&BPM, |c, name| match name {
        Payload::DeviceId => once(&mut device_id, c.integer()),
        Payload::Time => once(&mut time, c.number()),
        // As serde reads it, so that both paths read the same bits: a plain decimal by the same
        // arithmetic ([`Plain::to_f64`]), anything else by serde itself.
        Payload::Heartrate => once(
            &mut heartrate,
            c.number().and_then(|n| match n.plain {
                Some(plain) => Some(plain.to_f64()),
                None => serde_json::from_str::<f64>(n.text).ok(),
            }),
        ),
    })?;
    Some((device_id?, time?, heartrate?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_json_numbers() {
        for (text, number) in [
            ("0", Some("0")),
            ("-12.5e+3", Some("-12.5e+3")),
            ("1678521600.5", Some("1678521600.5")),
            ("01", None),
            ("1.", None),
            (".5", None),
            ("1e", None),
            ("-", None),
            ("+1", None),
            ("-0", Some("-0")),
            ("9223372036854775807", Some("9223372036854775807")),
            ("9223372036854775808", Some("9223372036854775808")),
            ("-9223372036854775808", Some("-9223372036854775808")),
            ("-9223372036854775809", Some("-9223372036854775809")),
            ("18446744073709551616", Some("18446744073709551616")),
        ] {
            let mut c = Cursor::new(text);
            let got = c.number().filter(|_| c.at == text.len()).map(|n| {
                assert_eq!(n, Number::of(text), "{text}");
                n.text
            });
            assert_eq!(got, number, "{text}");
            let mut c = Cursor::new(text);
            let integer = c.integer().filter(|_| c.at == text.len());
            assert_eq!(integer, number.and_then(|n| serde_json::from_str::<i64>(n).ok()), "{text}");
        }
    }

    #[test]
    fn runs_end_at_the_first_stop_wherever_it_lies_in_a_word() {
        for stop in [b'"', b'\\', b'\n', 0, 0x1f] {
            for len in 0..20 {
                for at in 0..=len {
                    // Plain bytes around the stop, with non-ASCII and borrow-prone neighbours.
                    let mut text: Vec<u8> =
                        (0..len).map(|i| [b'a', 0x20, 0xc3, 0xa9, b'#', b']', 0x7f][i % 7]).collect();
                    if at < len {
                        text[at] = stop;
                        text.extend_from_slice(b"\"\x01");
                    }
                    for from in 0..=at {
                        assert_eq!(run_end(&text, from), at, "{text:?} from {from}");
                    }
                }
            }
        }
    }

    #[test]
    fn strings_stop_at_what_they_do_not_know() {
        assert_eq!(Cursor::new(r#""a\"b\\c\/\n""#).string().as_deref(), Some("a\"b\\c/\n"));
        assert_eq!(Cursor::new(r#""plain""#).string(), Some(Cow::Borrowed("plain")));
        assert_eq!(Cursor::new(r#""\u0041""#).string(), None);
        assert_eq!(Cursor::new("\"a\tb\"").string(), None);
        assert_eq!(Cursor::new(r#""a\"#).string(), None);
    }

    #[test]
    fn names_are_known_names_written_plainly() {
        let names = ["time", "timestamp", "key", "fifteen_letters"].map(|name| Name::new(name, name));
        for (text, name, rest) in [
            (r#""time":1"#, Some("time"), ":1"),
            (r#""time": 1, "heartrate": 98.7}"#, Some("time"), ": 1, \"heartrate\": 98.7}"),
            (r#""fifteen_letters": 1, "x": 2}"#, Some("fifteen_letters"), ": 1, \"x\": 2}"),
            (r#""fifteen_letterz": 1, "x": 2}"#, None, ""),
            (r#""timestamp_and_more": 1}"#, None, ""),
            (r#" "timestamp" :1"#, Some("timestamp"), " :1"),
            (r#""key""#, Some("key"), ""),
            (r#""tim":1"#, None, ""),
            (r#""times":1"#, None, ""),
            (r#""k\u0065y":1"#, None, ""),
            (r#""ke\/y":1"#, None, ""),
            (r#""key"#, None, ""),
            (r#""":1"#, None, ""),
            ("key", None, ""),
        ] {
            // At the end of the text and with sixteen bytes or more after the quote.
            let mut c = Cursor::new(text);
            assert_eq!(c.name(&names), name, "{text}");
            let longer = format!("{text}                ");
            assert_eq!(Cursor::new(&longer).name(&names), name, "{longer}");
            if name.is_some() {
                assert_eq!(&text[c.at..], rest, "{text}");
            }
        }
    }
}
