//! The error type of every key-protection operation.
//!
//! Variants are structured so that the server can map them to KMIP result
//! reasons and to log fields without parsing strings. No variant ever carries
//! key material or a PIN.

use std::path::PathBuf;

use crate::blob::BackendKind;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while protecting or unprotecting a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The blob names a master key version this backend does not hold
    /// (never generated here, or retired).
    #[error("master key version {version} is unknown to this backend")]
    UnknownVersion {
        /// The version named by the blob or the caller.
        version: u32,
    },

    /// Authentication failed: the blob was corrupted, tampered with, or is
    /// being opened under another identity than the one it was bound to.
    /// Deliberately says nothing more.
    #[error("integrity check failed: the wrapped key is corrupted or bound to another identity")]
    IntegrityFailure,

    /// The blob is not a well-formed wrapped key.
    #[error("malformed wrapped key: {reason}")]
    Malformed {
        /// What was wrong with it.
        reason: &'static str,
    },

    /// The blob was produced by another kind of backend; moving a store
    /// between backends is an explicit re-wrap (see [`crate::rewrap`]).
    #[error("wrapped key was produced by the {found} backend, this is the {expected} backend; re-wrap it explicitly")]
    WrongBackend {
        /// The backend asked to open the blob.
        expected: BackendKind,
        /// The backend recorded in the blob.
        found: BackendKind,
    },

    /// The caller's input is outside what this crate accepts.
    #[error("invalid input: {reason}")]
    InvalidInput {
        /// Why it was refused.
        reason: &'static str,
    },

    /// The configuration is unusable.
    #[error("configuration error: {reason}")]
    Config {
        /// What is wrong, for the operator.
        reason: String,
    },

    /// A secret file (master-key file or PIN file) is readable by group or
    /// others.
    #[error("{} has mode {mode:04o}; it must be readable by its owner only (chmod 600)", path.display())]
    InsecurePermissions {
        /// The offending file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The master-key file is not in our format.
    #[error("master key file {} is invalid at line {line}: {reason}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// One-based line number (0 when not line-specific).
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },

    /// The master key version cannot be retired because it is the current one.
    #[error(
        "master key version {version} is current and cannot be retired; create a new version first"
    )]
    RetireCurrent {
        /// The current version.
        version: u32,
    },

    /// No token with this label is present.
    #[error("no PKCS#11 token labelled {label:?} is present")]
    TokenNotFound {
        /// The configured label.
        label: String,
    },

    /// A PKCS#11 function returned an error code.
    #[error("PKCS#11 {function} failed: {rv}")]
    Pkcs11 {
        /// The PKCS#11 function, e.g. `C_Encrypt`.
        function: String,
        /// The return value, e.g. `CKR_DEVICE_ERROR`.
        rv: String,
    },

    /// The PKCS#11 module could not be loaded or used (not a return code).
    #[error("PKCS#11 module error: {reason}")]
    Module {
        /// What failed.
        reason: String,
    },

    /// The backend did not answer within the configured timeout.
    #[error("the HSM did not answer within {timeout_ms} ms")]
    Timeout {
        /// The configured timeout.
        timeout_ms: u64,
    },

    /// The backend has been shut down or its workers are gone.
    #[error("the key protector is unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },

    /// An I/O error on a file of this crate.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
