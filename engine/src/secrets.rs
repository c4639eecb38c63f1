//! Sealing of secret config values with ChaCha20-Poly1305 before they reach the log. The key is a
//! 32-byte file (hex) from `HOIST_SECRET_KEY_FILE` or the user's config dir. The config key's
//! name is the associated data, so a sealed value cannot be moved to another key unnoticed.
//!
//! Every sealed value names the key that sealed it: [`MAGIC`], the key's [`KeyId`] (a
//! fingerprint: the first 8 bytes of a SHA-256 of the key), then nonce and ciphertext. So the
//! log itself records which key a store's secrets need, on every backend and through
//! export/import, and a key is created only for a store that has no secrets yet
//! ([`SecretKey::for_sealing`]): a mistyped `HOIST_SECRET_KEY_FILE` is refused, naming the key
//! that is expected, instead of silently sealing under a new key nobody else has. Values sealed
//! before key ids (nonce and ciphertext only) are still opened, and count as secrets: a store
//! holding only those seals with a key file that exists and opens one of them.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The first bytes of a value sealed with a key id.
pub const MAGIC: [u8; 4] = *b"hsk1";
const KEY_ID_LEN: usize = 8;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = MAGIC.len() + KEY_ID_LEN;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret key file {0}: must hold 64 hex digits")]
    Malformed(PathBuf),
    #[error("secret key file {path} does not exist, and the secrets are sealed with key {expected}: point HOIST_SECRET_KEY_FILE at that key (a new key could not open them)")]
    Missing { path: PathBuf, expected: KeyId },
    #[error("secret key file {path} holds key {found}, but the secrets are sealed with key {expected}: point HOIST_SECRET_KEY_FILE at that key")]
    OtherKey {
        path: PathBuf,
        found: KeyId,
        expected: KeyId,
    },
    #[error("secret value of {key} is sealed with key {sealed_with}, not with this key {this} (wrong HOIST_SECRET_KEY_FILE?)")]
    SealedWithOtherKey {
        key: String,
        sealed_with: KeyId,
        this: KeyId,
    },
    #[error(
        "secret value of {key} cannot be opened with this key file (wrong HOIST_SECRET_KEY_FILE?)"
    )]
    WrongKey { key: String },
    #[error("secret key file {path} does not exist, and the store holds secrets sealed before key ids: point HOIST_SECRET_KEY_FILE at the key that sealed them (a new key could not open them)")]
    MissingForUnnamed { path: PathBuf },
    #[error("secret key file {path} cannot open the secret value of {key} sealed before key ids: point HOIST_SECRET_KEY_FILE at the key that sealed it")]
    NotTheUnnamedKey { path: PathBuf, key: String },
}

/// What a store's sealed values ask of the key that seals the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSecrets {
    /// No sealed value yet: any key will do, and one is created if there is none.
    None,
    /// Sealed with this key.
    Keyed(KeyId),
    /// Only values sealed before key ids: one of them, which the key must open.
    Unnamed { config_key: String, sealed: Vec<u8> },
}

/// A key's fingerprint, shown as 16 hex digits: it names a key without revealing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl KeyId {
    fn of(key: &[u8]) -> KeyId {
        use sha2::Digest;
        let hash = sha2::Sha256::new()
            .chain_update(b"hoist secret key id\0")
            .chain_update(key)
            .finalize();
        KeyId(hash[..KEY_ID_LEN].try_into().expect("8 of 32 bytes"))
    }
}

/// The key that sealed `sealed`, when it names one (values sealed before key ids do not).
pub fn sealed_with(sealed: &[u8]) -> Option<KeyId> {
    let id = sealed.strip_prefix(&MAGIC)?.get(..KEY_ID_LEN)?;
    (sealed.len() >= HEADER_LEN + NONCE_LEN + TAG_LEN).then(|| KeyId(id.try_into().expect("8")))
}

/// The length of the clear text sealed in `sealed`.
pub fn clear_len(sealed: &[u8]) -> usize {
    let overhead = NONCE_LEN
        + TAG_LEN
        + if sealed_with(sealed).is_some() {
            HEADER_LEN
        } else {
            0
        };
    sealed.len().saturating_sub(overhead)
}

pub struct SecretKey {
    cipher: ChaCha20Poly1305,
    id: KeyId,
}

impl SecretKey {
    fn new(key: &Key) -> Self {
        SecretKey {
            cipher: ChaCha20Poly1305::new(key),
            id: KeyId::of(key),
        }
    }

    /// This key's fingerprint.
    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Reads the key at `path`.
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Io {
            path: path.into(),
            source,
        })?;
        let text = text.trim();
        let mut key = [0u8; 32];
        if text.len() != 64 || !text.is_ascii() {
            return Err(SecretError::Malformed(path.into()));
        }
        for (i, byte) in key.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                .map_err(|_| SecretError::Malformed(path.into()))?;
        }
        Ok(SecretKey::new(Key::from_slice(&key)))
    }

    /// The key to seal with in a store whose secrets are `store`. Only a store without secrets
    /// gets a new key (created at `path`); otherwise `path` must hold the key that sealed them:
    /// the one they name, or, for values sealed before key ids, one that opens them.
    pub fn for_sealing(path: &Path, store: &StoreSecrets) -> Result<Self, SecretError> {
        match store {
            StoreSecrets::None => Self::load_or_create(path),
            StoreSecrets::Keyed(expected) => Self::load_expecting(path, *expected),
            StoreSecrets::Unnamed { config_key, sealed } => {
                if !path.exists() {
                    return Err(SecretError::MissingForUnnamed { path: path.into() });
                }
                let key = Self::load(path)?;
                key.decrypt(config_key, sealed)
                    .map_err(|_| SecretError::NotTheUnnamedKey {
                        path: path.into(),
                        key: config_key.clone(),
                    })?;
                Ok(key)
            }
        }
    }

    /// The key to open values sealed with `sealed_with` (`None`: values sealed before key ids,
    /// or no secrets); never created.
    pub fn for_opening(path: &Path, sealed_with: Option<KeyId>) -> Result<Self, SecretError> {
        match sealed_with {
            None => Self::load(path),
            Some(expected) => Self::load_expecting(path, expected),
        }
    }

    fn load_expecting(path: &Path, expected: KeyId) -> Result<Self, SecretError> {
        if !path.exists() {
            return Err(SecretError::Missing {
                path: path.into(),
                expected,
            });
        }
        let key = Self::load(path)?;
        if key.id != expected {
            return Err(SecretError::OtherKey {
                path: path.into(),
                found: key.id,
                expected,
            });
        }
        Ok(key)
    }

    /// Reads the key at `path`, creating it (mode 0600) if there is none. Concurrent first uses
    /// agree on one key: the new key is written aside and linked into place, and a loser reads
    /// the winner's.
    pub fn load_or_create(path: &Path) -> Result<Self, SecretError> {
        if path.exists() {
            return Self::load(path);
        }
        let io = |source| SecretError::Io {
            path: path.into(),
            source,
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let key = ChaCha20Poly1305::generate_key(&mut OsRng);
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let aside = dir.join(format!(
            ".{}.{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("key"),
            std::process::id()
        ));
        {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options.open(&aside).map_err(io)?;
            file.write_all(hex.as_bytes())
                .and_then(|_| file.sync_all())
                .map_err(io)?;
        }
        let linked = std::fs::hard_link(&aside, path);
        let _ = std::fs::remove_file(&aside);
        match linked {
            Ok(()) => Ok(SecretKey::new(&key)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io(e)),
        }
    }

    /// `MAGIC || key id || nonce || ciphertext` of `plaintext`, bound to `config_key`.
    pub fn seal(&self, config_key: &str, plaintext: &str) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: config_key.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut sealed = Vec::with_capacity(HEADER_LEN + NONCE_LEN + ciphertext.len());
        sealed.extend(MAGIC);
        sealed.extend(self.id.0);
        sealed.extend(nonce);
        sealed.extend(ciphertext);
        sealed
    }

    pub fn open(&self, config_key: &str, sealed: &[u8]) -> Result<String, SecretError> {
        match sealed_with(sealed) {
            // A value from before key ids whose random nonce happens to begin with MAGIC is
            // tried as such too before it is called foreign.
            Some(id) => {
                let opened = if id == self.id {
                    self.decrypt(config_key, &sealed[HEADER_LEN..])
                } else {
                    Err(SecretError::SealedWithOtherKey {
                        key: config_key.into(),
                        sealed_with: id,
                        this: self.id,
                    })
                };
                // A value from before key ids whose random nonce happens to begin with MAGIC is
                // tried as such too before it is called foreign.
                opened.or_else(|e| self.decrypt(config_key, sealed).map_err(|_| e))
            }
            None => self.decrypt(config_key, sealed),
        }
    }

    /// Opens `nonce || ciphertext`.
    fn decrypt(&self, config_key: &str, sealed: &[u8]) -> Result<String, SecretError> {
        let wrong = || SecretError::WrongKey {
            key: config_key.into(),
        };
        if sealed.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let clear = self
            .cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: config_key.as_bytes(),
                },
            )
            .map_err(|_| wrong())?;
        String::from_utf8(clear).map_err(|_| wrong())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding_to_the_key_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/secret.key");
        let key = SecretKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let sealed = key.seal("DB_PASSWORD", "hunter2");
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(key.open("DB_PASSWORD", &sealed).unwrap(), "hunter2");
        assert!(matches!(
            key.open("OTHER", &sealed),
            Err(SecretError::WrongKey { .. })
        ));
        // The same file gives the same key back.
        let again = SecretKey::load_or_create(&path).unwrap();
        assert_eq!(again.open("DB_PASSWORD", &sealed).unwrap(), "hunter2");
        // Another key cannot open it.
        let other = SecretKey::load_or_create(&dir.path().join("other.key")).unwrap();
        assert!(other.open("DB_PASSWORD", &sealed).is_err());
    }

    #[test]
    fn malformed_key_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.key");
        std::fs::write(&path, "not hex").unwrap();
        assert!(matches!(SecretKey::load(&path), Err(SecretError::Malformed(p)) if p == path));
    }

    #[test]
    fn a_sealed_value_names_its_key_and_another_key_is_told_which() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::load_or_create(&dir.path().join("a.key")).unwrap();
        let other = SecretKey::load_or_create(&dir.path().join("b.key")).unwrap();
        let sealed = key.seal("TOKEN", "s3cr3t");
        assert_eq!(sealed_with(&sealed), Some(key.id()));
        assert_eq!(clear_len(&sealed), "s3cr3t".len());
        assert_eq!(key.id().to_string().len(), 16);
        assert_ne!(key.id(), other.id());
        match other.open("TOKEN", &sealed) {
            Err(e @ SecretError::SealedWithOtherKey { .. }) => {
                let message = e.to_string();
                assert!(message.contains(&key.id().to_string()), "{message}");
                assert!(message.contains(&other.id().to_string()), "{message}");
            }
            other => panic!("expected SealedWithOtherKey, got {other:?}"),
        }
    }

    #[test]
    fn a_value_sealed_before_key_ids_still_opens() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::load_or_create(&dir.path().join("a.key")).unwrap();
        let sealed = key.seal("TOKEN", "s3cr3t");
        let legacy = &sealed[HEADER_LEN..];
        assert_eq!(sealed_with(legacy), None);
        assert_eq!(clear_len(legacy), "s3cr3t".len());
        assert_eq!(key.open("TOKEN", legacy).unwrap(), "s3cr3t");
    }

    #[test]
    fn only_a_store_without_secrets_gets_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let existing = SecretKey::load_or_create(&dir.path().join("a.key")).unwrap();
        let missing = dir.path().join("typo.key");
        assert!(matches!(
            SecretKey::for_sealing(&missing, &StoreSecrets::Keyed(existing.id())),
            Err(SecretError::Missing { expected, .. }) if expected == existing.id()
        ));
        assert!(!missing.exists(), "no key created for a store with secrets");
        let other = dir.path().join("b.key");
        let other_id = SecretKey::load_or_create(&other).unwrap().id();
        assert!(matches!(
            SecretKey::for_sealing(&other, &StoreSecrets::Keyed(existing.id())),
            Err(SecretError::OtherKey { found, expected, .. }) if found == other_id && expected == existing.id()
        ));
        let same = SecretKey::for_sealing(
            &dir.path().join("a.key"),
            &StoreSecrets::Keyed(existing.id()),
        )
        .unwrap();
        assert_eq!(same.id(), existing.id());
        let fresh = SecretKey::for_sealing(&missing, &StoreSecrets::None).unwrap();
        assert!(missing.exists());
        assert!(matches!(
            SecretKey::for_opening(&dir.path().join("gone.key"), Some(fresh.id())),
            Err(SecretError::Missing { .. })
        ));
    }

    #[test]
    fn a_store_with_secrets_sealed_before_key_ids_never_gets_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        let old = SecretKey::load_or_create(&dir.path().join("old.key")).unwrap();
        let sealed = old.seal("TOKEN", "s3cr3t")[HEADER_LEN..].to_vec();
        let store = StoreSecrets::Unnamed {
            config_key: "TOKEN".into(),
            sealed,
        };
        let missing = dir.path().join("typo.key");
        assert!(matches!(
            SecretKey::for_sealing(&missing, &store),
            Err(SecretError::MissingForUnnamed { .. })
        ));
        assert!(!missing.exists(), "no key created for a store with secrets");
        let other = dir.path().join("other.key");
        SecretKey::load_or_create(&other).unwrap();
        assert!(matches!(
            SecretKey::for_sealing(&other, &store),
            Err(SecretError::NotTheUnnamedKey { key, .. }) if key == "TOKEN"
        ));
        let same = SecretKey::for_sealing(&dir.path().join("old.key"), &store).unwrap();
        assert_eq!(same.id(), old.id());
    }
}
