//! File names inside a PKI directory (`<data dir>/certs`).
//!
//! ```text
//! ca.crt, ca.key              kmipd's CA (key 0600)
//! server.crt, server.key      the KMS server certificate and key (key 0600)
//! <name>.crt, <name>.key      client certificates from `issue-client` (admin, vcenter, ...)
//! pins.txt                    pinned leaf certificates and their roles (see `trust`)
//! pinned/<sha256hex>.crt      copies of the pinned certificates
//! trusted-cas/<role>/<stem>.crt   foreign CAs trusted for one role each
//! ```

/// The CA certificate.
pub const CA_CERT: &str = "ca.crt";
/// The CA private key.
pub const CA_KEY: &str = "ca.key";
/// The server certificate.
pub const SERVER_CERT: &str = "server.crt";
/// The server private key.
pub const SERVER_KEY: &str = "server.key";
/// The pin list.
pub const PINS: &str = "pins.txt";
/// Folder of pinned certificate copies.
pub const PINNED_DIR: &str = "pinned";
/// Folder of trusted foreign CAs, one sub-folder per role.
pub const TRUSTED_CAS_DIR: &str = "trusted-cas";
