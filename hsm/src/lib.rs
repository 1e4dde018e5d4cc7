//! Key protection for kmipd: every managed key is stored wrapped under a
//! master key that, in production, never leaves an HSM.
//!
//! The server programs against [`KeyProtector`] and knows nothing of the
//! backend; this crate knows nothing of KMIP. Two backends pass one test
//! suite and write one blob format:
//!
//! * [`Pkcs11Protector`]: master keys generated inside a PKCS#11 token (any
//!   HSM; SoftHSM2 in tests), AES-256-GCM run by the token.
//! * [`SoftwareProtector`]: master keys in a local 0600 key file, AES-256-GCM
//!   through `aes-gcm`; for development, CI and HSM-less installations.
//!
//! Both seal with AES-256-GCM and associated data binding the blob to its
//! object identity and master key version (see [`blob`]). Moving a store
//! from one backend to another is an explicit [`rewrap`].

#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod blob;
mod config;
mod error;
mod fsutil;
pub mod pkcs11;
mod protector;
mod software;

pub use blob::{Algorithm, BackendKind, WrappedKey};
pub use config::{
    open, HsmConfig, Pkcs11Config, SoftwareConfig, DEFAULT_KEY_LABEL_PREFIX, DEFAULT_TIMEOUT_MS,
};
pub use error::{Error, Result};
pub use pkcs11::Pkcs11Protector;
pub use protector::{rewrap, Health, KeyProtector, MasterKeyInfo};
pub use software::SoftwareProtector;

/// The `cryptoki` crate this backend is built on, for callers (tests, tools)
/// that inspect the token directly through [`pkcs11::module`].
pub use cryptoki;
