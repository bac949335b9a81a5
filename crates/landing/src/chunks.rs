//! Reading a line-oriented landing file in bounded chunks: the caller feeds the pieces it reads
//! (of any size, as storage returns them) and gets back chunks of whole lines of about a target
//! size, each with the number of its first line, to parse one at a time. Memory is bounded by
//! the target (plus one line up to `max_line_bytes`), not by the file.
//!
//! A line longer than both is not held: it is hashed as it streams past and comes back as the
//! same quarantine record [`oversized`](crate::quarantine::oversized) gives for a line held
//! whole (its first bytes, length and SHA-256).

use sha2::{Digest, Sha256};

use crate::quarantine::{Quarantined, RAW_PREFIX_BYTES};

/// Whole lines of a file, ready to parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The number (from 1) of the chunk's first line in the file.
    pub first_line: u64,
    /// The lines, each ending in `\n` but perhaps the file's last.
    pub text: Vec<u8>,
}

/// A line being skipped because it is longer than the chunker holds.
struct Skipping {
    line: u64,
    prefix: Vec<u8>,
    hash: Sha256,
    len: usize,
    /// A `\r` not hashed yet: it belongs to the line unless a `\n` follows it.
    cr: bool,
}

/// Splits a byte stream into [`Chunk`]s (see the module documentation).
/// ```
/// use fitlake_landing::chunks::LineChunker;
/// let mut chunker = LineChunker::new("f.json", 8, 100);
/// let mut chunks = chunker.push(b"a\nbb\ncc");
/// chunks.extend(chunker.push(b"c\nd"));
/// chunks.extend(chunker.finish());
/// let lines: Vec<(u64, &[u8])> = chunks.iter().map(|c| (c.first_line, c.text.as_slice())).collect();
/// assert_eq!(lines, [(1, &b"a\nbb\nccc\n"[..]), (4, &b"d"[..])]);
/// ```
pub struct LineChunker {
    source_file: String,
    target: usize,
    max_line_bytes: usize,
    buf: Vec<u8>,
    next_line: u64,
    at_start: bool,
    skipping: Option<Skipping>,
    oversized: Vec<Quarantined>,
}

impl LineChunker {
    /// A chunker for `source_file` giving chunks of about `target` bytes; a line over
    /// `max_line_bytes` that does not fit in a chunk is skipped and quarantined.
    pub fn new(source_file: &str, target: usize, max_line_bytes: usize) -> Self {
        LineChunker {
            source_file: source_file.to_string(),
            target: target.max(1),
            max_line_bytes,
            buf: Vec::new(),
            next_line: 1,
            at_start: true,
            skipping: None,
            oversized: Vec::new(),
        }
    }

    /// Takes the next piece of the file; returns the chunks it completes.
    pub fn push(&mut self, mut piece: &[u8]) -> Vec<Chunk> {
        let mut out = Vec::new();
        if self.at_start {
            // A byte-order mark is skipped; it is not a line of its own.
            let bom = b"\xEF\xBB\xBF";
            let have = self.buf.len() + piece.len();
            if have < bom.len() && bom.starts_with(&[self.buf.as_slice(), piece].concat()) {
                self.buf.extend_from_slice(piece);
                return out;
            }
            let mut joined = std::mem::take(&mut self.buf);
            joined.extend_from_slice(piece);
            self.at_start = false;
            let rest = joined.strip_prefix(bom).unwrap_or(&joined).to_vec();
            return self.push_owned(rest);
        }
        if let Some(skip) = &mut self.skipping {
            match piece.iter().position(|&b| b == b'\n') {
                None => {
                    feed(skip, piece);
                    return out;
                }
                Some(end) => {
                    let raw = &piece[..end];
                    // A `\r` held back from the last piece was the line's own unless the `\n`
                    // follows it directly (CRLF).
                    if skip.cr && !raw.is_empty() {
                        hash_bytes(skip, b"\r");
                    }
                    skip.cr = false;
                    hash_bytes(skip, raw.strip_suffix(b"\r").unwrap_or(raw));
                    let done = self.skipping.take().map(|s| self.quarantine(s));
                    self.oversized.extend(done);
                    self.next_line += 1;
                    piece = &piece[end + 1..];
                }
            }
        }
        self.buf.extend_from_slice(piece);
        self.cut(&mut out);
        out
    }

    /// Takes the next piece of the file as a buffer of its own; returns the chunks it
    /// completes and how many of its bytes it took. A piece holding a line end becomes a chunk
    /// itself, up to its last line end, without a copy: the partial line after that is not
    /// taken, and the caller reads it again as the start of its next piece. Anything else (a
    /// line held from an earlier piece or being skipped, a piece without a line end) goes
    /// through [`LineChunker::push`] and is taken whole.
    /// ```
    /// use fitlake_landing::chunks::LineChunker;
    /// let file = b"a\nbb\ncc";
    /// let mut chunker = LineChunker::new("f.json", 8, 100);
    /// let (chunks, taken) = chunker.push_buffer(file[..7].to_vec());
    /// assert_eq!((chunks[0].first_line, chunks[0].text.as_slice(), taken), (1, &b"a\nbb\n"[..], 5));
    /// let (chunks, taken) = chunker.push_buffer(file[5..].to_vec());
    /// assert_eq!((chunks.len(), taken), (0, 2));
    /// assert_eq!(chunker.finish().map(|c| (c.first_line, c.text)), Some((3, b"cc".to_vec())));
    /// ```
    pub fn push_buffer(&mut self, mut piece: Vec<u8>) -> (Vec<Chunk>, usize) {
        let len = piece.len();
        let bom = b"\xEF\xBB\xBF";
        let mut taken = 0;
        if self.at_start && self.buf.is_empty() && (len >= bom.len() || !bom.starts_with(&piece)) {
            self.at_start = false;
            if piece.starts_with(bom) {
                piece.drain(..bom.len());
                taken = bom.len();
            }
        }
        let last = memchr::memrchr(b'\n', &piece);
        match last {
            Some(last) if !self.at_start && self.buf.is_empty() && self.skipping.is_none() => {
                piece.truncate(last + 1);
                let first_line = self.next_line;
                self.next_line += memchr::memchr_iter(b'\n', &piece).count() as u64;
                (vec![Chunk { first_line, text: piece }], taken + last + 1)
            }
            _ => (self.push(&piece), len),
        }
    }

    fn push_owned(&mut self, bytes: Vec<u8>) -> Vec<Chunk> {
        let mut out = Vec::new();
        self.buf = bytes;
        self.cut(&mut out);
        out
    }

    /// Emits the whole lines of the buffer once it holds `target` bytes; starts skipping a
    /// line that outgrows both the target and the line limit.
    fn cut(&mut self, out: &mut Vec<Chunk>) {
        if self.buf.len() < self.target {
            return;
        }
        match memchr::memrchr(b'\n', &self.buf) {
            Some(last) => {
                let rest = self.buf.split_off(last + 1);
                let text = std::mem::replace(&mut self.buf, rest);
                let first_line = self.next_line;
                self.next_line += memchr::memchr_iter(b'\n', &text).count() as u64;
                out.push(Chunk { first_line, text });
                // What is left may itself be an overlong line.
                self.cut(out);
            }
            None if self.buf.len() > self.max_line_bytes => {
                let mut skip =
                    Skipping { line: self.next_line, prefix: Vec::new(), hash: Sha256::new(), len: 0, cr: false };
                let held = std::mem::take(&mut self.buf);
                feed(&mut skip, &held);
                self.skipping = Some(skip);
            }
            None => {}
        }
    }

    /// The file has ended: the last chunk, if any bytes are left.
    pub fn finish(&mut self) -> Option<Chunk> {
        if let Some(mut skip) = self.skipping.take() {
            if skip.cr {
                hash_bytes(&mut skip, b"\r");
            }
            let q = self.quarantine(skip);
            self.oversized.push(q);
            return None;
        }
        if self.at_start {
            self.at_start = false;
            let bom = b"\xEF\xBB\xBF";
            if bom.starts_with(&self.buf) {
                self.buf.clear();
            }
        }
        if self.buf.is_empty() {
            return None;
        }
        let text = std::mem::take(&mut self.buf);
        let first_line = self.next_line;
        self.next_line += memchr::memchr_iter(b'\n', &text).count() as u64;
        Some(Chunk { first_line, text })
    }

    /// The lines skipped as too long so far, as quarantine records (taken).
    pub fn take_oversized(&mut self) -> Vec<Quarantined> {
        std::mem::take(&mut self.oversized)
    }

    fn quarantine(&self, skip: Skipping) -> Quarantined {
        let hex: String = skip.hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
        Quarantined {
            source_file: self.source_file.clone(),
            line: skip.line,
            raw: String::from_utf8_lossy(&skip.prefix).into_owned(),
            reason: format!(
                "line of {} bytes is over the limit of {} bytes (sha256 {hex})",
                skip.len, self.max_line_bytes
            ),
        }
    }
}

/// Feeds part of a skipped line (no `\n` in it), holding back a final `\r`.
fn feed(skip: &mut Skipping, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    if skip.cr {
        hash_bytes(skip, b"\r");
        skip.cr = false;
    }
    let (body, cr) = match bytes.strip_suffix(b"\r") {
        Some(b) => (b, true),
        None => (bytes, false),
    };
    hash_bytes(skip, body);
    skip.cr = cr;
}

fn hash_bytes(skip: &mut Skipping, bytes: &[u8]) {
    let room = RAW_PREFIX_BYTES.saturating_sub(skip.prefix.len());
    skip.prefix.extend_from_slice(&bytes[..bytes.len().min(room)]);
    skip.hash.update(bytes);
    skip.len += bytes.len();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quarantine::oversized;

    /// Feeds `text` in pieces of `piece` bytes; returns the chunks and the skipped lines.
    fn run(text: &[u8], piece: usize, target: usize, max_line: usize) -> (Vec<Chunk>, Vec<Quarantined>) {
        let mut c = LineChunker::new("f", target, max_line);
        let mut chunks = Vec::new();
        for p in text.chunks(piece.max(1)) {
            chunks.extend(c.push(p));
        }
        chunks.extend(c.finish());
        (chunks, c.take_oversized())
    }

    #[test]
    fn chunks_rejoin_to_the_file_with_line_numbers() {
        let text = b"\xEF\xBB\xBFone\ntwo\r\n\nthree\nfour";
        for piece in [1, 2, 3, 7, 100] {
            for target in [1, 4, 9, 1000] {
                let (chunks, skipped) = run(text, piece, target, 1000);
                assert!(skipped.is_empty());
                let body = &text[3..];
                let joined: Vec<u8> = chunks.iter().flat_map(|c| c.text.clone()).collect();
                assert_eq!(joined, body, "piece {piece} target {target}");
                let mut offset = 0;
                for c in &chunks {
                    let expected = body[..offset].iter().filter(|&&b| b == b'\n').count() as u64 + 1;
                    assert_eq!(c.first_line, expected, "piece {piece} target {target}");
                    assert!(c.text.ends_with(b"\n") || c.text.ends_with(b"four"));
                    offset += c.text.len();
                }
            }
        }
    }

    /// Feeds `text` as owned pieces of at most `piece` bytes, each starting where the chunker
    /// stopped taking; returns the chunks and the skipped lines.
    fn run_buffers(text: &[u8], piece: usize, target: usize, max_line: usize) -> (Vec<Chunk>, Vec<Quarantined>) {
        let mut c = LineChunker::new("f", target, max_line);
        let (mut chunks, mut at) = (Vec::new(), 0);
        while at < text.len() {
            let (done, taken) = c.push_buffer(text[at..text.len().min(at + piece.max(1))].to_vec());
            assert!(taken > 0);
            chunks.extend(done);
            at += taken;
        }
        chunks.extend(c.finish());
        (chunks, c.take_oversized())
    }

    #[test]
    fn owned_pieces_give_the_chunks_pushed_pieces_give_joined() {
        let texts: [&[u8]; 4] = [
            b"\xEF\xBB\xBFone\ntwo\r\n\nthree\nfour",
            b"\xEF\xBB",
            b"a\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\nb\nc\n",
            b"\n\n\nlast",
        ];
        for text in texts {
            for piece in [1, 2, 3, 7, 100] {
                for (target, max_line) in [(1, 1000), (4, 1000), (9, 1000), (1000, 1000), (4, 10)] {
                    let (pushed, pushed_skipped) = run(text, piece, target, max_line);
                    let (owned, owned_skipped) = run_buffers(text, piece, target, max_line);
                    // Every line with its number, whichever chunk holds it.
                    let lines = |chunks: &[Chunk]| {
                        chunks
                            .iter()
                            .flat_map(|c| c.text.split_inclusive(|&b| b == b'\n').zip(c.first_line..))
                            .map(|(line, n)| (n, line.to_vec()))
                            .collect::<Vec<_>>()
                    };
                    assert_eq!(lines(&owned), lines(&pushed), "piece {piece} target {target}");
                    assert_eq!(owned_skipped, pushed_skipped, "piece {piece} target {target}");
                }
            }
        }
    }

    #[test]
    fn an_overlong_line_streams_past_with_the_same_record_as_a_held_one() {
        let long = vec![b'x'; 5000];
        let mut text = b"a\n".to_vec();
        text.extend_from_slice(&long);
        text.extend_from_slice(b"\r\nb\n");
        for piece in [1, 10, 333, 10_000] {
            let (chunks, skipped) = run(&text, piece, 64, 100);
            let joined: Vec<u8> = chunks.iter().flat_map(|c| c.text.clone()).collect();
            if piece == 10_000 {
                // Arriving whole, the line is in a chunk: the parser quarantines it itself.
                assert!(skipped.is_empty());
                continue;
            }
            assert_eq!(joined, b"a\nb\n", "piece {piece}");
            assert_eq!(chunks.last().map(|c| c.first_line), Some(3));
            assert_eq!(skipped, vec![oversized("f", 2, &long, 100, "line")], "piece {piece}");
        }
    }
}
