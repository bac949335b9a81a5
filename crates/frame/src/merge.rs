//! The copy-on-write MERGE planner.
//!
//! A Delta MERGE without deletion vectors rewrites every data file that holds a changed row.
//! This module decides, from the candidate target rows (each tagged with the file it came
//! from) and the resolved changes, which rows to write and which files to remove. It does no
//! IO: the caller reads the candidate files and commits the plan in one Delta commit.

use polars::prelude::*;

use crate::Result;

/// Name of the column that tags each target row with the data file it was read from.
pub const FILE_COLUMN: &str = "__file";

/// What one MERGE writes and removes (the default plan changes nothing).
#[derive(Debug, Clone, Default)]
pub struct MergePlan {
    /// Rows to write: surviving rows of rewritten files, then the upserted rows.
    pub rows_to_add: DataFrame,
    /// Data files (as tagged in [`FILE_COLUMN`]) that the commit removes.
    pub files_to_remove: Vec<String>,
    /// Upserted rows whose key was not in the target.
    pub inserted: usize,
    /// Upserted rows that replace a target row with the same key.
    pub updated: usize,
    /// Target rows removed by a delete.
    pub deleted: usize,
}

impl MergePlan {
    /// True when the merge changes nothing.
    pub fn is_empty(&self) -> bool {
        self.files_to_remove.is_empty() && self.rows_to_add.height() == 0
    }
}

/// Plans a copy-on-write MERGE.
///
/// - `target`: the candidate target rows with [`FILE_COLUMN`]; it must contain every target row
///   whose key appears in `upserts` or `deletes` (other rows may be present and are ignored
///   unless their file is rewritten).
/// - `upserts`: rows that must be in the table afterwards, at most one per key (already
///   resolved: a row that must not overwrite its target is simply not here).
/// - `deletes`: keys whose rows must be gone afterwards.
///
/// ```
/// use fitlake_frame::polars::prelude::*;
/// use fitlake_frame::{plan_merge, FILE_COLUMN};
///
/// let target = df!("id" => [1i64, 2, 3], "v" => ["a", "b", "c"], FILE_COLUMN => ["f1", "f1", "f2"])?;
/// let upserts = df!("id" => [2i64, 4], "v" => ["B", "d"])?;
/// let deletes = df!("id" => [3i64])?;
/// let plan = plan_merge(&target, &upserts, Some(&deletes), &["id"])?;
/// assert_eq!((plan.inserted, plan.updated, plan.deleted), (1, 1, 1));
/// // f1 is rewritten (row 1 kept, row 2 updated), f2 dropped; row 3 is gone.
/// let mut removed = plan.files_to_remove.clone();
/// removed.sort();
/// assert_eq!(removed, ["f1", "f2"]);
/// assert_eq!(plan.rows_to_add.height(), 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn plan_merge(
    target: &DataFrame,
    upserts: &DataFrame,
    deletes: Option<&DataFrame>,
    keys: &[&str],
) -> Result<MergePlan> {
    if target.height() == 0 {
        // Nothing stored to replace or delete (a first load): every upsert is an insert.
        return Ok(MergePlan { rows_to_add: upserts.clone(), inserted: upserts.height(), ..Default::default() });
    }
    let key_cols: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    let upsert_keys = upserts.clone().lazy().select(key_cols.clone());
    let changed_keys = match deletes {
        Some(d) => concat([upsert_keys, d.clone().lazy().select(key_cols.clone())], UnionArgs::default())?,
        None => upsert_keys,
    }
    .unique(None, UniqueKeepStrategy::Any);

    let semi = |left: LazyFrame, right: LazyFrame, how: JoinType| {
        left.join(right, key_cols.clone(), key_cols.clone(), JoinArgs::new(how))
    };

    let touched = semi(target.clone().lazy(), changed_keys.clone(), JoinType::Semi).collect()?;
    let files_to_remove: Vec<String> =
        touched.column(FILE_COLUMN)?.str()?.unique()?.sort(false).iter().flatten().map(str::to_string).collect();

    // The stored keys an upsert or delete names are those of `touched` (few): the joins below
    // hash them rather than every key of the target.
    let touched_keys = touched.clone().lazy().select(key_cols.clone()).unique(None, UniqueKeepStrategy::Any);
    let updated = semi(upserts.clone().lazy(), touched_keys.clone(), JoinType::Semi).collect()?.height();
    let deleted = match deletes {
        Some(d) => {
            semi(touched.clone().lazy(), d.clone().lazy().select(key_cols.clone()), JoinType::Semi).collect()?.height()
        }
        None => 0,
    };

    let columns: Vec<Expr> = upserts.get_column_names().into_iter().map(|c| col(c.clone())).collect();
    let removed_files = Series::new(FILE_COLUMN.into(), files_to_remove.clone());
    let survivors = semi(
        target.clone().lazy().filter(col(FILE_COLUMN).is_in(lit(removed_files).implode(false), false)),
        touched_keys,
        JoinType::Anti,
    )
    .select(columns.clone());
    let rows_to_add = concat([survivors, upserts.clone().lazy().select(columns)], UnionArgs::default())?.collect()?;

    Ok(MergePlan { rows_to_add, files_to_remove, inserted: upserts.height() - updated, updated, deleted })
}

/// The rows of `source` whose key is not in `target_keys`: an insert-only MERGE's new rows.
///
/// ```
/// # use fitlake_frame::polars::prelude::*;
/// let new = fitlake_frame::anti_join(&df!("id" => [1i64, 2])?, &df!("id" => [2i64])?, &["id"])?;
/// assert_eq!(new.column("id")?.i64()?.to_vec(), [Some(1)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn anti_join(source: &DataFrame, target_keys: &DataFrame, keys: &[&str]) -> Result<DataFrame> {
    key_join(source, target_keys, keys, JoinType::Anti)
}

/// The rows of `source` whose key is in `target_keys` (the stored rows a new batch names).
///
/// ```
/// # use fitlake_frame::polars::prelude::*;
/// let shared = fitlake_frame::semi_join(&df!("id" => [1i64, 2])?, &df!("id" => [2i64])?, &["id"])?;
/// assert_eq!(shared.column("id")?.i64()?.to_vec(), [Some(2)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn semi_join(source: &DataFrame, target_keys: &DataFrame, keys: &[&str]) -> Result<DataFrame> {
    key_join(source, target_keys, keys, JoinType::Semi)
}

/// A semi or anti join of `source` with the `keys` of `target_keys`: on one [`packed_key`]
/// where the keys are integers that pack (a hash join on one `i64` column, where Polars
/// row-encodes several key columns into bytes first and hashes those), else on the columns.
fn key_join(source: &DataFrame, target_keys: &DataFrame, keys: &[&str], how: JoinType) -> Result<DataFrame> {
    if source.height() == 0 || target_keys.height() == 0 {
        // Nothing to match (a first load compares its rows with no stored ones): the answer
        // without hashing the other side's keys.
        for key in keys {
            source.column(key)?;
            target_keys.column(key)?;
        }
        let none_match = target_keys.height() == 0;
        return Ok(match how {
            JoinType::Semi if none_match => source.clear(),
            _ => source.clone(),
        });
    }
    if source.height().saturating_mul(SMALLER_SIDE) < target_keys.height() {
        // Polars hashes the right side of a semi or anti join: when it is the larger one, its
        // keys that `source` has (few) are found first, with `source` hashed instead.
        let targets = target_keys.select(keys.iter().copied())?;
        let named = key_join_as_given(&targets, &source.select(keys.iter().copied())?, keys, JoinType::Semi)?;
        return key_join_as_given(source, &named, keys, how);
    }
    key_join_as_given(source, target_keys, keys, how)
}

/// [`key_join`] without choosing the side to hash (`target_keys`, the right side, may hold a key
/// many times).
fn key_join_as_given(source: &DataFrame, target_keys: &DataFrame, keys: &[&str], how: JoinType) -> Result<DataFrame> {
    if let Some(found) = few_keys_membership(source, target_keys, keys)? {
        return matching(source, found, how);
    }
    if keys.len() > 1 && !source.schema().contains(PACKED_KEY) {
        if let Some(packed) = packed_key(&[source, target_keys], keys, PACKED_KEY)? {
            let key_of = |frame: &DataFrame| -> Result<Column> {
                Ok(frame.clone().lazy().select([packed.key.clone()]).collect()?.column(PACKED_KEY)?.clone())
            };
            let (source_key, target_key) = (key_of(source)?, key_of(target_keys)?);
            if let Some(found) = sorted_membership(source_key.i64()?, target_key.i64()?) {
                return matching(source, found, how);
            }
            let columns: Vec<Expr> = source.get_column_names().into_iter().map(|c| col(c.clone())).collect();
            let on = [col(PACKED_KEY)];
            let mut keyed = source.clone();
            keyed.with_column(source_key)?;
            return Ok(keyed
                .lazy()
                .join(DataFrame::new(target_key.len(), vec![target_key])?.lazy(), on.clone(), on, JoinArgs::new(how))
                .select(columns)
                .collect()?);
        }
    }
    let key_cols: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    Ok(source
        .clone()
        .lazy()
        .join(target_keys.clone().lazy().select(key_cols.clone()), key_cols.clone(), key_cols, JoinArgs::new(how))
        .collect()?)
}

/// Per `group` value, the span (smallest to largest) of `range` values that some new rows have:
/// the only stored rows that can share a key `(group, .., range, ..)` with a new one are those
/// [`within`](Spans::within) these spans (a device's stored readings at the times its new
/// readings cover). Built once for a batch of new rows and applied to each stored file. Rows
/// with a null in either column share nothing.
/// ```
/// # use fitlake_frame::polars::prelude::*;
/// use fitlake_frame::merge::Spans;
/// let new = df!("device_id" => [1i64, 1, 2], "time" => [10i64, 20, 5])?;
/// let stored = df!("device_id" => [1i64, 1, 2, 3], "time" => [15i64, 25, 5, 15])?;
/// let spans = Spans::of(&new, "device_id", "time")?.expect("integer columns");
/// let near = spans.within(&stored)?;
/// assert_eq!(near.column("time")?.i64()?.to_vec(), [Some(15), Some(5)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Spans {
    group: String,
    range: String,
    lookup: SpanLookup,
}

/// Spans by group value: in a vector indexed from the smallest group value when the values are
/// close together (device and user ids usually are), else in a hash map.
#[derive(Debug, Clone)]
enum SpanLookup {
    Dense { first: i64, spans: Vec<(i64, i64)> },
    Hashed(PlHashMap<i64, (i64, i64)>),
}

/// The widest range of group values [`Spans`] indexes directly: this many slots, or as many as
/// the new rows (16 bytes a slot, the size of a row's two key values), whichever is more.
const DENSE_GROUPS: i64 = 1 << 16;

/// A span that holds nothing.
const EMPTY_SPAN: (i64, i64) = (i64::MAX, i64::MIN);

impl Spans {
    /// The spans of `new`'s rows; `None` when `group` or `range` is not an integer, date or time
    /// column.
    pub fn of(new: &DataFrame, group: &str, range: &str) -> Result<Option<Spans>> {
        let (Some(groups), Some(at)) = (integers(new, group)?, integers(new, range)?) else {
            return Ok(None);
        };
        let pairs = || groups.iter().zip(at.iter()).filter_map(|(g, t)| Some((g?, t?)));
        let widen = |span: &mut (i64, i64), t: i64| *span = (span.0.min(t), span.1.max(t));
        let lookup = match (groups.min(), groups.max()) {
            (Some(low), Some(high))
                if high.checked_sub(low).is_some_and(|width| width < DENSE_GROUPS.max(new.height() as i64)) =>
            {
                let mut spans = vec![EMPTY_SPAN; (high - low + 1) as usize];
                pairs().for_each(|(g, t)| widen(&mut spans[(g - low) as usize], t));
                SpanLookup::Dense { first: low, spans }
            }
            _ => {
                let mut spans = PlHashMap::new();
                pairs().for_each(|(g, t)| widen(spans.entry(g).or_insert(EMPTY_SPAN), t));
                SpanLookup::Hashed(spans)
            }
        };
        Ok(Some(Spans { group: group.to_string(), range: range.to_string(), lookup }))
    }

    /// The rows of `stored` whose `range` value lies within the span of their `group` value;
    /// `stored` whole when one of the two is not an integer, date or time column there.
    pub fn within(&self, stored: &DataFrame) -> Result<DataFrame> {
        let (Some(groups), Some(at)) = (integers(stored, &self.group)?, integers(stored, &self.range)?) else {
            return Ok(stored.clone());
        };
        let span = |g: i64| match &self.lookup {
            SpanLookup::Dense { first, spans } => {
                g.checked_sub(*first).and_then(|i| spans.get(usize::try_from(i).ok()?)).copied()
            }
            SpanLookup::Hashed(spans) => spans.get(&g).copied(),
        };
        let keep: BooleanChunked = groups
            .iter()
            .zip(at.iter())
            .map(|(g, t)| match (g.and_then(span), t) {
                (Some((first, last)), Some(t)) => first <= t && t <= last,
                _ => false,
            })
            .collect();
        Ok(stored.filter(&keep)?)
    }
}

/// The keys of a frame whose rows are in key order (ascending, the first key foremost), as
/// integers: two such frames' rows are matched by one walk over both, with no packing, hashing
/// or sorting. A group's deduplicated readings come out of their dedupe in key order, and the
/// `heart_rate` files written from them keep it, so the stored rows sharing a key with a group
/// are found file by file in one pass each.
/// ```
/// # use fitlake_frame::polars::prelude::*;
/// use fitlake_frame::merge::SortedKeys;
/// let new = df!("device_id" => [1i64, 1, 2], "time" => [10i64, 20, 5])?;
/// let stored = df!("device_id" => [1i64, 1, 2, 3], "time" => [15i64, 20, 5, 15])?;
/// let keys = ["device_id", "time"];
/// let new = SortedKeys::of(&new, &keys)?.expect("integer keys in order");
/// let shared = new.shared_by(&stored)?.expect("integer keys in order");
/// assert_eq!(shared.column("time")?.i64()?.to_vec(), [Some(20), Some(5)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SortedKeys {
    names: Vec<String>,
    types: Vec<DataType>,
    columns: Vec<Int64Chunked>,
}

impl SortedKeys {
    /// `frame`'s `keys`; `None` unless each is an integer, date or time column without nulls and
    /// the rows are in key order.
    pub fn of(frame: &DataFrame, keys: &[&str]) -> Result<Option<SortedKeys>> {
        let mut types = Vec::with_capacity(keys.len());
        let mut columns = Vec::with_capacity(keys.len());
        for key in keys {
            let column = frame.column(key)?;
            if column.null_count() > 0 {
                return Ok(None);
            }
            let Some(values) = integers(frame, key)? else { return Ok(None) };
            types.push(column.dtype().clone());
            columns.push(values);
        }
        let sorted = SortedKeys { names: keys.iter().map(|k| k.to_string()).collect(), types, columns };
        let slices = sorted.slices()?;
        let in_order = (1..frame.height()).all(|row| compare_rows(&slices, row - 1, &slices, row).is_le());
        Ok(in_order.then_some(sorted))
    }

    /// The rows of `other` whose key these keys hold, in their order; `None` unless `other`'s
    /// keys are columns of the same types without nulls, in key order.
    pub fn shared_by(&self, other: &DataFrame) -> Result<Option<DataFrame>> {
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        let Some(theirs) = SortedKeys::of(other, &names)? else { return Ok(None) };
        if theirs.types != self.types {
            return Ok(None);
        }
        let held = held_in_order((&theirs.slices()?, other.height()), &self.slices()?);
        Ok(Some(other.filter(&held)?))
    }

    /// The key columns' values (one chunk each without nulls: [`integers`] rechunks, `of`
    /// refuses nulls).
    fn slices(&self) -> Result<Vec<&[i64]>> {
        Ok(self.columns.iter().map(|c| c.cont_slice()).collect::<PolarsResult<_>>()?)
    }
}

/// For each of the `rows` (key columns and row count, rows in key order), whether `keys` (the
/// same key columns, rows in key order) hold it: one walk down both, no hash table.
fn held_in_order((rows, count): (&[&[i64]], usize), keys: &[&[i64]]) -> BooleanChunked {
    let len = keys.first().map_or(0, |c| c.len());
    let mut at = 0;
    let held = (0..count).map(|row| {
        while at < len && compare_rows(keys, at, rows, row).is_lt() {
            at += 1;
        }
        at < len && compare_rows(keys, at, rows, row).is_eq()
    });
    BooleanChunked::from_iter_values(PlSmallStr::EMPTY, held)
}

/// Row `i` of `a` against row `j` of `b`, key by key.
fn compare_rows(a: &[&[i64]], i: usize, b: &[&[i64]], j: usize) -> std::cmp::Ordering {
    a.iter().zip(b).map(|(a, b)| a[i].cmp(&b[j])).find(|o| o.is_ne()).unwrap_or(std::cmp::Ordering::Equal)
}

/// A column of `frame` as `i64`s in one chunk ([`as_integers`]).
fn integers(frame: &DataFrame, name: &str) -> Result<Option<Int64Chunked>> {
    Ok(as_integers(frame.column(name)?)?.map(|values| values.rechunk().into_owned()))
}

/// The rows of `source` a semi join keeps (`found`), or an anti join (the others).
fn matching(source: &DataFrame, found: BooleanChunked, how: JoinType) -> Result<DataFrame> {
    Ok(source.filter(&if how == JoinType::Anti { !found } else { found })?)
}

/// Most rows the other side of [`key_join`] may have for its keys to be looked up in hash sets.
const FEW_KEYS: usize = 1024;

/// For each row of `source`, whether `target_keys` (at most [`FEW_KEYS`] rows) holds its key:
/// the few keys in hash sets, the source's key columns walked once, a row's first key checked
/// before the whole key (no packing, no Polars join over the large side: a group's 2 M winners
/// against the 7 stored readings they share a key with). `None` when `target_keys` has more
/// rows, or a key column is not an integer, date or time column of the same type on both sides
/// without nulls.
fn few_keys_membership(source: &DataFrame, target_keys: &DataFrame, keys: &[&str]) -> Result<Option<BooleanChunked>> {
    if target_keys.height() > FEW_KEYS || keys.is_empty() {
        return Ok(None);
    }
    let mut columns = Vec::with_capacity(keys.len());
    for key in keys {
        let (from, to) = (source.column(key)?, target_keys.column(key)?);
        if from.dtype() != to.dtype() || from.null_count() > 0 || to.null_count() > 0 {
            return Ok(None);
        }
        match (integers(source, key)?, integers(target_keys, key)?) {
            (Some(from), Some(to)) => columns.push((from, to)),
            _ => return Ok(None),
        }
    }
    let from: Vec<&[i64]> = columns.iter().map(|(from, _)| from.cont_slice()).collect::<PolarsResult<_>>()?;
    let to: Vec<&[i64]> = columns.iter().map(|(_, to)| to.cont_slice()).collect::<PolarsResult<_>>()?;
    let firsts: PlHashSet<i64> = to[0].iter().copied().collect();
    let wholes: PlHashSet<Vec<i64>> =
        (0..target_keys.height()).map(|row| to.iter().map(|c| c[row]).collect()).collect();
    let mut key = Vec::with_capacity(keys.len());
    let found = (0..source.height()).map(|row| {
        firsts.contains(&from[0][row]) && {
            key.clear();
            key.extend(from.iter().map(|c| c[row]));
            wholes.contains(key.as_slice())
        }
    });
    Ok(Some(BooleanChunked::from_iter_values(PlSmallStr::EMPTY, found)))
}

/// For each value of `source`, whether `target` holds it, found in one pass down both: `None`
/// unless both are in ascending order without nulls. Rows that a table keeps in key order
/// (`heart_rate`'s, by device and time) and new rows deduplicated into key order are matched
/// so without building a hash table of either.
fn sorted_membership(source: &Int64Chunked, target: &Int64Chunked) -> Option<BooleanChunked> {
    if source.null_count() > 0 || target.null_count() > 0 {
        return None;
    }
    let (source, target) = (source.rechunk(), target.rechunk());
    let (source, target) = (source.cont_slice().ok()?, target.cont_slice().ok()?);
    if !source.is_sorted() || !target.is_sorted() {
        return None;
    }
    Some(held_in_order((&[source], source.len()), &[target]))
}

/// An integer, date or time column's values as `i64` (its physical values); `None` for a
/// column of another type.
fn as_integers(column: &Column) -> Result<Option<Int64Chunked>> {
    if !matches!(column.dtype().to_physical(), DataType::Int64 | DataType::Int32) {
        return Ok(None);
    }
    let values = column.as_materialized_series().to_physical_repr().cast(&DataType::Int64)?;
    Ok(Some(values.i64()?.clone()))
}

/// How many times larger than `source` the other side of [`key_join`] must be for the join to
/// hash `source` instead.
const SMALLER_SIDE: usize = 4;

/// The column [`key_join`] joins on when the keys pack.
const PACKED_KEY: &str = "__packed_key";

/// Several integer key columns as one `i64` join key (see [`packed_key`]).
#[derive(Debug, Clone)]
pub struct PackedKey {
    /// The key: each column less its smallest value, times the number of values the columns
    /// after it span, summed. One to one for rows [`inside`](PackedKey::inside).
    pub key: Expr,
    /// True for a row whose every key column is within the range the frames' values span.
    pub inside: Expr,
}

/// `keys` (integer, date or time columns of the same type in every frame) packed into one
/// `i64` column `name` over the ranges their values span in `frames`; `None` when a column is
/// of another type or all null, or the ranges' sizes multiplied pass 2^62. A row with a null
/// key column gets a null key (it matches nothing, as in a join on the columns). A row outside
/// the ranges (of a frame not among `frames`) must be filtered out with
/// [`inside`](PackedKey::inside) first: its key could equal another's.
/// ```
/// # use fitlake_frame::polars::prelude::*;
/// let sessions = df!("device_id" => [5i64, 7], "bucket" => [100i64, 102])?;
/// let packed = fitlake_frame::merge::packed_key(&[&sessions], &["device_id", "bucket"], "key")?.expect("integers pack");
/// let keys = sessions.lazy().select([packed.key]).collect()?;
/// // Devices 5..=7, buckets 100..=102: (device - 5) * 3 + (bucket - 100).
/// assert_eq!(keys.column("key")?.i64()?.to_vec(), [Some(0), Some(8)]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn packed_key(frames: &[&DataFrame], keys: &[&str], name: &str) -> Result<Option<PackedKey>> {
    let mut ranges = Vec::with_capacity(keys.len());
    for key in keys {
        let mut dtype: Option<&DataType> = None;
        let mut range: Option<(i64, i64)> = None;
        for frame in frames {
            let column = frame.column(key)?;
            let Some(values) = as_integers(column)? else { return Ok(None) };
            if dtype.is_some_and(|d| d != column.dtype()) {
                return Ok(None);
            }
            dtype = Some(column.dtype());
            if let Some((lo, hi)) = values.min().zip(values.max()) {
                range = Some(range.map_or((lo, hi), |(first, last)| (first.min(lo), last.max(hi))));
            }
        }
        let Some(range) = range else { return Ok(None) };
        ranges.push(range);
    }
    // The last column varies fastest.
    let mut stride: i64 = 1;
    let mut key: Option<Expr> = None;
    let mut inside: Option<Expr> = None;
    for (name, &(first, last)) in keys.iter().zip(&ranges).rev() {
        let value = || col(*name).cast(DataType::Int64);
        let term = (value() - lit(first)) * lit(stride);
        key = Some(match key {
            Some(k) => term + k,
            None => term,
        });
        let within = value().gt_eq(lit(first)).and(value().lt_eq(lit(last)));
        inside = Some(match inside {
            Some(i) => within.and(i),
            None => within,
        });
        let count = last.checked_sub(first).and_then(|n| n.checked_add(1));
        stride = match count.and_then(|n| stride.checked_mul(n)) {
            Some(s) if s <= 1 << 62 => s,
            _ => return Ok(None),
        };
    }
    Ok(key.zip(inside).map(|(key, inside)| PackedKey { key: key.alias(name), inside }))
}

/// Plans the MERGE that makes the table hold exactly `desired` (for tables recomputed whole):
/// rows of `desired` that differ from `target` in any column are upserted, target keys absent
/// from `desired` are deleted. Nulls compare equal.
pub fn plan_sync(target: &DataFrame, desired: &DataFrame, keys: &[&str]) -> Result<MergePlan> {
    let (changed, gone) = sync_changes(target, desired, keys)?;
    plan_merge(target, &changed, Some(&gone), keys)
}

/// What makes `target` hold exactly `desired`: the rows of `desired` that differ from
/// `target` in any column (to upsert) and the keys of `target` absent from `desired` (to
/// delete). Nulls compare equal. With these, [`plan_merge`] can plan against a larger target
/// (every row of the files that hold `target`'s rows).
pub fn sync_changes(target: &DataFrame, desired: &DataFrame, keys: &[&str]) -> Result<(DataFrame, DataFrame)> {
    let all: Vec<Expr> = desired.get_column_names().into_iter().map(|c| col(c.clone())).collect();
    let key_cols: Vec<Expr> = keys.iter().map(|k| col(*k)).collect();
    if target.height() == 0 {
        // Nothing stored: everything desired is a change, nothing is gone.
        return Ok((desired.clone(), desired.clear().lazy().select(key_cols).collect()?));
    }
    let anti = JoinArgs { nulls_equal: true, ..JoinArgs::new(JoinType::Anti) };
    let changed = desired
        .clone()
        .lazy()
        .join(target.clone().lazy().select(all.clone()), all.clone(), all, anti.clone())
        .collect()?;
    let gone = target
        .clone()
        .lazy()
        .select(key_cols.clone())
        .join(desired.clone().lazy().select(key_cols.clone()), key_cols.clone(), key_cols, anti)
        .collect()?;
    Ok((changed, gone))
}

/// A selector of columns by exact name (for `unique` subsets).
pub fn by_names(names: &[&str]) -> Selector {
    Selector::ByName { names: names.iter().map(|n| PlSmallStr::from(*n)).collect(), strict: true }
}
