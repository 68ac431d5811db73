//! Disjoint intervals of pages with a count each: the data structure of the pin bookkeeping.
//!
//! An [`IntervalMap`] stores, in place of a count per page, the maximal intervals of pages that
//! have the same non-zero count, in ascending order. Pinning or unpinning a range of pages
//! rewrites only the intervals that overlap or touch the range: they are split where the range
//! starts or ends inside them, the count of the covered parts changes, the uncovered parts
//! (gaps) of the range become intervals of their own, parts whose count drops to zero go, and
//! neighbours that end up with equal counts merge. The work is proportional to the number of
//! intervals involved (usually none or one), not to the number of pages.
//!
//! The intervals are kept in a two-level sorted vector: chunks of at most `CAP` (32) intervals
//! in a vector of chunks. Finding a page is a binary search over the chunks and one inside a
//! chunk; inserting or removing an interval moves at most `CAP` entries of its chunk (a chunk
//! that grows past `CAP` is split in halves, one that shrinks below `CAP / 4` is merged into a
//! neighbour). So an update costs O(log n + CAP + k) for `n` intervals of which `k` are
//! involved (plus, when a chunk splits or merges, a move of the O(n / CAP) chunk headers), and
//! no allocation in the steady state: a chunk keeps its capacity when it becomes empty. (A `BTreeMap` would cost several times more for the usual handful of intervals, and
//! allocates a node for its first entry and frees it with its last, which every create + free
//! pair of one handle would pay; a single sorted vector would move O(n) entries per update.)

use core::iter::Peekable;
use core::ops::Range;
use core::slice;

/// A count kept per interval of pages.
pub(crate) trait Count: Copy + Eq {
    /// `self + d`, saturating (callers check for overflow before adding).
    fn plus(self, d: Self) -> Self;
    /// `self - d` (saturating), or `None` if that leaves nothing: the pages leave the map.
    fn minus(self, d: Self) -> Option<Self>;
}

impl Count for u32 {
    fn plus(self, d: u32) -> u32 {
        self.saturating_add(d)
    }
    fn minus(self, d: u32) -> Option<u32> {
        Some(self.saturating_sub(d)).filter(|&c| c > 0)
    }
}

/// The pages `start..end` (page numbers), all with the count `val`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interval<V> {
    /// The first page.
    pub(crate) start: usize,
    /// One past the last page.
    pub(crate) end: usize,
    /// The count of every page of the interval.
    pub(crate) val: V,
}

impl<V> Interval<V> {
    /// The pages of the interval as a range.
    pub(crate) fn range(&self) -> Range<usize> {
        self.start..self.end
    }
}

/// The default number of intervals per chunk.
const CHUNK: usize = 32;

/// A count per page, stored as disjoint intervals of equal counts in chunks of at most `CAP`.
///
/// Invariants: the intervals (all chunks in order) are non-empty, sorted and disjoint; two
/// intervals that touch (`a.end == b.start`) have different counts, so the representation is
/// unique; pages not in any interval have no count; `pages` is the total length of the
/// intervals; no chunk holds more than `CAP` intervals, and only a sole chunk may be empty.
#[derive(Debug)]
pub(crate) struct IntervalMap<V, const CAP: usize = CHUNK> {
    chunks: Vec<Vec<Interval<V>>>,
    pages: usize,
    /// Reused buffer for the intervals that replace the ones an update touches.
    scratch: Vec<Interval<V>>,
}

/// The place of an interval, or where one would be inserted: a chunk and an index in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    chunk: usize,
    idx: usize,
}

/// The intervals that overlap or touch a range: `len` intervals from `pos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pos: Pos,
    len: usize,
}

impl<V: Count, const CAP: usize> Default for IntervalMap<V, CAP> {
    fn default() -> Self {
        IntervalMap::new()
    }
}

impl<V: Count, const CAP: usize> IntervalMap<V, CAP> {
    /// An empty map.
    pub(crate) const fn new() -> Self {
        IntervalMap {
            chunks: Vec::new(),
            pages: 0,
            scratch: Vec::new(),
        }
    }

    /// The number of pages with a count (the total length of the intervals).
    pub(crate) fn pages(&self) -> usize {
        self.pages
    }

    /// The intervals, in ascending order.
    pub(crate) fn iter(&self) -> Iter<'_, V> {
        self.iter_from(Pos { chunk: 0, idx: 0 })
    }

    /// Remove every interval, keeping one chunk's allocation for reuse.
    pub(crate) fn clear(&mut self) {
        self.chunks.truncate(1);
        if let Some(c) = self.chunks.first_mut() {
            c.clear();
        }
        self.pages = 0;
    }

    /// The count of `page`, if it has one (tests only).
    #[cfg(test)]
    pub(crate) fn get(&self, page: usize) -> Option<V> {
        self.overlapping(page..page.saturating_add(1))
            .next()
            .map(|iv| iv.val)
    }

    /// The number of pages of `r` that have a count (tests only).
    #[cfg(test)]
    pub(crate) fn covered(&self, r: Range<usize>) -> usize {
        self.overlapping(r.clone())
            .map(|iv| iv.end.min(r.end) - iv.start.max(r.start))
            .sum()
    }

    /// The place of the first interval that ends at or after page `key`, or the end of the
    /// last chunk if there is none.
    #[inline(always)]
    fn locate(&self, key: usize) -> Pos {
        let before = |iv: &Interval<V>| iv.end < key;
        let chunk = match self.chunks.len() {
            0 | 1 => 0,
            n => {
                let c = self
                    .chunks
                    .partition_point(|c| c.last().is_some_and(before));
                if c == n {
                    let idx = self.chunks.get(n - 1).map_or(0, Vec::len);
                    return Pos { chunk: n - 1, idx };
                }
                c
            }
        };
        let idx = self
            .chunks
            .get(chunk)
            .map_or(0, |c| c.partition_point(before));
        Pos { chunk, idx }
    }

    /// The intervals from `pos` on, in ascending order.
    #[inline(always)]
    fn iter_from(&self, pos: Pos) -> Iter<'_, V> {
        let cur = self.chunks.get(pos.chunk).and_then(|c| c.get(pos.idx..));
        let rest = self.chunks.get(pos.chunk + 1..);
        Iter {
            cur: cur.unwrap_or_default().iter(),
            rest: rest.unwrap_or_default().iter(),
        }
    }

    /// The intervals that share at least one page with `r`, in ascending order.
    #[cfg(test)]
    pub(crate) fn overlapping(&self, r: Range<usize>) -> impl Iterator<Item = &Interval<V>> {
        // An interval shares a page with `r` if it ends after `r.start` (at `r.start + 1` or
        // later; page numbers are far below `usize::MAX`) and starts before `r.end`.
        self.iter_from(self.locate(r.start.saturating_add(1)))
            .take_while(move |iv| iv.start < r.end)
    }

    /// `r` cut into consecutive pieces of equal count, gaps (`None`) included.
    pub(crate) fn segments(&self, r: Range<usize>) -> Segments<'_, V> {
        Segments {
            ivs: self
                .iter_from(self.locate(r.start.saturating_add(1)))
                .peekable(),
            at: r.start,
            end: r.end,
        }
    }

    /// The intervals that overlap or touch `r`: the ones an update of `r` may change or merge.
    #[inline(always)]
    pub(crate) fn window(&self, r: &Range<usize>) -> Window {
        let pos = self.locate(r.start);
        let Some(first) = self.chunks.get(pos.chunk) else {
            return Window { pos, len: 0 };
        };
        let near = |c: &[Interval<V>]| c.iter().take_while(|iv| iv.start <= r.end).count();
        let rest = first.get(pos.idx..).unwrap_or_default();
        let mut len = near(rest);
        if len == rest.len() {
            // The window may go on in the following chunks.
            for c in self.chunks.get(pos.chunk + 1..).unwrap_or_default() {
                let n = near(c);
                len += n;
                if n < c.len() {
                    break;
                }
            }
        }
        Window { pos, len }
    }

    /// `true` if the window `w` of `r` is exactly one interval covering `r`.
    #[inline(always)]
    pub(crate) fn is_exact(&self, w: Window, r: &Range<usize>) -> bool {
        w.len == 1
            && self
                .chunks
                .get(w.pos.chunk)
                .and_then(|c| c.get(w.pos.idx))
                .is_some_and(|iv| iv.start == r.start && iv.end == r.end)
    }

    /// The intervals of the window `w`, in ascending order.
    #[inline(always)]
    pub(crate) fn in_window(&self, w: Window) -> core::iter::Take<Iter<'_, V>> {
        if w.len == 0 {
            let none = Iter {
                cur: [].iter(),
                rest: [].iter(),
            };
            return none.take(0);
        }
        self.iter_from(w.pos).take(w.len)
    }

    /// Replace the count `c` of every page of `r` (`None` for a page without a count) by
    /// `f(c)`, splitting, merging and removing intervals as needed. `f` is called once per
    /// piece of `r` (as [`IntervalMap::segments`] cuts it) and must not depend on which piece.
    #[inline]
    pub(crate) fn update(&mut self, r: Range<usize>, f: impl FnMut(Option<V>) -> Option<V>) {
        if r.start < r.end {
            let w = self.window(&r);
            self.update_window(w, r, f);
        }
    }

    /// [`IntervalMap::update`] with `w`, the [`IntervalMap::window`] of `r` (non-empty) found
    /// since the last change of the map.
    #[inline(always)]
    pub(crate) fn update_window(
        &mut self,
        w: Window,
        r: Range<usize>,
        mut f: impl FnMut(Option<V>) -> Option<V>,
    ) {
        let (s, e) = (r.start, r.end);
        debug_assert!(s < e, "rsm-host: empty update");
        // The common cases first: nothing around `r` (a pin of pages no one else pins), and
        // exactly the interval `r` (the unpin of such a pin).
        if w.len == 0 {
            if let Some(val) = f(None) {
                self.insert(
                    w.pos,
                    Interval {
                        start: s,
                        end: e,
                        val,
                    },
                );
                self.pages += e - s;
            }
            return;
        }
        if w.len == 1 {
            let at = self.chunks.get_mut(w.pos.chunk);
            if let Some(iv) = at.and_then(|c| c.get_mut(w.pos.idx)) {
                if iv.start == s && iv.end == e {
                    match f(Some(iv.val)) {
                        Some(v) => iv.val = v,
                        None => {
                            self.remove(w.pos);
                            self.pages -= e - s;
                        }
                    }
                    return;
                }
            }
        }
        self.update_general(w, r, f);
    }

    /// [`IntervalMap::update_window`] when intervals must be split or merged.
    #[inline(never)]
    fn update_general(
        &mut self,
        w: Window,
        r: Range<usize>,
        mut f: impl FnMut(Option<V>) -> Option<V>,
    ) {
        let (s, e) = (r.start, r.end);
        let mut out = core::mem::take(&mut self.scratch);
        out.clear();
        let (mut before, mut after) = (0usize, 0usize);
        let mut at = s;
        for iv in self.in_window(w) {
            if at < iv.start {
                // A gap inside `r` (`at >= s` and `iv.start <= e`).
                if let Some(v) = f(None) {
                    push(&mut out, at, iv.start, v);
                    after += iv.start - at;
                }
            }
            if iv.start < s {
                push(&mut out, iv.start, iv.end.min(s), iv.val);
            }
            let (a, b) = (iv.start.max(s), iv.end.min(e));
            if a < b {
                before += b - a;
                if let Some(v) = f(Some(iv.val)) {
                    push(&mut out, a, b, v);
                    after += b - a;
                }
            }
            if iv.end > e {
                push(&mut out, iv.start.max(e), iv.end, iv.val);
            }
            at = at.max(iv.end);
        }
        if at < e {
            if let Some(v) = f(None) {
                push(&mut out, at, e, v);
                after += e - at;
            }
        }
        self.pages = self.pages - before + after;
        self.replace(w, &out);
        self.scratch = out;
    }

    /// A new, empty chunk that takes `CAP + 1` intervals without growing.
    fn new_chunk() -> Vec<Interval<V>> {
        Vec::with_capacity(CAP + 1)
    }

    /// Insert `iv` at `pos`.
    #[inline(always)]
    fn insert(&mut self, pos: Pos, iv: Interval<V>) {
        if self.chunks.is_empty() {
            self.chunks.push(Self::new_chunk());
        }
        let Some(c) = self.chunks.get_mut(pos.chunk) else {
            debug_assert!(false, "rsm-host: insert past the last chunk");
            return;
        };
        if pos.idx >= c.len() {
            c.push(iv);
        } else {
            c.insert(pos.idx, iv);
        }
        if c.len() > CAP {
            self.split(pos.chunk);
        }
    }

    /// Remove the interval at `pos`.
    #[inline(always)]
    fn remove(&mut self, pos: Pos) {
        let Some(c) = self.chunks.get_mut(pos.chunk) else {
            return;
        };
        if pos.idx + 1 == c.len() {
            c.pop();
        } else if pos.idx < c.len() {
            c.remove(pos.idx);
        }
        if Self::underfull(c.len()) && self.chunks.len() > 1 {
            self.merge(pos.chunk);
        }
    }

    /// Replace the intervals of the window `w` by `new`.
    fn replace(&mut self, w: Window, new: &[Interval<V>]) {
        let Pos { chunk, idx } = w.pos;
        // Remove the old intervals: the rest of `chunk` from `idx`, then the leading ones of
        // the following chunks; drop the chunks this empties.
        let mut left = w.len;
        if let Some(c) = self.chunks.get_mut(chunk) {
            let n = left.min(c.len().saturating_sub(idx));
            c.drain(idx..idx + n);
            left -= n;
        }
        let mut end = chunk + 1;
        while left > 0 {
            let Some(c) = self.chunks.get_mut(end) else {
                break;
            };
            let n = left.min(c.len());
            c.drain(..n);
            left -= n;
            if !c.is_empty() {
                break;
            }
            end += 1;
        }
        debug_assert_eq!(left, 0, "rsm-host: window past the last interval");
        if end > chunk + 1 {
            self.chunks.drain(chunk + 1..end);
        }
        // Insert the new ones where the old ones began, then restore the chunk sizes.
        if self.chunks.is_empty() {
            self.chunks.push(Self::new_chunk());
        }
        if let Some(c) = self.chunks.get_mut(chunk) {
            c.splice(idx..idx, new.iter().copied());
        }
        if chunk + 1 < self.chunks.len() {
            self.merge(chunk + 1);
        }
        self.split(chunk);
        self.merge(chunk);
    }

    /// Split the chunk `c` into chunks of `CAP / 2` intervals if it holds more than `CAP`.
    #[inline(never)]
    fn split(&mut self, c: usize) {
        let Some(chunk) = self.chunks.get_mut(c) else {
            return;
        };
        if chunk.len() <= CAP {
            return;
        }
        let half = (CAP / 2).max(1);
        let pieces: Vec<Vec<Interval<V>>> = chunk
            .get(half..)
            .unwrap_or_default()
            .chunks(half)
            .map(|p| {
                let mut v = Self::new_chunk();
                v.extend_from_slice(p);
                v
            })
            .collect();
        chunk.truncate(half);
        self.chunks.splice(c + 1..c + 1, pieces);
    }

    /// `true` if a chunk of `len` intervals should be merged into a neighbour: it is empty or
    /// holds fewer than `CAP / 4`.
    #[inline(always)]
    fn underfull(len: usize) -> bool {
        len == 0 || len < CAP / 4
    }

    /// Merge the chunk `c` into a neighbour if it is [underfull](IntervalMap::underfull) and
    /// both fit in one chunk. A sole chunk stays, even empty.
    #[inline(never)]
    fn merge(&mut self, c: usize) {
        let len = |i: usize| self.chunks.get(i).map(Vec::len);
        let Some(n) = len(c) else {
            return;
        };
        if !Self::underfull(n) {
            return;
        }
        let next = len(c + 1).map(|l| (c + 1, l));
        let prev = c.checked_sub(1).and_then(|p| len(p).map(|l| (p, l)));
        let other = match (prev, next) {
            (Some(p), Some(q)) => Some(if p.1 <= q.1 { p } else { q }),
            (p, q) => p.or(q),
        };
        let Some((o, ol)) = other else {
            return;
        };
        if n + ol > CAP {
            return;
        }
        let (lo, hi) = (c.min(o), c.max(o));
        let tail = self.chunks.remove(hi);
        if let Some(head) = self.chunks.get_mut(lo) {
            head.extend_from_slice(&tail);
        }
    }

    /// Check the invariants (tests only).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let mut total = 0;
        let mut prev: Option<Interval<V>> = None;
        for c in &self.chunks {
            assert!(c.len() <= CAP, "chunk over capacity");
            assert!(!c.is_empty() || self.chunks.len() == 1, "empty chunk");
        }
        for iv in self.iter() {
            assert!(iv.start < iv.end, "empty interval at {}", iv.start);
            total += iv.end - iv.start;
            if let Some(p) = prev {
                assert!(p.end <= iv.start, "unsorted or overlapping");
                assert!(
                    p.end < iv.start || p.val != iv.val,
                    "touching intervals with equal counts"
                );
            }
            prev = Some(*iv);
        }
        assert_eq!(total, self.pages, "page total");
    }

    /// The number of chunks (tests only).
    #[cfg(test)]
    pub(crate) fn chunks(&self) -> usize {
        self.chunks.len()
    }
}

/// Append `start..end` with count `val` to `out`, merging it into the last interval if that
/// ends at `start` with the same count.
fn push<V: Count>(out: &mut Vec<Interval<V>>, start: usize, end: usize, val: V) {
    if let Some(last) = out.last_mut() {
        if last.end == start && last.val == val {
            last.end = end;
            return;
        }
    }
    out.push(Interval { start, end, val });
}

/// The intervals of an [`IntervalMap`] from some place on, in ascending order.
#[derive(Debug, Clone)]
pub(crate) struct Iter<'a, V> {
    cur: slice::Iter<'a, Interval<V>>,
    rest: slice::Iter<'a, Vec<Interval<V>>>,
}

impl<'a, V> Iterator for Iter<'a, V> {
    type Item = &'a Interval<V>;

    fn next(&mut self) -> Option<&'a Interval<V>> {
        loop {
            if let Some(iv) = self.cur.next() {
                return Some(iv);
            }
            self.cur = self.rest.next()?.iter();
        }
    }
}

/// The pieces of a range of pages, in ascending order, each with its count (`None`: a gap).
/// Made by [`IntervalMap::segments`].
#[derive(Debug, Clone)]
pub(crate) struct Segments<'a, V> {
    ivs: Peekable<Iter<'a, V>>,
    at: usize,
    end: usize,
}

impl<V: Copy> Iterator for Segments<'_, V> {
    type Item = (Range<usize>, Option<V>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.end {
            return None;
        }
        let start = self.at;
        match self.ivs.peek().copied() {
            Some(iv) if iv.start <= start => {
                let stop = iv.end.min(self.end);
                self.ivs.next();
                self.at = stop;
                Some((start..stop, Some(iv.val)))
            }
            Some(iv) if iv.start < self.end => {
                self.at = iv.start;
                Some((start..iv.start, None))
            }
            _ => {
                self.at = self.end;
                Some((start..self.end, None))
            }
        }
    }
}

/// The maximal runs of consecutive pages among `segments` whose count satisfies `pred`, in
/// ascending order.
pub(crate) fn runs<'a, V: Copy>(
    mut segments: Segments<'a, V>,
    mut pred: impl FnMut(Option<V>) -> bool + 'a,
) -> impl Iterator<Item = Range<usize>> + 'a {
    core::iter::from_fn(move || {
        let mut run: Option<Range<usize>> = None;
        for (r, v) in segments.by_ref() {
            if pred(v) {
                // Segments are consecutive, so a matching one extends the current run.
                run = Some(run.map_or(r.clone(), |run| run.start..r.end));
            } else if run.is_some() {
                break;
            }
        }
        run
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ivs(m: &IntervalMap<u32>) -> Vec<(usize, usize, u32)> {
        m.iter().map(|iv| (iv.start, iv.end, iv.val)).collect()
    }

    fn add(m: &mut IntervalMap<u32>, r: Range<usize>) {
        m.update(r, |c| Some(c.map_or(1, |c| c + 1)));
        m.check();
    }

    fn sub(m: &mut IntervalMap<u32>, r: Range<usize>) {
        m.update(r, |c| c.and_then(|c| c.minus(1)));
        m.check();
    }

    #[test]
    fn splits_and_merges() {
        let mut m = IntervalMap::new();
        add(&mut m, 10..20);
        assert_eq!(ivs(&m), [(10, 20, 1)]);
        add(&mut m, 15..25);
        assert_eq!(ivs(&m), [(10, 15, 1), (15, 20, 2), (20, 25, 1)]);
        assert_eq!(m.pages(), 15);
        add(&mut m, 5..30);
        assert_eq!(
            ivs(&m),
            [
                (5, 10, 1),
                (10, 15, 2),
                (15, 20, 3),
                (20, 25, 2),
                (25, 30, 1)
            ]
        );
        sub(&mut m, 15..25);
        assert_eq!(ivs(&m), [(5, 10, 1), (10, 20, 2), (20, 30, 1)]);
        sub(&mut m, 5..30);
        assert_eq!(ivs(&m), [(10, 20, 1)]);
        assert_eq!(m.pages(), 10);
        // Touching intervals with the same count merge; with different counts they do not.
        add(&mut m, 20..22);
        assert_eq!(ivs(&m), [(10, 22, 1)]);
        add(&mut m, 8..10);
        assert_eq!(ivs(&m), [(8, 22, 1)]);
        add(&mut m, 22..23);
        add(&mut m, 22..23);
        assert_eq!(ivs(&m), [(8, 22, 1), (22, 23, 2)]);
        sub(&mut m, 8..23);
        assert_eq!(ivs(&m), [(22, 23, 1)]);
        sub(&mut m, 22..23);
        assert_eq!(ivs(&m), []);
        assert_eq!(m.pages(), 0);
    }

    #[test]
    fn gaps_between_intervals_are_filled() {
        let mut m = IntervalMap::new();
        for r in [2..4, 6..7, 9..12] {
            add(&mut m, r);
        }
        assert_eq!(m.covered(0..20), 6);
        assert_eq!(m.covered(3..10), 3);
        let segs: Vec<_> = m.segments(3..10).collect();
        assert_eq!(
            segs,
            [
                (3..4, Some(1)),
                (4..6, None),
                (6..7, Some(1)),
                (7..9, None),
                (9..10, Some(1))
            ]
        );
        let gaps: Vec<_> = runs(m.segments(0..13), |c| c.is_none()).collect();
        assert_eq!(gaps, [0..2, 4..6, 7..9, 12..13]);
        add(&mut m, 0..13);
        assert_eq!(
            ivs(&m),
            [
                (0, 2, 1),
                (2, 4, 2),
                (4, 6, 1),
                (6, 7, 2),
                (7, 9, 1),
                (9, 12, 2),
                (12, 13, 1)
            ]
        );
        sub(&mut m, 0..13);
        assert_eq!(ivs(&m), [(2, 4, 1), (6, 7, 1), (9, 12, 1)]);
        assert_eq!(m.get(6), Some(1));
        assert_eq!(m.get(7), None);
    }

    #[test]
    fn runs_are_maximal_and_ordered() {
        let mut m = IntervalMap::new();
        add(&mut m, 3..5);
        add(&mut m, 8..9);
        add(&mut m, 4..5);
        // Counts: 3 → 1, 4 → 2, 8 → 1.
        let free: Vec<_> = runs(m.segments(0..12), |c| c.is_none()).collect();
        assert_eq!(free, [0..3, 5..8, 9..12]);
        let once: Vec<_> = runs(m.segments(0..12), |c| c == Some(1)).collect();
        assert_eq!(once, [3..4, 8..9]);
        let any: Vec<_> = runs(m.segments(4..12), |c| c.is_some()).collect();
        assert_eq!(any, [4..5, 8..9]);
        let all: Vec<_> = runs(m.segments(0..12), |_| true).collect();
        assert_eq!((all.len(), all.first()), (1, Some(&(0..12))));
        assert_eq!(runs(m.segments(5..5), |_| true).count(), 0);
    }

    /// Random additions and removals over `PAGES` pages on a map with chunks of `CAP`
    /// intervals, compared after every step with a count per page.
    fn against_model<const CAP: usize>(ops: &[(bool, usize, usize)]) -> Result<(), TestCaseError> {
        const PAGES: usize = 300;
        let mut m: IntervalMap<u32, CAP> = IntervalMap::new();
        let mut model = vec![0u32; PAGES];
        for &(add, start, len) in ops {
            let r = start..(start + len).min(PAGES);
            if add {
                m.update(r.clone(), |c| Some(c.map_or(1, |c| c + 1)));
                r.for_each(|p| model[p] += 1);
            } else {
                // Remove only where every page has a count, as unpin does.
                if r.clone().any(|p| model[p] == 0) {
                    continue;
                }
                m.update(r.clone(), |c| c.and_then(|c| c.minus(1)));
                r.for_each(|p| model[p] -= 1);
            }
            m.check();
            for (p, &c) in model.iter().enumerate() {
                prop_assert_eq!(m.get(p), (c > 0).then_some(c), "page {}", p);
            }
            prop_assert_eq!(m.pages(), model.iter().filter(|&&c| c > 0).count());
            // Segments and runs of a random window agree with the model too.
            let w = (start / 2)..(start / 2 + 3 * len).min(PAGES);
            let mut at = w.start;
            for (piece, v) in m.segments(w.clone()) {
                prop_assert_eq!(piece.start, at);
                prop_assert!(piece.start < piece.end);
                for p in piece.clone() {
                    prop_assert_eq!(v, (model[p] > 0).then_some(model[p]));
                }
                at = piece.end;
            }
            prop_assert_eq!(at, w.end.max(w.start));
            let free: Vec<usize> = runs(m.segments(w.clone()), |c| c.is_none())
                .flatten()
                .collect();
            let expect: Vec<usize> = w.filter(|&p| model[p] == 0).collect();
            prop_assert_eq!(free, expect);
        }
        // Back to empty: one chunk stays, keeping its allocation.
        for (p, &c) in model.iter().enumerate() {
            for _ in 0..c {
                m.update(p..p + 1, |c| c.and_then(|c| c.minus(1)));
            }
        }
        m.check();
        prop_assert_eq!(m.pages(), 0);
        prop_assert!(m.chunks() <= 1);
        Ok(())
    }

    fn map_ops() -> impl Strategy<Value = Vec<(bool, usize, usize)>> {
        proptest::collection::vec((any::<bool>(), 0..300usize, 1..24usize), 1..200)
    }

    proptest! {
        #[test]
        fn small_chunks_match_a_page_model(ops in map_ops()) {
            against_model::<4>(&ops)?;
        }

        #[test]
        fn tiny_chunks_match_a_page_model(ops in map_ops()) {
            against_model::<2>(&ops)?;
        }

        #[test]
        fn default_chunks_match_a_page_model(ops in map_ops()) {
            against_model::<CHUNK>(&ops)?;
        }
    }

    #[test]
    fn many_intervals_use_many_chunks() {
        let mut m: IntervalMap<u32> = IntervalMap::new();
        for i in 0..1000 {
            add(&mut m, 2 * i..2 * i + 1);
        }
        assert!(m.chunks() >= 1000 / CHUNK, "{} chunks", m.chunks());
        assert_eq!(m.pages(), 1000);
        // Filling the gaps merges everything into one interval, in one chunk.
        add(&mut m, 0..2000);
        sub(&mut m, 0..2000);
        assert_eq!(ivs(&m).len(), 1000);
        for i in (0..1000).rev() {
            sub(&mut m, 2 * i..2 * i + 1);
        }
        assert_eq!(m.chunks(), 1);
        assert_eq!(m.pages(), 0);
    }
}
