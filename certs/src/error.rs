//! The library's error type.
//!
//! Errors carry the path or the field they concern, so that `kmipctl` can print them as they
//! are and an administrator knows which file to look at.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `kmipd-certs`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no PEM section of the expected kind, or its PEM is malformed.
    #[error("{path}: {detail}")]
    Pem {
        /// The file concerned (or `<memory>`).
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// A DER certificate or CSR could not be parsed.
    #[error("cannot parse {what}: {detail}")]
    Parse {
        /// What was being parsed.
        what: &'static str,
        /// The parser's message.
        detail: String,
    },
    /// rcgen refused to build a certificate or to load a key.
    #[error("certificate generation: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// RSA key generation or encoding failed.
    #[error("RSA key generation: {0}")]
    Rsa(String),
    /// The CSR's self-signature does not verify: it was altered or is not a CSR at all.
    #[error(
        "the CSR's signature does not verify: the request was altered, or it uses a key or \
         algorithm kmipd refuses (RSA under 2048 bits, SHA-1)"
    )]
    CsrSignature,
    /// The CSR's subject cannot be copied faithfully.
    #[error("the CSR's subject cannot be kept as is: {detail}")]
    CsrSubject {
        /// Why.
        detail: String,
    },
    /// A role name is not acceptable.
    #[error("invalid role {role:?}: use 1 to 64 characters among a-z A-Z 0-9 . _ -")]
    InvalidRole {
        /// The rejected role.
        role: String,
    },
    /// A client name is not acceptable (it becomes a file name and a CN).
    #[error("invalid name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A DNS name or IP address given for a SAN is not acceptable.
    #[error("invalid subject alternative name {value:?}: {reason}")]
    InvalidSan {
        /// The rejected value.
        value: String,
        /// Why.
        reason: String,
    },
    /// Some of the files of a PKI directory exist and others do not.
    #[error(
        "PKI directory {dir} is incomplete: missing {missing:?} (present: {present:?}); \
         restore the missing files or remove the directory to generate a new PKI"
    )]
    Incomplete {
        /// The directory.
        dir: PathBuf,
        /// Files that are missing.
        missing: Vec<String>,
        /// Files that exist.
        present: Vec<String>,
    },
    /// Files that exist do not belong together (key does not match certificate, certificate
    /// not issued by the CA, ...).
    #[error("{path}: {detail}")]
    Inconsistent {
        /// The offending file.
        path: PathBuf,
        /// What does not match.
        detail: String,
    },
    /// The target file exists and overwriting was not asked for.
    #[error("{path} already exists (use --force to replace it)")]
    AlreadyExists {
        /// The existing file.
        path: PathBuf,
    },
    /// No kmipd CA in the PKI directory (needed to issue or sign).
    #[error("no CA in {dir}: run `kmipctl certs init` first (missing {missing})")]
    NoCa {
        /// The directory searched.
        dir: PathBuf,
        /// The missing file name.
        missing: &'static str,
    },
    /// A certificate was offered as a CA but is not one.
    #[error(
        "{path}: not a CA certificate (basicConstraints CA:TRUE absent); to trust a single \
             self-signed certificate use `kmipctl certs pin`"
    )]
    NotCa {
        /// The offending file.
        path: PathBuf,
    },
    /// A line of the pin list cannot be parsed.
    #[error("{path}:{line}: {detail}")]
    PinList {
        /// The pin list file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was wrong.
        detail: String,
    },
    /// The CA key is encrypted and no passphrase was given.
    #[error(
        "{path} is encrypted: give its passphrase with --ca-passphrase-file FILE or the \
         KMIPD_CA_PASSPHRASE environment variable"
    )]
    PassphraseRequired {
        /// The encrypted key file.
        path: PathBuf,
    },
    /// The passphrase does not decrypt the CA key.
    #[error("{path}: wrong passphrase (or the encrypted key is damaged)")]
    WrongPassphrase {
        /// The encrypted key file.
        path: PathBuf,
    },
    /// A passphrase cannot be read or used.
    #[error("{detail}")]
    Passphrase {
        /// What was wrong.
        detail: String,
    },
    /// A key type that this crate does not handle.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn parse(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Error::Parse {
            what,
            detail: detail.to_string(),
        }
    }
}
