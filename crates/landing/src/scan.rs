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

    /// A string's raw text between its quotes, and whether it holds escapes.
    fn string(&mut self) -> Option<(&'a str, bool)> {
        self.take(b'"')?;
        let start = self.at;
        // The closing quote is the first one after an even run of backslashes.
        let mut from = start;
        let end = loop {
            let quote = from + memchr::memchr(b'"', &self.text[from..])?;
            let backslashes = self.text[start..quote].iter().rev().take_while(|&&b| b == b'\\').count();
            if backslashes % 2 == 0 {
                break quote;
            }
            from = quote + 1;
        };
        let inner = &self.text[start..end];
        // JSON strings hold no raw control characters.
        if inner.iter().fold(false, |bad, &b| bad | (b < 0x20)) {
            return None;
        }
        self.at = end + 1;
        // Quotes are ASCII, so both ends are character boundaries.
        Some((self.src.get(start..end)?, memchr::memchr(b'\\', inner).is_some()))
    }

    /// A number's text, strictly as JSON writes numbers: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Option<&'a str> {
        self.skip_space();
        let start = self.at;
        let digits = |c: &mut Self| {
            let from = c.at;
            while c.text.get(c.at).is_some_and(u8::is_ascii_digit) {
                c.at += 1;
            }
            c.at - from
        };
        if self.text.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let whole = digits(self);
        if whole == 0 || (whole > 1 && self.text[self.at - whole] == b'0') {
            return None;
        }
        if self.text.get(self.at) == Some(&b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.text.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.text.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        self.src.get(start..self.at)
    }

    /// An integer serde reads as `i64`: a number without fraction or exponent, in range.
    fn integer(&mut self) -> Option<i64> {
        let text = self.number()?;
        if text.contains(['.', 'e', 'E']) {
            return None;
        }
        text.parse().ok()
    }

    /// The end of the object: its `}` and nothing but space after it.
    fn end(&mut self) -> Option<()> {
        self.take(b'}')?;
        self.skip_space();
        (self.at == self.text.len()).then_some(())
    }

    /// Walks the fields of an object, calling `field` with each name (the scanner's position at
    /// its value); stops with `None` when `field` does.
    fn object(&mut self, mut field: impl FnMut(&mut Self, &'a str) -> Option<()>) -> Option<()> {
        self.take(b'{')?;
        if self.peek()? == b'}' {
            return self.end();
        }
        loop {
            let (name, escaped) = self.string()?;
            if escaped {
                return None;
            }
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

/// The text of a JSON string's raw inner text, unescaped (`None` for a `\u` escape or an
/// unknown one: the general path decides those).
fn unescape(inner: &str, escaped: bool) -> Option<Cow<'_, str>> {
    if !escaped {
        return Some(Cow::Borrowed(inner));
    }
    let mut out = String::with_capacity(inner.len());
    let mut rest = inner;
    while let Some(i) = memchr::memchr(b'\\', rest.as_bytes()) {
        out.push_str(&rest[..i]);
        let c = match rest.as_bytes().get(i + 1)? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            _ => return None,
        };
        out.push(c);
        rest = &rest[i + 2..];
    }
    out.push_str(rest);
    Some(Cow::Owned(out))
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
    pub timestamp: &'a str,
}

/// An envelope whose `key` is a string or null, `value` a string, and `timestamp` a number.
pub(crate) fn envelope(line: &str) -> Option<EnvelopeFields<'_>> {
    let (mut key, mut value, mut topic, mut partition, mut offset, mut timestamp) =
        (None, None, None, None, None, None);
    let mut cursor = Cursor::new(line);
    cursor.object(|c, name| match name {
        "key" => {
            let text = if c.peek()? == b'n' {
                c.text.get(c.at..c.at + 4).filter(|t| *t == b"null")?;
                c.at += 4;
                None
            } else {
                let (inner, escaped) = c.string()?;
                Some(unescape(inner, escaped)?)
            };
            once(&mut key, Some(text))
        }
        "value" => once(&mut value, c.string().and_then(|(inner, escaped)| unescape(inner, escaped))),
        "topic" => once(&mut topic, c.string().and_then(|(inner, escaped)| unescape(inner, escaped))),
        "partition" => once(&mut partition, c.integer()),
        "offset" => once(&mut offset, c.integer()),
        "timestamp" => once(&mut timestamp, c.number()),
        _ => None,
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
pub(crate) fn bpm(value: &str) -> Option<(i64, &str, f64)> {
    let (mut device_id, mut time, mut heartrate) = (None, None, None);
    let mut cursor = Cursor::new(value);
    cursor.object(|c, name| match name {
        "device_id" => once(&mut device_id, c.integer()),
        "time" => once(&mut time, c.number()),
        // serde's own float parsing, so that both paths read the same bits.
        "heartrate" => once(&mut heartrate, c.number().and_then(|n| serde_json::from_str::<f64>(n).ok())),
        _ => None,
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
        ] {
            let mut c = Cursor::new(text);
            let got = c.number().filter(|_| c.at == text.len());
            assert_eq!(got, number, "{text}");
        }
    }

    #[test]
    fn strings_stop_at_what_they_do_not_know() {
        assert_eq!(unescape(r#"a\"b\\c\/\n"#, true).as_deref(), Some("a\"b\\c/\n"));
        assert_eq!(unescape(r"\u0041", true), None);
        assert_eq!(Cursor::new("\"a\tb\"").string(), None);
        assert_eq!(Cursor::new(r#""a\"#).string(), None);
    }
}
