//! [`Endpoints`]: one cluster's endpoints, sorted, in shared chunks.
//!
//! An edge cluster may have 100,000 pods, and one of them changing must
//! cost about one pod, not the cluster. A flat list cannot: handing on a
//! copy with one endpoint replaced copies all of them. This list is a
//! sequence of chunks of about [`CHUNK`] endpoints, each chunk shared
//! (`Arc`), never changed once made. [`Endpoints::edited`] remakes only the
//! chunks the edit falls in and shares every other one with the list it
//! came from, so a copy costs a chunk and a pointer per chunk. Whoever
//! keeps work per chunk (the EDS packer keeps each chunk's encoding) can
//! tell an unchanged chunk by pointer.

use std::fmt;
use std::sync::Arc;

use super::profile::Endpoint;

/// The size chunks are made at. A chunk remade by an edit is split once
/// it holds more than twice this, and merged into the next one when it
/// holds fewer than half: so chunks stay between half and twice this,
/// except the last one. 64 keeps an edit to a few dozen endpoints copied
/// (and encoded again) and the chunk pointers of 100,000 endpoints to about
/// 1,500.
pub const CHUNK: usize = 64;

/// One chunk: endpoints in order, shared, never changed.
pub type Chunk = Arc<[Endpoint]>;

/// The endpoints of a list, in order.
pub type Iter<'a> = std::iter::FlatMap<
    std::slice::Iter<'a, Chunk>,
    std::slice::Iter<'a, Endpoint>,
    fn(&'a Chunk) -> std::slice::Iter<'a, Endpoint>,
>;

/// A cluster's endpoints in sorted order, in shared chunks. Cloning it
/// copies a pointer; equal lists compare equal however they are chunked.
#[derive(Clone, Default)]
pub struct Endpoints {
    chunks: Arc<Vec<Chunk>>,
    len: usize,
}

impl Endpoints {
    /// The endpoints of `list`, sorted.
    pub fn new(mut list: Vec<Endpoint>) -> Self {
        list.sort_unstable();
        let len = list.len();
        let mut chunks = Vec::with_capacity(len.div_ceil(CHUNK));
        split_into(list, &mut chunks);
        Self { chunks: Arc::new(chunks), len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every endpoint, in order.
    pub fn iter(&self) -> Iter<'_> {
        fn each(c: &Chunk) -> std::slice::Iter<'_, Endpoint> {
            c.iter()
        }
        self.chunks.iter().flat_map(each)
    }

    /// The chunks, in order; none is empty.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    pub fn to_vec(&self) -> Vec<Endpoint> {
        self.iter().cloned().collect()
    }

    /// Whether both are the same list (not merely equal ones): a list that
    /// was not replaced is handed on as it is.
    pub fn ptr_eq(a: &Self, b: &Self) -> bool {
        Arc::ptr_eq(&a.chunks, &b.chunks)
    }

    /// This list with `gone` removed (one occurrence each; an endpoint it
    /// lacks is ignored) and `new` inserted in order. Only the chunks they
    /// fall in are made again; the others are shared with `self`.
    pub fn edited(&self, gone: &[Endpoint], new: &[Endpoint]) -> Self {
        if gone.is_empty() && new.is_empty() {
            return self.clone();
        }
        // Each edited chunk's new contents, by index, in order.
        let mut edits: Vec<(usize, Vec<Endpoint>)> = Vec::new();
        let contents = |i: usize, edits: &mut Vec<(usize, Vec<Endpoint>)>| -> usize {
            match edits.binary_search_by_key(&i, |(j, _)| *j) {
                Ok(at) => at,
                Err(at) => {
                    let chunk = self.chunks.get(i).map_or_else(Vec::new, |c| c.to_vec());
                    edits.insert(at, (i, chunk));
                    at
                }
            }
        };
        let mut len = self.len;
        for e in gone {
            let at = contents(self.chunk_of(e), &mut edits);
            let list = &mut edits[at].1;
            if let Ok(k) = list.binary_search(e) {
                list.remove(k);
                len -= 1;
            }
        }
        for e in new {
            let at = contents(self.chunk_of(e), &mut edits);
            let list = &mut edits[at].1;
            let k = list.binary_search(e).unwrap_or_else(|k| k);
            list.insert(k, e.clone());
            len += 1;
        }

        let mut chunks = Vec::with_capacity(self.chunks.len() + edits.len());
        // An edited chunk left small is carried into the next one.
        let mut carry: Vec<Endpoint> = Vec::new();
        let mut edits = edits.into_iter().peekable();
        for i in 0..self.chunks.len().max(1) {
            let edited = edits.next_if(|(j, _)| *j == i).map(|(_, list)| list);
            match edited {
                None if carry.is_empty() => chunks.extend(self.chunks.get(i).cloned()),
                None => carry.extend(self.chunks.get(i).into_iter().flat_map(|c| c.iter().cloned())),
                Some(list) => carry.extend(list),
            }
            if carry.len() >= CHUNK / 2 {
                split_into(std::mem::take(&mut carry), &mut chunks);
            }
        }
        split_into(carry, &mut chunks);
        debug_assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), len);
        Self { chunks: Arc::new(chunks), len }
    }

    /// The chunk `e` belongs in: the last whose first endpoint is not after
    /// it (the first chunk for what sorts before every chunk).
    fn chunk_of(&self, e: &Endpoint) -> usize {
        self.chunks.partition_point(|c| c[0] <= *e).saturating_sub(1)
    }
}

/// Appends `list` (sorted) to `chunks`: as one chunk when it holds at most
/// twice [`CHUNK`], else as chunks of about [`CHUNK`]; nothing when empty.
fn split_into(list: Vec<Endpoint>, chunks: &mut Vec<Chunk>) {
    if list.is_empty() {
        return;
    }
    if list.len() <= 2 * CHUNK {
        chunks.push(list.into());
        return;
    }
    let pieces = list.len().div_ceil(CHUNK);
    let size = list.len().div_ceil(pieces);
    let mut rest = list.into_iter();
    loop {
        let piece: Vec<Endpoint> = rest.by_ref().take(size).collect();
        if piece.is_empty() {
            break;
        }
        chunks.push(piece.into());
    }
}

impl PartialEq for Endpoints {
    fn eq(&self, other: &Self) -> bool {
        Self::ptr_eq(self, other) || (self.len == other.len && self.iter().eq(other.iter()))
    }
}

impl Eq for Endpoints {}

impl PartialEq<[Endpoint]> for Endpoints {
    fn eq(&self, other: &[Endpoint]) -> bool {
        self.len == other.len() && self.iter().eq(other)
    }
}

impl<const N: usize> PartialEq<[Endpoint; N]> for Endpoints {
    fn eq(&self, other: &[Endpoint; N]) -> bool {
        *self == other[..]
    }
}

impl PartialEq<Vec<Endpoint>> for Endpoints {
    fn eq(&self, other: &Vec<Endpoint>) -> bool {
        *self == other[..]
    }
}

impl fmt::Debug for Endpoints {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Endpoint>> for Endpoints {
    fn from(list: Vec<Endpoint>) -> Self {
        Self::new(list)
    }
}

impl From<&[Endpoint]> for Endpoints {
    fn from(list: &[Endpoint]) -> Self {
        Self::new(list.to_vec())
    }
}

impl FromIterator<Endpoint> for Endpoints {
    fn from_iter<I: IntoIterator<Item = Endpoint>>(iter: I) -> Self {
        Self::new(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Endpoints {
    type Item = &'a Endpoint;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests;
