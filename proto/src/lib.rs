//! The wire schema of hoist's events: prost types generated from `proto/hoist/v1/events.proto`,
//! and the one piece of hand-written decoding the log needs: splitting a stored [`v1::Commit`]
//! into the exact bytes of each envelope, because the per-app hash chain is computed over the
//! bytes as stored (re-encoding a decoded message would drop fields this version does not know).
//!
//! Nothing else lives here: domain types and validation are in `hoist-engine`.

pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/hoist.v1.rs"));
}

use prost::bytes::Buf;
use prost::encoding::{decode_key, decode_varint, WireType};
pub use prost::{DecodeError, Message};

/// A stored commit whose framing is broken (truncated, or a wire type the schema never uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitError(pub String);

impl std::fmt::Display for CommitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed commit: {}", self.0)
    }
}

impl std::error::Error for CommitError {}

impl From<DecodeError> for CommitError {
    fn from(e: DecodeError) -> Self {
        CommitError(e.to_string())
    }
}

/// Splits an encoded `Commit` into the raw bytes of each envelope, in order.
/// Fields other than `events` (none today) are skipped, as protobuf readers must.
pub fn split_commit(mut buf: &[u8]) -> Result<Vec<&[u8]>, CommitError> {
    let mut envelopes = Vec::with_capacity(1);
    while buf.has_remaining() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match wire_type {
            WireType::LengthDelimited => {
                let len = usize::try_from(decode_varint(&mut buf)?)
                    .map_err(|_| CommitError("length overflows usize".into()))?;
                if len > buf.len() {
                    return Err(CommitError("truncated".into()));
                }
                let (field, rest) = buf.split_at(len);
                if tag == 1 {
                    envelopes.push(field);
                }
                buf = rest;
            }
            WireType::Varint => {
                decode_varint(&mut buf)?;
            }
            WireType::SixtyFourBit => skip(&mut buf, 8)?,
            WireType::ThirtyTwoBit => skip(&mut buf, 4)?,
            WireType::StartGroup | WireType::EndGroup => {
                return Err(CommitError("groups are not used in hoist's schema".into()))
            }
        }
    }
    Ok(envelopes)
}

fn skip(buf: &mut &[u8], n: usize) -> Result<(), CommitError> {
    if buf.len() < n {
        return Err(CommitError("truncated".into()));
    }
    buf.advance(n);
    Ok(())
}

/// Encodes envelopes as one `Commit` whose envelope bytes are exactly the ones given.
pub fn join_commit(envelopes: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(envelopes.iter().map(|e| e.len() + 6).sum());
    for envelope in envelopes {
        prost::encoding::bytes::encode(1, envelope, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn envelope(app: &str, reason: &str) -> v1::Envelope {
        v1::Envelope {
            id: vec![7; 16],
            app: app.into(),
            env: "staging".into(),
            at_unix_micros: 1_700_000_000_000_000,
            actor: "ana@example.com".into(),
            body: Some(v1::envelope::Body::EnvLocked(v1::EnvLocked {
                reason: reason.into(),
            })),
            ..Default::default()
        }
    }

    proptest! {
        #[test]
        fn split_of_join_returns_the_same_envelope_bytes(apps in proptest::collection::vec("[a-z]{1,20}", 0..5), reason in ".{0,40}") {
            let encoded: Vec<Vec<u8>> = apps.iter().map(|a| envelope(a, &reason).encode_to_vec()).collect();
            let commit = join_commit(&encoded);
            let split = split_commit(&commit).unwrap();
            prop_assert_eq!(split, encoded.iter().map(Vec::as_slice).collect::<Vec<_>>());
            // The hand-written join is the same bytes prost writes for the message.
            let decoded = v1::Commit::decode(commit.as_slice()).unwrap();
            prop_assert_eq!(decoded.encode_to_vec(), commit);
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = split_commit(&bytes);
            let _ = v1::Commit::decode(bytes.as_slice());
            let _ = v1::Envelope::decode(bytes.as_slice());
        }
    }

    #[test]
    fn an_unknown_body_decodes_as_no_body() {
        // Field 99 is a body case this version does not know: it must be skipped, not fail.
        let mut bytes = envelope("api", "x").encode_to_vec();
        bytes.clear();
        prost::encoding::string::encode(2, &"api".to_string(), &mut bytes);
        prost::encoding::bytes::encode(99, &vec![1u8, 2, 3], &mut bytes);
        let decoded = v1::Envelope::decode(bytes.as_slice()).unwrap();
        assert_eq!(decoded.app, "api");
        assert!(decoded.body.is_none());
    }
}
