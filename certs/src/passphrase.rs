//! The CA key's optional passphrase.
//!
//! With a passphrase, `ca.key` is an encrypted PKCS#8 file (`-----BEGIN ENCRYPTED PRIVATE
//! KEY-----`, PBES2 with scrypt and AES-256-CBC) that `openssl pkey -passin` also reads. The
//! passphrase comes from a file (`--ca-passphrase-file`) or the environment
//! (`KMIPD_CA_PASSPHRASE`), never from a command-line literal, which any local user could
//! read in the process list. kmipd itself never needs the CA key: only `kmipctl certs`
//! commands that sign do.

use std::fmt;
use std::path::Path;

use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// The environment variable a passphrase may come from.
pub const CA_PASSPHRASE_ENV: &str = "KMIPD_CA_PASSPHRASE";

/// A passphrase for the CA key. Wiped on drop; `Debug` never prints it.
#[derive(Clone)]
pub struct CaPassphrase(Zeroizing<Vec<u8>>);

impl fmt::Debug for CaPassphrase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CaPassphrase(<redacted>)")
    }
}

impl CaPassphrase {
    /// A passphrase from bytes; an empty one is refused.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let bytes = Zeroizing::new(bytes.into());
        if bytes.is_empty() {
            return Err(Error::Passphrase {
                detail: "the CA key passphrase is empty".into(),
            });
        }
        Ok(Self(bytes))
    }

    /// Reads a passphrase file: its first line, without the line ending.
    pub fn from_file(path: &Path) -> Result<Self> {
        let data = Zeroizing::new(std::fs::read(path).map_err(|e| Error::io(path, e))?);
        let line = data.split(|b| *b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        Self::new(line.to_vec()).map_err(|_| Error::Passphrase {
            detail: format!("{}: the passphrase file is empty", path.display()),
        })
    }

    /// The passphrase from `file` if given, else from `KMIPD_CA_PASSPHRASE` if set.
    pub fn from_file_or_env(file: Option<&Path>) -> Result<Option<Self>> {
        if let Some(f) = file {
            return Self::from_file(f).map(Some);
        }
        match std::env::var_os(CA_PASSPHRASE_ENV) {
            None => Ok(None),
            Some(v) => {
                use std::os::unix::ffi::OsStrExt;
                Self::new(v.as_bytes().to_vec())
                    .map(Some)
                    .map_err(|_| Error::Passphrase {
                        detail: format!("{CA_PASSPHRASE_ENV} is set but empty"),
                    })
            }
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// scrypt cost: N = 2^14.
const SCRYPT_LOG_N: u8 = 14;

/// The PEM label of an encrypted PKCS#8 key.
pub(crate) const ENCRYPTED_LABEL: &str = "ENCRYPTED PRIVATE KEY";

/// Whether a PEM text holds an encrypted PKCS#8 key.
pub(crate) fn is_encrypted_pem(pem: &str) -> bool {
    pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----")
}

/// Encrypts a PKCS#8 DER key (PBES2: scrypt, AES-256-CBC) into PEM.
pub(crate) fn encrypt_pkcs8(der: &[u8], pass: &CaPassphrase) -> Result<Zeroizing<String>> {
    use pkcs8::der::pem::LineEnding;
    let info = pkcs8::PrivateKeyInfo::try_from(der).map_err(|e| Error::Passphrase {
        detail: format!("cannot encode the key as PKCS#8: {e}"),
    })?;
    use rand::RngCore;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    rand::rngs::OsRng.fill_bytes(&mut iv);
    let failed = |e: &dyn std::fmt::Display| Error::Passphrase {
        detail: format!("cannot encrypt the key: {e}"),
    };
    // scrypt N = 2^14, r = 8, p = 1 (16 MiB): what `openssl pkcs8 -scrypt` uses, and within
    // the 32 MiB openssl allows when it decrypts a PKCS#8 key; larger N is unreadable there.
    let params =
        pkcs8::pkcs5::scrypt::Params::new(SCRYPT_LOG_N, 8, 1, 32).map_err(|e| failed(&e))?;
    let pbes2 = pkcs8::pkcs5::pbes2::Parameters::scrypt_aes256cbc(params, &salt, &iv)
        .map_err(|e| failed(&e))?;
    let doc = info
        .encrypt_with_params(pbes2, pass.bytes())
        .map_err(|e| failed(&e))?;
    doc.to_pem(ENCRYPTED_LABEL, LineEnding::LF)
        .map_err(|e| Error::Passphrase {
            detail: format!("cannot encode the encrypted key: {e}"),
        })
}

/// Encrypts an unencrypted PKCS#8 PEM key (`-----BEGIN PRIVATE KEY-----`).
pub(crate) fn encrypt_pkcs8_pem(pem: &str, pass: &CaPassphrase) -> Result<Zeroizing<String>> {
    let (_, doc) = pkcs8::SecretDocument::from_pem(pem).map_err(|e| Error::Passphrase {
        detail: format!("cannot read the key to encrypt: {e}"),
    })?;
    encrypt_pkcs8(doc.as_bytes(), pass)
}

/// Decrypts an encrypted PKCS#8 PEM key into unencrypted PKCS#8 PEM.
pub(crate) fn decrypt_pem(
    path: &Path,
    pem: &str,
    pass: Option<&CaPassphrase>,
) -> Result<Zeroizing<String>> {
    use pkcs8::der::pem::LineEnding;
    let Some(pass) = pass else {
        return Err(Error::PassphraseRequired {
            path: path.to_owned(),
        });
    };
    let (label, doc) = pkcs8::SecretDocument::from_pem(pem).map_err(|e| Error::Pem {
        path: path.to_owned(),
        detail: format!("not a usable encrypted PKCS#8 key: {e}"),
    })?;
    if label != ENCRYPTED_LABEL {
        return Err(Error::Pem {
            path: path.to_owned(),
            detail: format!("expected an {ENCRYPTED_LABEL}, found {label}"),
        });
    }
    let enc = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).map_err(|e| Error::Pem {
        path: path.to_owned(),
        detail: format!("not a usable encrypted PKCS#8 key: {e}"),
    })?;
    // A wrong passphrase shows as a padding or decoding failure after decryption.
    let plain = enc
        .decrypt(pass.bytes())
        .map_err(|_| Error::WrongPassphrase {
            path: path.to_owned(),
        })?;
    plain
        .to_pem("PRIVATE KEY", LineEnding::LF)
        .map_err(|e| Error::Pem {
            path: path.to_owned(),
            detail: format!("cannot re-encode the decrypted key: {e}"),
        })
}
