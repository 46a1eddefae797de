//! Secrets at rest: XChaCha20-Poly1305 with a 256-bit key from a key file.
//!
//! The key file is created at first start (`<data dir>/secrets.key`, mode 0600, 64 hex
//! digits) unless `--secrets-key-file` names one; controllers that share a database
//! must share the key file. A ciphertext is `v1:` + base64(nonce ‖ sealed), and is
//! bound to what it protects (the associated data, e.g. `kv:system:db_password`), so a
//! sealed value copied to another key does not open.

use std::path::Path;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// Prefix of every ciphertext this version writes.
const PREFIX: &str = "v1:";

/// The key that seals and opens secrets.
pub(crate) struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// Reads the key file, creating it (0600) with a random key when it does not exist.
    pub(crate) fn open_or_create(path: &Path) -> anyhow::Result<SecretBox> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key: [u8; 32] = rand::random();
                let text = hex::encode(key);
                write_new_key(path, &text)?;
                tracing::info!(path = %path.display(), "created the secrets key file");
                text
            }
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read secrets key file {}", path.display()));
            }
        };
        let key = hex::decode(text.trim())
            .ok()
            .filter(|k| k.len() == 32)
            .with_context(|| {
                format!(
                    "secrets key file {} must hold 64 hex digits (a 256-bit key)",
                    path.display()
                )
            })?;
        let cipher = XChaCha20Poly1305::new_from_slice(&key)
            .map_err(|_| anyhow::anyhow!("secrets key has the wrong length"))?;
        Ok(SecretBox { cipher })
    }

    /// A key for tests.
    #[cfg(test)]
    pub(crate) fn from_key(key: [u8; 32]) -> SecretBox {
        SecretBox {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// Seals `plain`, bound to `aad`.
    pub(crate) fn seal(&self, aad: &str, plain: &str) -> String {
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        // Encryption with a valid key and nonce cannot fail for in-memory buffers.
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(out))
    }

    /// Opens what [`seal`](Self::seal) sealed with the same `aad`.
    pub(crate) fn open(&self, aad: &str, sealed: &str) -> anyhow::Result<String> {
        let body = sealed
            .strip_prefix(PREFIX)
            .context("not a sealed value (no v1: prefix)")?;
        let bytes = STANDARD
            .decode(body)
            .context("sealed value is not base64")?;
        if bytes.len() < 24 + 16 {
            anyhow::bail!("sealed value is too short");
        }
        let (nonce, ct) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce
            .try_into()
            .map_err(|_| anyhow::anyhow!("sealed value is too short"))?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ct,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!("cannot decrypt: wrong secrets key, or the value was altered")
            })?;
        String::from_utf8(plain).context("decrypted value is not UTF-8")
    }
}

fn write_new_key(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create secrets key file {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let b = SecretBox::from_key([7; 32]);
        let s = b.seal("kv:system:a", "hunter2");
        assert!(s.starts_with("v1:"));
        assert!(!s.contains("hunter2"));
        assert_eq!(b.open("kv:system:a", &s).unwrap(), "hunter2");
        assert!(b.open("kv:system:b", &s).is_err(), "bound to its key name");
        let other = SecretBox::from_key([8; 32]);
        assert!(other.open("kv:system:a", &s).is_err());
        assert_ne!(
            b.seal("x", "same"),
            b.seal("x", "same"),
            "fresh nonce each time"
        );
    }

    #[test]
    fn key_file_created_once_with_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets.key");
        let a = SecretBox::open_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let sealed = a.seal("t", "v");
        let b = SecretBox::open_or_create(&path).unwrap();
        assert_eq!(b.open("t", &sealed).unwrap(), "v");
        std::fs::write(&path, "nothex").unwrap();
        let err = SecretBox::open_or_create(&path).unwrap_err().to_string();
        assert!(err.contains("64 hex digits"), "{err}");
    }
}
