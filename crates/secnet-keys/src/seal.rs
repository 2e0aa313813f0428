//! Sealing secrets at rest, and private files.
//!
//! Why: a compliance-sensitive cluster must not leave its CA key, node keys,
//! join-token secrets or overlay keys in plaintext on disk or in the
//! replicated store. Each node keeps one key-encryption key ([`Kek`]) in a
//! `0600` file; everything else that is secret is sealed with it using
//! XChaCha20-Poly1305. XChaCha's 192-bit nonce is large enough to be drawn at
//! random for every seal without any risk of reuse, so no nonce counter has
//! to be persisted. The associated data (`aad`) binds a blob to its purpose
//! (e.g. `b"secnet/ca-key/v1"`), so a blob cannot be swapped into another
//! place that is sealed with the same key.
//!
//! Sealed format: `b"SNSEAL1\0" || nonce (24 bytes) || ciphertext || tag (16 bytes)`.
//! [`open`] never panics, whatever the input.
//!
//! Files: [`write_private_file`] writes atomically (temporary file created
//! with mode `0600` in the same directory, fsync, rename, fsync of the
//! directory), so a crash leaves either the old or the new content and the
//! secret is never readable by others, not even for an instant.
//! [`Kek::load`] refuses a key file that group or others can access, like
//! `ssh` does for private keys.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::secret::{Secret32, SecretBytes};

/// Magic prefix of a sealed blob (format version 1).
pub const SEAL_MAGIC: &[u8; 8] = b"SNSEAL1\0";
/// Nonce length (XChaCha20-Poly1305).
pub const SEAL_NONCE_LEN: usize = 24;
/// Authentication tag length.
pub const SEAL_TAG_LEN: usize = 16;
/// Bytes a sealed blob adds to its plaintext.
pub const SEAL_OVERHEAD: usize = SEAL_MAGIC.len() + SEAL_NONCE_LEN + SEAL_TAG_LEN;

/// Errors from opening sealed blobs and from key and private files.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Shorter than the smallest possible sealed blob.
    #[error("sealed data is truncated: {len} bytes, a sealed blob has at least {SEAL_OVERHEAD}")]
    Truncated {
        /// The length found.
        len: usize,
    },
    /// Does not start with `SNSEAL1\0`.
    #[error("not sealed data: missing the SNSEAL1 header (wrong file, or a newer format)")]
    BadMagic,
    /// Wrong key, wrong associated data, or tampered/corrupted data.
    #[error("sealed data failed authentication: wrong key-encryption key, wrong context, or the data was corrupted or tampered with")]
    AuthenticationFailed,
    /// An I/O error on `path`.
    #[error("{op} {path}: {source}", path = path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A key file or private directory that group or others can access.
    #[error("{path} has mode {mode:04o}, which lets group or others access it; secrets must be private to the owner (expected {expected:04o}): run `chmod {expected:o} {path}`, and rotate the key if someone else may have read it", path = path.display())]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// The mode that is expected.
        expected: u32,
    },
    /// A key file whose length is not 32 bytes.
    #[error("{path}: a key-encryption key file holds exactly 32 bytes, this one has {len}", path = path.display())]
    BadKeyFile {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// Something that should be a regular file or a directory is not.
    #[error("{path}: expected {expected}", path = path.display())]
    NotA {
        /// The path.
        path: PathBuf,
        /// "a regular file" or "a directory".
        expected: &'static str,
    },
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SealError + 'a {
    move |source| SealError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A key-encryption key: 32 random bytes, wiped from memory on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Kek(Secret32);

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(<redacted>)")
    }
}

impl Kek {
    /// A fresh random key from the operating system's RNG.
    pub fn generate() -> Self {
        Self(Secret32::random(&mut OsRng))
    }

    /// Wraps existing key material.
    pub fn from_secret(secret: Secret32) -> Self {
        Self(secret)
    }

    /// The key material.
    pub fn secret(&self) -> &Secret32 {
        &self.0
    }

    /// Loads the key from `path` (32 raw bytes). Refuses a file that is not a
    /// regular file, that group or others can access (any of mode `0077`),
    /// or that is not exactly 32 bytes long.
    pub fn load(path: &Path) -> Result<Self, SealError> {
        let mut file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)
            .map_err(io_err("open key file", path))?;
        let meta = file.metadata().map_err(io_err("stat key file", path))?;
        if !meta.is_file() {
            return Err(SealError::NotA {
                path: path.to_path_buf(),
                expected: "a regular file",
            });
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(SealError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
                expected: 0o600,
            });
        }
        if meta.len() != 32 {
            return Err(SealError::BadKeyFile {
                path: path.to_path_buf(),
                len: meta.len(),
            });
        }
        let mut buf = Zeroizing::new([0u8; 33]);
        let mut n = 0;
        loop {
            let r = file
                .read(&mut buf[n..])
                .map_err(io_err("read key file", path))?;
            if r == 0 {
                break;
            }
            n += r;
            if n == buf.len() {
                break;
            }
        }
        if n != 32 {
            return Err(SealError::BadKeyFile {
                path: path.to_path_buf(),
                len: n as u64,
            });
        }
        Secret32::from_slice(&buf[..32])
            .map(Self)
            .ok_or(SealError::BadKeyFile {
                path: path.to_path_buf(),
                len: n as u64,
            })
    }

    /// Loads the key from `path`, or creates it there if the file does not
    /// exist. Creation is atomic and never clobbers: the key is written to a
    /// `0600` temporary file in the same directory, fsynced, hard-linked to
    /// `path` (which fails if another process created it meanwhile, in which
    /// case that key is loaded) and the directory is fsynced.
    pub fn load_or_create(path: &Path) -> Result<Self, SealError> {
        match fs::symlink_metadata(path) {
            Ok(_) => return Self::load(path),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("stat key file", path)(e)),
        }
        let kek = Self::generate();
        let (dir, tmp) = write_temp_private(path, kek.0.expose())?;
        let linked = fs::hard_link(&tmp, path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                fsync_dir(&dir)?;
                Ok(kek)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io_err("create key file", path)(e)),
        }
    }
}

/// Seals `plaintext` under `kek`, bound to `aad`, with a fresh random nonce.
///
/// # Panics
///
/// Only if `plaintext` exceeds XChaCha20-Poly1305's limit of about 256 GiB,
/// or if the operating system's RNG fails.
pub fn seal(kek: &Kek, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
    let cipher = XChaCha20Poly1305::new(kek.0.expose().into());
    let mut nonce = [0u8; SEAL_NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("XChaCha20-Poly1305 encryption fails only for plaintexts over 256 GiB");
    let mut out = Vec::with_capacity(SEAL_OVERHEAD + plaintext.len());
    out.extend_from_slice(SEAL_MAGIC);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

/// Opens a blob made by [`seal`] with the same `kek` and `aad`.
pub fn open(kek: &Kek, sealed: &[u8], aad: &[u8]) -> Result<SecretBytes, SealError> {
    let head = sealed.len().min(SEAL_MAGIC.len());
    if sealed[..head] != SEAL_MAGIC[..head] {
        return Err(SealError::BadMagic);
    }
    if sealed.len() < SEAL_OVERHEAD {
        return Err(SealError::Truncated { len: sealed.len() });
    }
    let (nonce, ct) = sealed[SEAL_MAGIC.len()..].split_at(SEAL_NONCE_LEN);
    let cipher = XChaCha20Poly1305::new(kek.0.expose().into());
    cipher
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
        .map(SecretBytes::new)
        .map_err(|_| SealError::AuthenticationFailed)
}

/// Creates a uniquely named `0600` temporary file next to `path`, writes
/// `bytes` and fsyncs it. Returns (directory, temporary path).
fn write_temp_private(path: &Path, bytes: &[u8]) -> Result<(PathBuf, PathBuf), SealError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| SealError::NotA {
        path: path.to_path_buf(),
        expected: "a file path",
    })?;
    let mut tries = 0;
    loop {
        let mut suffix = [0u8; 8];
        OsRng.fill_bytes(&mut suffix);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{}", hex::encode(suffix)));
        let tmp = dir.join(tmp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp);
        let mut file = match file {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 8 => {
                tries += 1;
                continue;
            }
            Err(e) => return Err(io_err("create temporary file", &tmp)(e)),
        };
        let res = (|| {
            // The umask cannot widen 0600, but make sure regardless.
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
            file.write_all(bytes)?;
            file.sync_all()
        })();
        if let Err(e) = res {
            drop(file);
            let _ = fs::remove_file(&tmp);
            return Err(io_err("write temporary file", &tmp)(e));
        }
        return Ok((dir, tmp));
    }
}

fn fsync_dir(dir: &Path) -> Result<(), SealError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Atomically replaces `path` with `bytes`, readable and writable by the
/// owner only (`0600`): temporary file in the same directory created with
/// mode `0600`, fsync, rename over `path`, fsync of the directory.
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    let (dir, tmp) = write_temp_private(path, bytes)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(io_err("rename into place", path)(e));
    }
    fsync_dir(&dir)
}

/// Makes sure `path` is a directory private to its owner: creates it (and
/// missing parents) with mode `0700`, or tightens an existing directory's
/// mode to `0700` if group or others could access it.
pub fn ensure_private_dir(path: &Path) -> Result<(), SealError> {
    match fs::symlink_metadata(path) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(SealError::NotA {
                    path: path.to_path_buf(),
                    expected: "a directory",
                });
            }
            if meta.permissions().mode() & 0o077 != 0 {
                fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                    .map_err(io_err("chmod 0700", path))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(io_err("create directory", path))?;
            // The umask may have removed bits but never adds any; still,
            // make the final directory exactly 0700.
            fs::set_permissions(path, fs::Permissions::from_mode(0o700))
                .map_err(io_err("chmod 0700", path))
        }
        Err(e) => Err(io_err("stat directory", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn seal_open_round_trip() {
        let k = Kek::generate();
        let s = seal(&k, b"top secret", b"ctx");
        assert_eq!(&s[..8], SEAL_MAGIC);
        assert_eq!(s.len(), SEAL_OVERHEAD + 10);
        let p = open(&k, &s, b"ctx").expect("open");
        assert_eq!(p.expose(), b"top secret");
        // Empty plaintext works too.
        let e = seal(&k, b"", b"");
        assert_eq!(open(&k, &e, b"").expect("open").len(), 0);
        // Nonces are random: sealing twice differs.
        assert_ne!(seal(&k, b"x", b""), seal(&k, b"x", b""));
    }

    #[test]
    fn open_errors() {
        let k = Kek::generate();
        let s = seal(&k, b"data", b"ctx");
        assert!(matches!(
            open(&k, &s, b"other"),
            Err(SealError::AuthenticationFailed)
        ));
        assert!(matches!(
            open(&Kek::generate(), &s, b"ctx"),
            Err(SealError::AuthenticationFailed)
        ));
        assert!(matches!(
            open(&k, &s[..SEAL_OVERHEAD - 1], b"ctx"),
            Err(SealError::Truncated { .. })
        ));
        assert!(matches!(
            open(&k, b"", b""),
            Err(SealError::Truncated { len: 0 })
        ));
        assert!(matches!(
            open(&k, b"SNSE", b""),
            Err(SealError::Truncated { len: 4 })
        ));
        assert!(matches!(
            open(&k, b"XNSEAL1\0", b""),
            Err(SealError::BadMagic)
        ));
        let mut bad = s.clone();
        bad[0] = b'Z';
        assert!(matches!(open(&k, &bad, b"ctx"), Err(SealError::BadMagic)));
        let mut cut = s.clone();
        cut.pop();
        assert!(matches!(
            open(&k, &cut, b"ctx"),
            Err(SealError::AuthenticationFailed)
        ));
    }

    #[test]
    fn kek_load_or_create_is_0600_and_stable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        let k1 = Kek::load_or_create(&path).expect("create");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::metadata(&path).expect("stat").len(), 32);
        let k2 = Kek::load_or_create(&path).expect("load");
        assert_eq!(k1, k2);
        let k3 = Kek::load(&path).expect("load");
        assert_eq!(k1, k3);
        // No temporary files left behind.
        let entries: Vec<_> = fs::read_dir(dir.path()).expect("readdir").collect();
        assert_eq!(entries.len(), 1);
        assert_eq!(format!("{k1:?}"), "Kek(<redacted>)");
    }

    #[test]
    fn kek_refuses_group_or_world_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        Kek::load_or_create(&path).expect("create");
        for bad in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(bad)).expect("chmod");
            let err = Kek::load(&path).expect_err("must refuse");
            assert!(
                matches!(err, SealError::InsecurePermissions { mode, .. } if mode == bad),
                "{err}"
            );
            let msg = err.to_string();
            assert!(msg.contains(&format!("{bad:04o}")), "{msg}");
            assert!(msg.contains("chmod 600"), "{msg}");
            assert!(Kek::load_or_create(&path).is_err());
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).expect("chmod");
        Kek::load(&path).expect("0400 is fine");
    }

    #[test]
    fn kek_refuses_wrong_length_and_dirs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("kek");
        write_private_file(&path, &[1; 31]).expect("write");
        assert!(matches!(
            Kek::load(&path),
            Err(SealError::BadKeyFile { len: 31, .. })
        ));
        assert!(Kek::load(dir.path()).is_err());
        assert!(matches!(
            Kek::load(&dir.path().join("missing")),
            Err(SealError::Io { .. })
        ));
    }

    #[test]
    fn write_private_file_is_0600_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret.bin");
        write_private_file(&path, b"one").expect("write");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read(&path).expect("read"), b"one");
        // Replacing a file that was world-readable yields a 0600 file.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        write_private_file(&path, b"two").expect("write");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read(&path).expect("read"), b"two");
        assert_eq!(fs::read_dir(dir.path()).expect("readdir").count(), 1);
        // A missing directory is an error, not a panic.
        assert!(write_private_file(&dir.path().join("no/such/file"), b"x").is_err());
    }

    #[test]
    fn ensure_private_dir_creates_and_tightens() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a/b");
        ensure_private_dir(&p).expect("create");
        assert_eq!(mode(&p), 0o700);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        ensure_private_dir(&p).expect("tighten");
        assert_eq!(mode(&p), 0o700);
        let f = dir.path().join("file");
        fs::write(&f, b"x").expect("write");
        assert!(matches!(
            ensure_private_dir(&f),
            Err(SealError::NotA { .. })
        ));
    }

    proptest! {
        #[test]
        fn prop_open_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let k = Kek::from_secret(Secret32::new([9; 32]));
            prop_assert!(open(&k, &data, b"").is_err());
            // Also with a valid header in front.
            let mut d = SEAL_MAGIC.to_vec();
            d.extend_from_slice(&data);
            prop_assert!(open(&k, &d, b"").is_err());
        }

        #[test]
        fn prop_any_bit_flip_is_rejected(
            plaintext in proptest::collection::vec(any::<u8>(), 0..64),
            bit in any::<proptest::sample::Index>(),
        ) {
            let k = Kek::from_secret(Secret32::new([3; 32]));
            let mut s = seal(&k, &plaintext, b"aad");
            let i = bit.index(s.len() * 8);
            s[i / 8] ^= 1 << (i % 8);
            prop_assert!(open(&k, &s, b"aad").is_err());
        }

        #[test]
        fn prop_round_trip(plaintext in proptest::collection::vec(any::<u8>(), 0..256),
                           aad in proptest::collection::vec(any::<u8>(), 0..32)) {
            let k = Kek::from_secret(Secret32::new([5; 32]));
            let s = seal(&k, &plaintext, &aad);
            let back = open(&k, &s, &aad).expect("open");
            prop_assert_eq!(back.expose(), plaintext.as_slice());
        }
    }
}
