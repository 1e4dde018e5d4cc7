//! The key-protection trait the server programs against, and what it reports.
//!
//! Every method blocks: a PKCS#11 call can take milliseconds on a network HSM,
//! so the server calls these from `tokio::task::spawn_blocking`. The PKCS#11
//! backend bounds each call by its configured timeout.

use std::fmt;

use zeroize::Zeroizing;

use crate::blob::{BackendKind, WrappedKey};
use crate::error::Result;

/// Protects key material under a versioned master key, binding each wrapped
/// key to the identity of the object that owns it.
///
/// All backends share the wrapped format, the algorithm (AES-256-GCM with
/// associated data, see [`crate::blob`]) and these semantics:
///
/// * `protect` seals 1 to [`crate::blob::MAX_PLAINTEXT_LEN`] bytes under the
///   current master key version; an empty plaintext is refused.
/// * `unprotect` opens a blob only with the identity it was sealed with, only
///   if the blob came from the same kind of backend and only while its master
///   key version exists.
/// * Master key versions start at 1 and only grow; the current one is the
///   highest and cannot be retired.
pub trait KeyProtector: Send + Sync + fmt::Debug {
    /// Seals `plaintext` for the object `identity` under the current master
    /// key version.
    fn protect(&self, identity: &[u8], plaintext: &[u8]) -> Result<WrappedKey>;

    /// Opens a blob sealed for `identity`.
    fn unprotect(&self, identity: &[u8], wrapped: &WrappedKey) -> Result<Zeroizing<Vec<u8>>>;

    /// The master key version `protect` uses.
    fn current_version(&self) -> u32;

    /// Generates a new master key version inside the backend and makes it
    /// current. Blobs under older versions still open.
    fn new_version(&self) -> Result<u32>;

    /// All master key versions held, in increasing order.
    fn versions(&self) -> Result<Vec<MasterKeyInfo>>;

    /// Destroys master key version `version`. Every blob under it becomes
    /// unreadable, so re-wrap them first. The current version is refused.
    fn retire_version(&self, version: u32) -> Result<()>;

    /// Checks that the backend can serve requests. Never blocks longer than
    /// the backend's timeout.
    fn health(&self) -> Health;

    /// The kind of this backend, as recorded in its blobs.
    fn backend(&self) -> BackendKind;
}

/// One master key version as listed by [`KeyProtector::versions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MasterKeyInfo {
    /// The version number (>= 1).
    pub version: u32,
    /// Whether `protect` uses it.
    pub current: bool,
    /// Where the key lives: the PKCS#11 label, or the key file path with the
    /// version.
    pub label: String,
}

/// Whether a backend can serve requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Ready.
    Ok,
    /// Serving, but something needs attention (for example some sessions
    /// are stuck in calls that timed out).
    Degraded {
        /// What needs attention.
        reason: String,
    },
    /// Not serving.
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl Health {
    /// True unless unavailable.
    pub fn is_serving(&self) -> bool {
        !matches!(self, Health::Unavailable { .. })
    }
}

/// Opens `wrapped` with `from` and seals the plaintext with `to` under its
/// current version, for the same identity.
///
/// This is the only way a store moves between backends (software to PKCS#11
/// or back, or from one HSM to another), and also how a store moves its blobs
/// to the current master key version before retiring an old one (`from` and
/// `to` the same protector). The plaintext lives only in a zeroizing buffer.
pub fn rewrap(
    from: &dyn KeyProtector,
    to: &dyn KeyProtector,
    wrapped: &WrappedKey,
    identity: &[u8],
) -> Result<WrappedKey> {
    let plaintext = from.unprotect(identity, wrapped)?;
    to.protect(identity, &plaintext)
}
