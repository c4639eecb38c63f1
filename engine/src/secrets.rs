//! Sealing of secret config values with ChaCha20-Poly1305 before they reach the log. The key is a
//! 32-byte file (hex) from `HOIST_SECRET_KEY_FILE` or the user's config dir, created with mode 0600
//! on first use. The config key's name is the associated data, so a sealed value cannot be moved
//! to another key unnoticed.

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use std::io::Write;
use std::path::{Path, PathBuf};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("secret key file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret key file {0}: must hold 64 hex digits")]
    Malformed(PathBuf),
    #[error(
        "secret value of {key} cannot be opened with this key file (wrong HOIST_SECRET_KEY_FILE?)"
    )]
    WrongKey { key: String },
}

pub struct SecretKey(ChaCha20Poly1305);

/// The length of the clear text sealed in `sealed`.
pub fn clear_len(sealed: &[u8]) -> usize {
    sealed.len().saturating_sub(NONCE_LEN + TAG_LEN)
}

impl SecretKey {
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
        Ok(SecretKey(ChaCha20Poly1305::new(Key::from_slice(&key))))
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
            Ok(()) => Ok(SecretKey(ChaCha20Poly1305::new(&key))),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io(e)),
        }
    }

    pub fn seal(&self, config_key: &str, plaintext: &str) -> Vec<u8> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ciphertext = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: config_key.as_bytes(),
                },
            )
            .expect("ChaCha20-Poly1305 encryption of an in-memory buffer cannot fail");
        let mut sealed = nonce.to_vec();
        sealed.extend(ciphertext);
        sealed
    }

    pub fn open(&self, config_key: &str, sealed: &[u8]) -> Result<String, SecretError> {
        let wrong = || SecretError::WrongKey {
            key: config_key.into(),
        };
        if sealed.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let clear = self
            .0
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
}
