//! The parts of an app's state that grow with its history (issue 15), kept in the compact form a
//! snapshot stores them in: where each release and build is in the log, and which source releases
//! were promoted into an env. `state` folds into them, `decide` and `snapshot::needed` look
//! things up in them, and `snapshot` copies their bytes in and out without decoding them, so
//! that loading and saving a snapshot costs the same at 1k events as at 20k.
//!
//! - [`ReleaseSeqs`]: an env's release sequences, as varint deltas (a byte or two per release);
//!   read from the end, where the releases commands go back to are.
//! - [`BuildSeqs`]: build id → sequence, and [`ImageBuilds`]: image → the build a deploy of it
//!   takes (only where that is not the image's implicit build), each as sorted fixed-size records
//!   searched in place, plus the entries set since they were loaded.
//! - [`Promoted`]: per source env, one bit per version.
//!
//! Each equals another holding the same entries, whatever its layout (a proptest checks each
//! against a plain model, and its encoding round-trips).

use crate::names::{BuildId, EnvName, ImageRef, ReleaseVersion};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

/// Appends `value` as a LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The varint at `*at` in `bytes`, moving `*at` past it; `None` when it is cut or too long.
pub(crate) fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

/// `len` bytes at `*at`, moving `*at` past them.
pub(crate) fn take<'a>(bytes: &'a [u8], at: &mut usize, len: u64) -> Option<&'a [u8]> {
    let end = at.checked_add(usize::try_from(len).ok()?)?;
    let taken = bytes.get(*at..end)?;
    *at = end;
    Some(taken)
}

/// The log sequence of the commit that made each of an env's releases, in version order
/// (version `n` is entry `n - 1`): each as its difference from the one before, a varint.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ReleaseSeqs {
    deltas: Vec<u8>,
    len: u64,
    last: u64,
}

impl ReleaseSeqs {
    /// Records the next release's sequence. (Sequences only grow in a log; any other still
    /// round-trips, as a long wrapped difference.)
    pub fn push(&mut self, seq: u64) {
        put_varint(&mut self.deltas, seq.wrapping_sub(self.last));
        self.last = seq;
        self.len += 1;
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The sequence of release `version`: read back from the last one, since the releases
    /// commands name are mostly recent (a rollback's previous one, the last healthy one).
    pub fn get(&self, version: ReleaseVersion) -> Option<u64> {
        let back = self.len.checked_sub(version.get())?;
        let mut seq = self.last;
        let mut end = self.deltas.len();
        for _ in 0..back {
            let start = self.deltas[..end.checked_sub(1)?]
                .iter()
                .rposition(|b| *b < 0x80)
                .map_or(0, |i| i + 1);
            let delta = varint(&self.deltas[start..end], &mut 0)?;
            seq = seq.wrapping_sub(delta);
            end = start;
        }
        Some(seq)
    }

    /// Every sequence, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let mut at = 0;
        let mut seq = 0u64;
        std::iter::from_fn(move || {
            let delta = varint(&self.deltas, &mut at)?;
            seq = seq.wrapping_add(delta);
            Some(seq)
        })
        .take(usize::try_from(self.len).unwrap_or(usize::MAX))
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.len);
        put_varint(out, self.last);
        put_varint(out, self.deltas.len() as u64);
        out.extend_from_slice(&self.deltas);
    }

    /// The bytes are copied, not walked: a snapshot is checked (CRC, format, app, the log's
    /// hash at its sequence) before its state is used, and a damaged index only makes `get` miss.
    pub(crate) fn decode(bytes: &[u8], at: &mut usize) -> Option<Self> {
        let len = varint(bytes, at)?;
        let last = varint(bytes, at)?;
        let size = varint(bytes, at)?;
        let deltas = take(bytes, at, size)?.to_vec();
        Some(ReleaseSeqs { deltas, len, last })
    }
}

impl fmt::Debug for ReleaseSeqs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A build id's 12 hex digits as the 6 bytes they spell (same order as the ids).
fn build_key(id: &BuildId) -> [u8; 6] {
    let hex = id.as_str().as_bytes();
    let digit = |b: u8| match b {
        b'0'..=b'9' => b - b'0',
        _ => b - b'a' + 10,
    };
    std::array::from_fn(|i| digit(hex[2 * i]) << 4 | digit(hex[2 * i + 1]))
}

fn build_id(key: &[u8; 6]) -> BuildId {
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    hex.parse().expect("6 bytes spell a build id")
}

/// A map from 6-byte keys (build ids, as [`build_key`] spells them) to `V`-byte values: records
/// of key and value sorted by key, searched in place, plus the entries set since they were
/// loaded (`None`: removed), merged into the records when encoded.
#[derive(Clone, Default)]
struct Records<const V: usize> {
    records: Arc<[u8]>,
    added: BTreeMap<[u8; 6], Option<[u8; V]>>,
}

impl<const V: usize> Records<V> {
    const SIZE: usize = 6 + V;

    /// Where `key` is in the records (`Ok`), or where it would go (`Err`).
    fn find(&self, key: &[u8; 6]) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.records.len() / Self::SIZE);
        while low < high {
            let mid = (low + high) / 2;
            match self.records[mid * Self::SIZE..mid * Self::SIZE + 6].cmp(key) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    fn get(&self, key: &[u8; 6]) -> Option<[u8; V]> {
        if let Some(value) = self.added.get(key) {
            return *value;
        }
        let i = self.find(key).ok()?;
        self.records[i * Self::SIZE + 6..(i + 1) * Self::SIZE]
            .try_into()
            .ok()
    }

    fn set(&mut self, key: [u8; 6], value: Option<[u8; V]>) {
        self.added.insert(key, value);
    }

    /// Every (key, value), by key: the records, but where an entry set since replaces them.
    fn entries(&self) -> impl Iterator<Item = ([u8; 6], [u8; V])> + '_ {
        let mut records = self
            .records
            .chunks_exact(Self::SIZE)
            .map(|r| {
                let key: [u8; 6] = r[..6].try_into().expect("6 bytes");
                let value: [u8; V] = r[6..].try_into().expect("V bytes");
                (key, value)
            })
            .peekable();
        let mut added = self.added.iter().map(|(k, v)| (*k, *v)).peekable();
        std::iter::from_fn(move || loop {
            let (set_key, set_value) = match (records.peek(), added.peek()) {
                (Some(r), Some(a)) if r.0 < a.0 => return records.next(),
                (_, Some(_)) => added.next()?,
                (Some(_), None) => return records.next(),
                (None, None) => return None,
            };
            if records.peek().is_some_and(|r| r.0 == set_key) {
                records.next();
            }
            if let Some(value) = set_value {
                return Some((set_key, value));
            }
        })
    }

    /// The records with the entries set since merged in: the runs of records between them are
    /// copied whole, so saving after a command costs a copy, not a walk of every record.
    fn encode(&self, out: &mut Vec<u8>) {
        let found: Vec<_> = self.added.keys().map(|key| self.find(key)).collect();
        let mut count = self.records.len() / Self::SIZE;
        for (at, value) in found.iter().zip(self.added.values()) {
            match (at, value) {
                (Ok(_), None) => count -= 1,
                (Err(_), Some(_)) => count += 1,
                _ => {}
            }
        }
        put_varint(out, count as u64);
        let mut copied = 0;
        for ((key, value), at) in self.added.iter().zip(found) {
            let (at, next) = match at {
                Ok(i) => (i, i + 1),
                Err(i) => (i, i),
            };
            out.extend_from_slice(&self.records[copied * Self::SIZE..at * Self::SIZE]);
            copied = next;
            if let Some(value) = value {
                out.extend_from_slice(key);
                out.extend_from_slice(value);
            }
        }
        out.extend_from_slice(&self.records[copied * Self::SIZE..]);
    }

    /// Copied, not walked (see [`ReleaseSeqs::decode`]).
    fn decode(bytes: &[u8], at: &mut usize) -> Option<Self> {
        let count = varint(bytes, at)?;
        let records = take(bytes, at, count.checked_mul(Self::SIZE as u64)?)?;
        Some(Records {
            records: records.into(),
            added: BTreeMap::new(),
        })
    }
}

impl<const V: usize> PartialEq for Records<V> {
    fn eq(&self, other: &Self) -> bool {
        self.entries().eq(other.entries())
    }
}

impl<const V: usize> Eq for Records<V> {}

/// The log sequence of the commit that first held each of an app's builds: 6 bytes of id and 8
/// of sequence (little-endian) per build.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct BuildSeqs(Records<8>);

impl BuildSeqs {
    pub fn get(&self, id: &BuildId) -> Option<u64> {
        self.0.get(&build_key(id)).map(u64::from_le_bytes)
    }

    pub fn contains_key(&self, id: &BuildId) -> bool {
        self.get(id).is_some()
    }

    /// Records `id` at `seq` unless it is recorded already (a build is where it first was).
    pub fn insert_first(&mut self, id: &BuildId, seq: u64) {
        if !self.contains_key(id) {
            self.0.set(build_key(id), Some(seq.to_le_bytes()));
        }
    }

    /// Every (build, sequence), by id.
    pub fn iter(&self) -> impl Iterator<Item = (BuildId, u64)> + '_ {
        self.0
            .entries()
            .map(|(key, seq)| (build_id(&key), u64::from_le_bytes(seq)))
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out)
    }

    pub(crate) fn decode(bytes: &[u8], at: &mut usize) -> Option<Self> {
        Records::decode(bytes, at).map(BuildSeqs)
    }
}

impl fmt::Debug for BuildSeqs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The build `deploy --image` deploys for each image that has one other than its own implicit
/// build: 6 bytes of the image's key and 6 of the build's id per image. An image's key is the id
/// of its implicit build ([`ImageRef::build_id`]): two images that shared one would already share
/// that build, so keying by it conflates nothing the build ids do not.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ImageBuilds(Records<6>);

impl ImageBuilds {
    pub fn get(&self, image: &ImageRef) -> Option<BuildId> {
        self.0
            .get(&build_key(&image.build_id()))
            .map(|id| build_id(&id))
    }

    pub fn insert(&mut self, image: &ImageRef, build: &BuildId) {
        self.0
            .set(build_key(&image.build_id()), Some(build_key(build)));
    }

    pub fn remove(&mut self, image: &ImageRef) {
        self.0.set(build_key(&image.build_id()), None);
    }

    /// Every (image's key, build), by key.
    pub fn iter(&self) -> impl Iterator<Item = (BuildId, BuildId)> + '_ {
        self.0
            .entries()
            .map(|(image, build)| (build_id(&image), build_id(&build)))
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out)
    }

    pub(crate) fn decode(bytes: &[u8], at: &mut usize) -> Option<Self> {
        Records::decode(bytes, at).map(ImageBuilds)
    }
}

impl fmt::Debug for ImageBuilds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Versions past this many beyond a source env's bitmap are kept one by one: a version no log
/// of real releases reaches does not make a bitmap of its size.
const MAX_GROWTH_BITS: u64 = 1 << 16;

/// The source releases (env, version) promoted into an env: per source env, bit `n - 1` of a
/// bitmap for version `n` (a bit per release, not a name and a number per promotion).
#[derive(Clone, Default)]
pub struct Promoted {
    bits: BTreeMap<EnvName, Vec<u8>>,
    /// Versions far past their env's bitmap.
    sparse: BTreeSet<(EnvName, ReleaseVersion)>,
}

impl Promoted {
    pub fn insert(&mut self, env: EnvName, version: ReleaseVersion) {
        let bit = version.get() - 1;
        let bits = self.bits.entry(env.clone()).or_default();
        let byte = bit / 8;
        if byte >= bits.len() as u64 + MAX_GROWTH_BITS / 8 {
            self.sparse.insert((env, version));
            return;
        }
        let byte = byte as usize;
        if byte >= bits.len() {
            bits.resize(byte + 1, 0);
        }
        bits[byte] |= 1 << (bit % 8);
    }

    pub fn contains(&self, env: &EnvName, version: ReleaseVersion) -> bool {
        let bit = version.get() - 1;
        let set = |bits: &Vec<u8>| {
            usize::try_from(bit / 8)
                .ok()
                .and_then(|byte| bits.get(byte))
                .is_some_and(|b| b & (1 << (bit % 8)) != 0)
        };
        self.bits.get(env).is_some_and(set) || self.sparse.contains(&(env.clone(), version))
    }

    /// Every (source env, version), sorted.
    pub fn iter(&self) -> impl Iterator<Item = (EnvName, ReleaseVersion)> + '_ {
        let dense = self.bits.iter().flat_map(|(env, bits)| {
            bits.iter().enumerate().flat_map(move |(byte, b)| {
                (0..8)
                    .filter(move |i| b & (1 << i) != 0)
                    .filter_map(move |i| ReleaseVersion::new(byte as u64 * 8 + i + 1))
                    .map(move |v| (env.clone(), v))
            })
        });
        dense
            .collect::<BTreeSet<_>>()
            .into_iter()
            .chain(self.sparse.iter().cloned())
            .collect::<BTreeSet<_>>()
            .into_iter()
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.bits.len() as u64);
        for (env, bits) in &self.bits {
            put_varint(out, env.as_str().len() as u64);
            out.extend_from_slice(env.as_str().as_bytes());
            put_varint(out, bits.len() as u64);
            out.extend_from_slice(bits);
        }
        put_varint(out, self.sparse.len() as u64);
        for (env, version) in &self.sparse {
            put_varint(out, env.as_str().len() as u64);
            out.extend_from_slice(env.as_str().as_bytes());
            put_varint(out, version.get());
        }
    }

    pub(crate) fn decode(bytes: &[u8], at: &mut usize) -> Option<Self> {
        let env = |at: &mut usize| -> Option<EnvName> {
            let len = varint(bytes, at)?;
            std::str::from_utf8(take(bytes, at, len)?)
                .ok()?
                .parse()
                .ok()
        };
        let mut promoted = Promoted::default();
        for _ in 0..varint(bytes, at)? {
            let env = env(at)?;
            let len = varint(bytes, at)?;
            promoted.bits.insert(env, take(bytes, at, len)?.to_vec());
        }
        for _ in 0..varint(bytes, at)? {
            let env = env(at)?;
            let version = ReleaseVersion::new(varint(bytes, at)?)?;
            promoted.sparse.insert((env, version));
        }
        Some(promoted)
    }
}

impl PartialEq for Promoted {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for Promoted {}

impl fmt::Debug for Promoted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    //! Each index against a plain model (a `Vec`, a `BTreeMap`, a `BTreeSet`), through any mix of
    //! additions and encode/decode round-trips; arbitrary bytes never panic a decoder.
    use super::*;
    use proptest::prelude::*;

    fn round_trip<T>(
        value: &T,
        encode: impl Fn(&T, &mut Vec<u8>),
        decode: impl Fn(&[u8], &mut usize) -> Option<T>,
    ) -> T {
        let mut bytes = vec![7];
        encode(value, &mut bytes);
        let mut at = 1;
        let decoded = decode(&bytes, &mut at).expect("what was encoded decodes");
        assert_eq!(at, bytes.len(), "decoding reads all it encoded");
        decoded
    }

    fn version(n: u64) -> ReleaseVersion {
        ReleaseVersion::new(n).unwrap()
    }

    fn build(n: u16) -> BuildId {
        format!("{:012x}", u64::from(n) * 0x9e37_79b9)
            .parse()
            .unwrap()
    }

    #[derive(Debug, Clone)]
    enum Op<T> {
        Add(T),
        /// Encode and decode the index as it stands (a snapshot saved and loaded).
        RoundTrip,
    }

    fn ops<T: std::fmt::Debug + Clone>(
        add: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Vec<Op<T>>> {
        proptest::collection::vec(
            prop_oneof![8 => add.prop_map(Op::Add), 1 => Just(Op::RoundTrip)],
            0..200,
        )
    }

    proptest! {
        #[test]
        fn release_seqs_are_the_sequences_pushed(ops in ops(prop_oneof![
            8 => 0..5u64,
            1 => any::<u64>(),
        ])) {
            let (mut seqs, mut model) = (ReleaseSeqs::default(), Vec::<u64>::new());
            let mut last = 0u64;
            for op in ops {
                match op {
                    // Mostly growing by a little, as a log's sequences do; now and then anything.
                    Op::Add(step) => {
                        last = if step > 4 { step } else { last.wrapping_add(step) };
                        seqs.push(last);
                        model.push(last);
                    }
                    Op::RoundTrip => {
                        seqs = round_trip(&seqs, ReleaseSeqs::encode, ReleaseSeqs::decode);
                    }
                }
            }
            prop_assert_eq!(seqs.len(), model.len() as u64);
            prop_assert_eq!(seqs.iter().collect::<Vec<_>>(), model.clone());
            for (i, seq) in model.iter().enumerate() {
                prop_assert_eq!(seqs.get(version(i as u64 + 1)), Some(*seq));
            }
            prop_assert_eq!(seqs.get(version(model.len() as u64 + 1)), None);
        }

        #[test]
        fn build_seqs_keep_the_first_sequence_of_each_build(
            ops in ops((0..60u16, any::<u64>())),
        ) {
            let (mut seqs, mut model) = (BuildSeqs::default(), BTreeMap::<BuildId, u64>::new());
            for op in ops {
                match op {
                    Op::Add((n, seq)) => {
                        seqs.insert_first(&build(n), seq);
                        model.entry(build(n)).or_insert(seq);
                    }
                    Op::RoundTrip => {
                        seqs = round_trip(&seqs, BuildSeqs::encode, BuildSeqs::decode);
                    }
                }
            }
            prop_assert_eq!(seqs.iter().collect::<BTreeMap<_, _>>(), model.clone());
            for n in 0..60 {
                prop_assert_eq!(seqs.get(&build(n)), model.get(&build(n)).copied());
            }
            // However it is laid out (records or added), it equals the same entries added anew.
            let mut fresh = BuildSeqs::default();
            for (id, seq) in &model {
                fresh.insert_first(id, *seq);
            }
            prop_assert_eq!(&seqs, &fresh);
        }

        #[test]
        fn image_builds_hold_the_build_last_set_for_each_image(
            ops in ops((0..40u16, proptest::option::of(0..60u16))),
        ) {
            let image = |n: u16| -> ImageRef {
                format!("registry.example/api@sha256:{n:064x}").parse().unwrap()
            };
            let (mut builds, mut model) = (ImageBuilds::default(), BTreeMap::new());
            for op in ops {
                match op {
                    Op::Add((n, Some(b))) => {
                        builds.insert(&image(n), &build(b));
                        model.insert(n, build(b));
                    }
                    Op::Add((n, None)) => {
                        builds.remove(&image(n));
                        model.remove(&n);
                    }
                    Op::RoundTrip => {
                        builds = round_trip(&builds, ImageBuilds::encode, ImageBuilds::decode);
                    }
                }
            }
            for n in 0..40 {
                prop_assert_eq!(builds.get(&image(n)), model.get(&n).cloned());
            }
            let mut fresh = ImageBuilds::default();
            for (n, b) in &model {
                fresh.insert(&image(*n), b);
            }
            prop_assert_eq!(&builds, &fresh);
            prop_assert_eq!(builds.iter().count(), model.len());
        }

        #[test]
        fn promoted_holds_the_releases_inserted(ops in ops((0..3usize, prop_oneof![
            20 => 1..300u64,
            1 => 1..u64::MAX,
        ]))) {
            let envs: [EnvName; 3] = ["dev", "staging", "production"].map(|e| e.parse().unwrap());
            let (mut promoted, mut model) = (Promoted::default(), BTreeSet::new());
            for op in ops {
                match op {
                    Op::Add((env, n)) => {
                        promoted.insert(envs[env].clone(), version(n));
                        model.insert((envs[env].clone(), version(n)));
                    }
                    Op::RoundTrip => {
                        promoted = round_trip(&promoted, Promoted::encode, Promoted::decode);
                    }
                }
            }
            prop_assert_eq!(promoted.iter().collect::<BTreeSet<_>>(), model.clone());
            for (env, v) in &model {
                prop_assert!(promoted.contains(env, *v));
            }
            for env in &envs {
                for n in 1..310 {
                    prop_assert_eq!(promoted.contains(env, version(n)), model.contains(&(env.clone(), version(n))));
                }
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_a_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(seqs) = ReleaseSeqs::decode(&bytes, &mut 0) {
                for n in 1..10 {
                    let _ = seqs.get(version(n));
                }
                let _ = seqs.iter().count();
            }
            if let Some(seqs) = BuildSeqs::decode(&bytes, &mut 0) {
                let _ = seqs.get(&build(1));
                let _ = seqs.iter().count();
            }
            if let Some(builds) = ImageBuilds::decode(&bytes, &mut 0) {
                let _ = builds.get(&format!("registry.example/api@sha256:{:064x}", 1).parse().unwrap());
                let _ = builds.iter().count();
            }
            if let Some(promoted) = Promoted::decode(&bytes, &mut 0) {
                let _ = promoted.contains(&"dev".parse().unwrap(), version(3));
            }
            let mut snapshot = crate::snapshot::FORMAT.to_le_bytes().to_vec();
            snapshot.extend_from_slice(&bytes);
            let _ = crate::snapshot::decode(&"api".parse().unwrap(), &snapshot);
        }
    }
}
