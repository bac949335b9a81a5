//! The fast path of the upserts' dedupe: when every column a key and its rule compare is a
//! 64-bit integer, time or float without nulls, the rows are ordered by those columns packed
//! into one unsigned 128-bit word (order-preserving encodings, each column shifted to start at
//! its smallest value and given only the bits its range needs, the first column highest) and
//! sorted as a plain array, instead of Polars' multi-column sort of row-encoded bytes (`memcmp`
//! was a fifth of the silver layer's samples in `perf`). Anything else, or columns whose
//! ranges need more than 128 bits together, returns `None` and the caller takes the general
//! path.

use polars::prelude::*;

use crate::Result;

/// `i64` as an unsigned word in the same order.
fn ordered_i64(value: i64) -> u64 {
    (value as u64) ^ (1 << 63)
}

/// `f64` as an unsigned word in IEEE total order (-0.0 before 0.0).
fn ordered_f64(value: f64) -> u64 {
    let bits = value.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// A column's values as order-preserving words, read in place (a column is passed over twice:
/// once for its range, once to pack it; a vector of its words would be fresh memory, and page
/// faults were a third of the silver layer's samples).
enum Words {
    Int(Int64Chunked),
    Float(Float64Chunked),
}

impl Words {
    /// The column's words, or `None` when the column cannot be packed.
    fn of(column: &Column) -> Result<Option<Words>> {
        if column.null_count() > 0 {
            return Ok(None);
        }
        let series = column.as_materialized_series();
        Ok(match series.dtype() {
            DataType::Int64 | DataType::Datetime(_, _) => Some(Words::Int(series.to_physical_repr().i64()?.clone())),
            DataType::Float64 => {
                let floats = series.f64()?;
                if floats.into_no_null_iter().any(f64::is_nan) {
                    return Ok(None);
                }
                Some(Words::Float(floats.clone()))
            }
            _ => None,
        })
    }

    /// Calls `f` with each row's word, in row order.
    fn each(&self, mut f: impl FnMut(u64)) {
        match self {
            Words::Int(values) => values.into_no_null_iter().for_each(|v| f(ordered_i64(v))),
            Words::Float(values) => values.into_no_null_iter().for_each(|v| f(ordered_f64(v))),
        }
    }
}

/// `i64` back from [`ordered_i64`].
fn from_ordered_i64(word: u64) -> i64 {
    (word ^ (1 << 63)) as i64
}

/// `f64` back from [`ordered_f64`].
fn from_ordered_f64(word: u64) -> f64 {
    f64::from_bits(if word >> 63 == 1 { word & !(1 << 63) } else { !word })
}

/// Where one column sits in the packed words: its bits start `shift` bits up, hold the
/// column's word (flipped when `down`) less `low`, and are `bits` wide.
struct Place {
    shift: u32,
    bits: u32,
    low: u64,
    down: bool,
}

impl Place {
    /// The column's value in `packed`, as the column's physical type.
    fn word(&self, packed: u128) -> u64 {
        let mask = if self.bits == 0 { 0 } else { u64::MAX >> (u64::BITS - self.bits) };
        // The bits above the column's are shifted or masked off; `shift` may be 128 (no bits).
        let word = (packed.checked_shr(self.shift).unwrap_or(0) as u64 & mask) + self.low;
        if self.down {
            !word
        } else {
            word
        }
    }
}

/// The rows of `frame` that come first for each key (the first `keys` of `by`) when ordered by
/// `by` (each ascending, or descending where `descending` says), in that order; `None` when a
/// column of `by` is not a 64-bit number without nulls (or NaN), or the columns' ranges need
/// more than 128 bits together. Rows equal in every column of `by` are taken in input order.
/// When `by` is every column of `frame`, the columns are rebuilt from the sorted words (read in
/// order) instead of gathered from the frame (a jump per row and column).
pub(crate) fn first_per_key(
    frame: &DataFrame,
    by: &[&str],
    keys: usize,
    descending: &[bool],
) -> Result<Option<DataFrame>> {
    if by.is_empty() || keys == 0 || keys > by.len() {
        return Ok(None);
    }
    let mut places: Vec<Place> = Vec::with_capacity(by.len());
    let mut packed: Vec<u128> = vec![0; frame.height()];
    // Bits used so far.
    let mut width = 0u32;
    for (name, &down) in by.iter().zip(descending) {
        let Some(column) = Words::of(frame.column(name)?)? else { return Ok(None) };
        let flip = |w: u64| if down { !w } else { w };
        let (mut low, mut high) = (u64::MAX, 0);
        column.each(|w| {
            let w = flip(w);
            (low, high) = (low.min(w), high.max(w));
        });
        let bits = u64::BITS - high.saturating_sub(low).leading_zeros();
        width += bits;
        if width > u128::BITS {
            return Ok(None);
        }
        places.iter_mut().for_each(|p| p.shift += bits);
        places.push(Place { shift: 0, bits, low, down });
        let mut slots = packed.iter_mut();
        column.each(|w| {
            if let Some(slot) = slots.next() {
                // `bits` is at most 64 and the bits used so far at most 128 - `bits`: nothing
                // is shifted out. A column of one value takes 0 bits.
                *slot = (*slot << bits) | u128::from(flip(w) - low);
            }
        });
    }
    // A key is the bits above those of the columns after it: its last column's shift.
    let after_key = places[keys - 1].shift;
    let key = |word: u128| word.checked_shr(after_key).unwrap_or(0);
    // Each column's place in the words, when every column of the frame was compared: the rows
    // are rebuilt from the words, and rows equal in every column are the same row.
    let Some(placed) = frame
        .columns()
        .iter()
        .map(|column| Some((column, &places[by.iter().position(|b| *b == column.name().as_str())?])))
        .collect::<Option<Vec<_>>>()
    else {
        // Other columns are gathered: each word goes with its row number, which also keeps
        // rows equal in every compared column in input order.
        let rows = packed.into_iter().zip(0..).map(|(word, row): (u128, IdxSize)| (word, row)).collect();
        let mut sorted = sort_by_top_bits(rows, |(word, _)| *word, width);
        sorted.dedup_by_key(|(word, _)| key(*word));
        return Ok(Some(frame.take(&IdxCa::from_vec("row".into(), sorted.into_iter().map(|(_, row)| row).collect()))?));
    };
    let mut first = sort_by_top_bits(packed, |word| *word, width);
    first.dedup_by_key(|word| key(*word));
    let columns = placed
        .into_iter()
        .map(|(column, place)| {
            let words = first.iter().map(|word| place.word(*word));
            let name = column.name().clone();
            Ok(match column.dtype() {
                DataType::Float64 => {
                    Float64Chunked::from_vec(name, words.map(from_ordered_f64).collect()).into_column()
                }
                dtype => {
                    Int64Chunked::from_vec(name, words.map(from_ordered_i64).collect()).into_column().cast(dtype)?
                }
            })
        })
        .collect::<Result<Vec<Column>>>()?;
    Ok(Some(DataFrame::new(first.len(), columns)?))
}

/// Bits of the packed word that [`sort_by_top_bits`] distributes by.
const BUCKET_BITS: u32 = 16;

/// `packed` (elements whose `word` has `width` bits) in order: distributed by the words' top
/// bits (a stable counting pass), then each bucket sorted with the standard library's stable
/// sort, which takes runs already in order as they are. Upserts' rows mostly arrive in time
/// order: within one key value (a device, a user: the top bits) they are nearly sorted
/// already, where one sort of the whole array would compare every row about log n times. The
/// order is the one a plain sort gives.
fn sort_by_top_bits<T: Copy + Ord + Default>(packed: Vec<T>, word: impl Fn(&T) -> u128, width: u32) -> Vec<T> {
    let shift = width.saturating_sub(BUCKET_BITS);
    let bucket = |element: &T| usize::try_from(word(element).checked_shr(shift).unwrap_or(0)).unwrap_or(0);
    let mut starts = vec![0usize; (1 << BUCKET_BITS) + 1];
    for element in &packed {
        starts[bucket(element) + 1] += 1;
    }
    for b in 1..starts.len() {
        starts[b] += starts[b - 1];
    }
    let mut sorted = vec![T::default(); packed.len()];
    let mut next = starts.clone();
    for element in packed {
        let b = bucket(&element);
        sorted[next[b]] = element;
        next[b] += 1;
    }
    for range in starts.windows(2) {
        sorted[range[0]..range[1]].sort();
    }
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The packed path keeps the same rows as Polars' sort (compared on the sorted columns:
        /// rows equal in all of them are interchangeable).
        #[test]
        fn packed_keeps_what_the_sort_keeps(
            rows in proptest::collection::vec((0i64..4, -3i64..3, proptest::sample::select(vec![-1.0f64, -0.5, 0.0, 60.0, 72.5, 80.0])), 0..60),
            descending in any::<bool>(),
            extra in any::<bool>(),
        ) {
            let frame = df!(
                "device_id" => rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                "time" => rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                "heartrate" => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            ).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut frame = frame.lazy().with_column(col("time").cast(DataType::Datetime(TimeUnit::Microseconds, None)));
            if extra {
                // A column outside the order: the rows are gathered, not rebuilt from the words.
                frame = frame.with_column(col("heartrate").gt(lit(0.0)).alias("valid"));
            }
            let frame = frame.collect().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let (keys, by) = (["device_id", "time"], ["device_id", "time", "heartrate"]);
            let directions = vec![false, false, descending];
            let sorted = |f: DataFrame| f.sort(by, SortMultipleOptions::default()).map_err(|e| TestCaseError::fail(e.to_string()));
            let first = first_per_key(&frame, &by, 2, &directions).map_err(|e| TestCaseError::fail(e.to_string()))?
                .ok_or_else(|| TestCaseError::fail("numbers take the packed path"))?;
            let packed = sorted(first)?;
            let general = crate::sorted_first_per_key(frame.clone(), &keys, &by, directions)
                .and_then(|l| Ok(l.collect()?)).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(packed, sorted(general)?);
        }
    }

    #[test]
    fn other_columns_take_the_general_path() -> Result<()> {
        let frame = df!("user_id" => [1i64, 1], "action" => ["start", "stop"])?;
        assert!(first_per_key(&frame, &["user_id", "action"], 1, &[false, false])?.is_none());
        let nulls = df!("user_id" => [Some(1i64), None])?;
        assert!(first_per_key(&nulls, &["user_id"], 1, &[false])?.is_none());
        // Three full-range columns need 192 bits.
        let wide = df!("a" => [i64::MIN, i64::MAX], "b" => [i64::MIN, i64::MAX], "c" => [i64::MIN, i64::MAX])?;
        assert!(first_per_key(&wide, &["a", "b", "c"], 1, &[false, false, false])?.is_none());
        // Two fit, whatever their values.
        assert!(first_per_key(&wide, &["a", "b"], 1, &[false, true])?.is_some());
        Ok(())
    }

    #[test]
    fn encodings_round_trip() {
        for v in [i64::MIN, -5, 0, 7, i64::MAX] {
            assert_eq!(from_ordered_i64(ordered_i64(v)), v);
        }
        for v in [f64::NEG_INFINITY, -2.5, -0.0, 0.0, 1e-300, 72.5, f64::INFINITY] {
            assert_eq!(from_ordered_f64(ordered_f64(v)).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn full_range_columns_are_rebuilt_exactly() -> Result<()> {
        // Two full-range columns use all 128 bits.
        let frame = df!("a" => [i64::MAX, i64::MIN, 0, i64::MIN], "b" => [1i64, i64::MAX, -1, i64::MIN])?;
        let first = first_per_key(&frame, &["a", "b"], 1, &[false, true])?;
        // By `a`, and within it `b` descending: the greatest `b` of each `a`.
        assert_eq!(first, Some(df!("a" => [i64::MIN, 0, i64::MAX], "b" => [i64::MAX, -1, 1])?));
        Ok(())
    }

    #[test]
    fn encodings_keep_order() {
        let ints = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        assert!(ints.windows(2).all(|w| ordered_i64(w[0]) < ordered_i64(w[1])));
        let floats = [f64::NEG_INFINITY, -2.5, -0.0, 0.0, 1e-300, 72.5, f64::INFINITY];
        assert!(floats.windows(2).all(|w| ordered_f64(w[0]) < ordered_f64(w[1])));
    }
}
