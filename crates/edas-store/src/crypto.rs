//! Encryption at rest for access-key secrets and Secret data.
//!
//! XChaCha20-Poly1305 (RustCrypto) with a random 24-byte nonce per value, so one key can seal
//! any number of values without nonce bookkeeping. The associated data names the row a value
//! belongs to (`access_key:<id>`, `secret:<cluster>/<ns>/<name>`), so a ciphertext copied into
//! another row does not decrypt. Sealed layout: `[FORMAT_V1][nonce; 24][ciphertext + tag]`.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, Generate, KeyInit, Payload};

use crate::error::StoreError;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const FORMAT_V1: u8 = 1;

/// The 256-bit key that seals secrets at rest. Its `Debug` never prints the key.
#[derive(Clone)]
pub struct EncryptionKey([u8; KEY_LEN]);

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(<redacted>)")
    }
}

impl EncryptionKey {
    /// A fresh random key from the operating system's generator.
    pub fn generate() -> Self {
        let key = chacha20poly1305::Key::generate();
        let mut bytes = [0u8; KEY_LEN];
        bytes.copy_from_slice(key.as_slice());
        Self(bytes)
    }

    /// Parses a key given in configuration: 64 hexadecimal characters (surrounding whitespace
    /// is ignored).
    pub fn from_hex(text: &str) -> Result<Self, StoreError> {
        let bytes = hex::decode(text.trim()).map_err(|e| StoreError::InvalidKey {
            reason: format!("expected 64 hexadecimal characters: {e}"),
        })?;
        let bytes: [u8; KEY_LEN] =
            bytes
                .try_into()
                .map_err(|b: Vec<u8>| StoreError::InvalidKey {
                    reason: format!(
                        "expected {KEY_LEN} bytes (64 hex characters), got {}",
                        b.len()
                    ),
                })?;
        Ok(Self(bytes))
    }

    /// Reads the key file at `path`, creating it with a new random key (mode 0600, created
    /// exclusively so two processes never write different keys) when it does not exist.
    /// A key file readable by group or others is refused.
    pub fn load_or_create(path: &Path) -> Result<Self, StoreError> {
        let io_err = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
        };
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                let key = Self::generate();
                file.write_all(format!("{}\n", hex::encode(key.0)).as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(io_err)?;
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let mode = fs::metadata(path).map_err(io_err)?.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(StoreError::InvalidKey {
                        reason: format!(
                            "key file {} has mode {:o}; it must not be accessible by group or \
                             others (chmod 600)",
                            path.display(),
                            mode & 0o777
                        ),
                    });
                }
                let text = fs::read_to_string(path).map_err(io_err)?;
                Self::from_hex(&text).map_err(|e| match e {
                    StoreError::InvalidKey { reason } => StoreError::InvalidKey {
                        reason: format!("key file {}: {reason}", path.display()),
                    },
                    other => other,
                })
            }
            Err(e) => Err(io_err(e)),
        }
    }
}

/// Seals and opens values with an [`EncryptionKey`].
#[derive(Clone)]
pub(crate) struct Cipher(XChaCha20Poly1305);

impl Cipher {
    pub(crate) fn new(key: &EncryptionKey) -> Self {
        Self(XChaCha20Poly1305::new(&key.0.into()))
    }

    /// Encrypts `plaintext`, binding it to `context` (the row it is stored in).
    pub(crate) fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce = chacha20poly1305::XNonce::generate();
        let sealed = self
            .0
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Crypto {
                context: context.to_owned(),
            })?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(FORMAT_V1);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts a value sealed by [`Cipher::seal`] with the same `context`.
    pub(crate) fn open(&self, context: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
        let fail = || StoreError::Crypto {
            context: context.to_owned(),
        };
        let (version, rest) = sealed.split_first().ok_or_else(fail)?;
        if *version != FORMAT_V1 || rest.len() < NONCE_LEN {
            return Err(fail());
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce = chacha20poly1305::XNonce::try_from(nonce).map_err(|_| fail())?;
        self.0
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| fail())
    }
}

/// A value that must never be printed: `Debug` shows `<redacted>`. Read it with
/// [`Sensitive::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Sensitive<T>(T);

impl<T> Sensitive<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value itself; the caller takes care not to log it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Sensitive<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> From<T> for Sensitive<T> {
    fn from(value: T) -> Self {
        Self(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_context_binding() {
        let cipher = Cipher::new(&EncryptionKey::generate());
        let sealed = cipher.seal("access_key:a", b"top secret").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"top secret"));
        assert_eq!(cipher.open("access_key:a", &sealed).unwrap(), b"top secret");
        assert!(matches!(
            cipher.open("access_key:b", &sealed),
            Err(StoreError::Crypto { .. })
        ));
        let other = Cipher::new(&EncryptionKey::generate());
        assert!(other.open("access_key:a", &sealed).is_err());
        assert!(cipher.open("access_key:a", &sealed[..10]).is_err());
        assert!(cipher.open("access_key:a", &[]).is_err());
        // Two seals of one value differ (random nonces).
        assert_ne!(sealed, cipher.seal("access_key:a", b"top secret").unwrap());
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        let key = EncryptionKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = EncryptionKey::load_or_create(&path).unwrap();
        assert_eq!(key.0, again.0);
    }

    #[test]
    fn key_file_readable_by_others_or_malformed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.key");
        EncryptionKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = EncryptionKey::load_or_create(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("chmod 600"), "{err}");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        fs::write(&path, "abcd").unwrap();
        let err = EncryptionKey::load_or_create(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("32 bytes"), "{err}");
    }

    #[test]
    fn debug_never_prints_secrets() {
        let key = EncryptionKey::from_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(format!("{key:?}"), "EncryptionKey(<redacted>)");
        let secret = Sensitive::new("hunter2".to_owned());
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert!(EncryptionKey::from_hex("zz").is_err());
    }
}
