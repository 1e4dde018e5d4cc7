//! The `[hsm]` section of the server configuration, and opening a backend
//! from it.
//!
//! ```toml
//! [hsm]
//! backend = "pkcs11"                      # or "software"
//! module = "/usr/lib/softhsm/libsofthsm2.so"
//! token_label = "kmipd"
//! pin_file = "/etc/kmipd/hsm.pin"         # or: pin_env = "KMIPD_HSM_PIN"
//! key_label_prefix = "kmipd-master-v"
//! sessions = 8
//! timeout_ms = 5000
//! ```
//!
//! No field holds a secret: the PIN is named by a file or an environment
//! variable, never written in the configuration or on a command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fsutil;
use crate::pkcs11::Pkcs11Protector;
use crate::protector::KeyProtector;
use crate::software::SoftwareProtector;

/// Default master key label prefix; version N is labelled `kmipd-master-vN`.
pub const DEFAULT_KEY_LABEL_PREFIX: &str = "kmipd-master-v";
/// Default timeout of one PKCS#11 call, in milliseconds.
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;

/// Which backend protects the keys, and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum HsmConfig {
    /// Master keys in a local key file (no HSM).
    Software(SoftwareConfig),
    /// Master keys in a PKCS#11 token.
    Pkcs11(Pkcs11Config),
}

/// Configuration of the software backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SoftwareConfig {
    /// The master-key file (mode 0600).
    pub key_file: PathBuf,
    /// Create the key file with a first master key if it does not exist.
    #[serde(default)]
    pub create_if_missing: bool,
}

/// Configuration of the PKCS#11 backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// Path of the vendor's PKCS#11 module (`.so`).
    pub module: PathBuf,
    /// Label of the token (partition) holding the master keys. Tokens are
    /// found by label because slot numbers change (SoftHSM2 renumbers them).
    pub token_label: String,
    /// File holding the user PIN (mode 0600; one trailing newline ignored).
    #[serde(default)]
    pub pin_file: Option<PathBuf>,
    /// Environment variable holding the user PIN.
    #[serde(default)]
    pub pin_env: Option<String>,
    /// Master key version N is the AES key labelled `{key_label_prefix}{N}`.
    #[serde(default = "default_prefix")]
    pub key_label_prefix: String,
    /// Number of logged-in sessions (and worker threads); default 4 × cores.
    #[serde(default)]
    pub sessions: Option<usize>,
    /// How long a caller waits for one PKCS#11 operation, in milliseconds.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Generate master key version 1 in the token if it holds none.
    #[serde(default)]
    pub create_if_missing: bool,
}

fn default_prefix() -> String {
    DEFAULT_KEY_LABEL_PREFIX.to_string()
}

fn default_timeout() -> u64 {
    DEFAULT_TIMEOUT_MS
}

impl Pkcs11Config {
    /// A configuration with the defaults and the PIN read from `pin_env`.
    pub fn new(module: impl Into<PathBuf>, token_label: impl Into<String>) -> Self {
        Pkcs11Config {
            module: module.into(),
            token_label: token_label.into(),
            pin_file: None,
            pin_env: None,
            key_label_prefix: default_prefix(),
            sessions: None,
            timeout_ms: DEFAULT_TIMEOUT_MS,
            create_if_missing: false,
        }
    }

    /// The number of sessions to open.
    pub fn session_count(&self) -> usize {
        self.sessions
            .unwrap_or_else(|| 4 * std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Checks the values that deserialisation cannot.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::Config { reason });
        if self.token_label.is_empty() || self.token_label.len() > 32 {
            return bad("token_label must be 1 to 32 characters (PKCS#11 limit)".into());
        }
        match (&self.pin_file, &self.pin_env) {
            (Some(_), Some(_)) => return bad("give either pin_file or pin_env, not both".into()),
            (None, None) => return bad("give pin_file or pin_env for the token's user PIN".into()),
            _ => {}
        }
        if self.key_label_prefix.is_empty()
            || self
                .key_label_prefix
                .ends_with(|c: char| c.is_ascii_digit())
        {
            return bad("key_label_prefix must be non-empty and not end with a digit".into());
        }
        if self.session_count() == 0 || self.session_count() > 1024 {
            return bad("sessions must be between 1 and 1024".into());
        }
        if self.timeout_ms == 0 {
            return bad("timeout_ms must be positive".into());
        }
        Ok(())
    }

    /// Reads the user PIN from its file or environment variable.
    pub(crate) fn read_pin(&self) -> Result<Zeroizing<Vec<u8>>> {
        let mut pin = match (&self.pin_file, &self.pin_env) {
            (Some(path), None) => fsutil::read_secret_file(path)?,
            (None, Some(var)) => {
                let value = std::env::var_os(var).ok_or_else(|| Error::Config {
                    reason: format!("environment variable {var} (pin_env) is not set"),
                })?;
                Zeroizing::new(value.into_encoded_bytes())
            }
            _ => {
                return Err(self.validate().err().unwrap_or(Error::Config {
                    reason: "give pin_file or pin_env".into(),
                }))
            }
        };
        // Editors add a final newline; a PIN never ends with one.
        if pin.last() == Some(&b'\n') {
            pin.pop();
            if pin.last() == Some(&b'\r') {
                pin.pop();
            }
        }
        if pin.is_empty() {
            return Err(Error::Config {
                reason: "the PIN is empty".into(),
            });
        }
        Ok(pin)
    }
}

/// Opens the configured backend.
pub fn open(config: &HsmConfig) -> Result<Arc<dyn KeyProtector>> {
    match config {
        HsmConfig::Software(c) => Ok(Arc::new(open_software(c)?)),
        HsmConfig::Pkcs11(c) => Ok(Arc::new(Pkcs11Protector::open(c)?)),
    }
}

fn open_software(config: &SoftwareConfig) -> Result<SoftwareProtector> {
    let path: &Path = &config.key_file;
    if config.create_if_missing && !path.exists() {
        match SoftwareProtector::create(path) {
            // Lost a race with another creator: open theirs.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists => {
            }
            other => return other,
        }
    }
    SoftwareProtector::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Root {
        hsm: HsmConfig,
    }

    fn parse(text: &str) -> std::result::Result<HsmConfig, toml::de::Error> {
        toml::from_str::<Root>(text).map(|r| r.hsm)
    }

    #[test]
    fn module_doc_example_parses() {
        let text = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! [hsm]"))
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").trim_start())
            .collect::<Vec<_>>()
            .join("\n");
        let HsmConfig::Pkcs11(c) = parse(&text).unwrap() else {
            panic!("expected pkcs11")
        };
        assert_eq!(c.token_label, "kmipd");
        assert_eq!(c.pin_file.as_deref(), Some(Path::new("/etc/kmipd/hsm.pin")));
        assert_eq!(c.session_count(), 8);
        assert_eq!(c.timeout_ms, 5000);
        c.validate().unwrap();
    }

    #[test]
    fn software_and_defaults() {
        let c = parse("[hsm]\nbackend = \"software\"\nkey_file = \"/k\"\n").unwrap();
        assert_eq!(
            c,
            HsmConfig::Software(SoftwareConfig {
                key_file: "/k".into(),
                create_if_missing: false
            })
        );
        let c = parse("[hsm]\nbackend = \"pkcs11\"\nmodule = \"/m.so\"\ntoken_label = \"t\"\npin_env = \"P\"\n")
            .unwrap();
        let HsmConfig::Pkcs11(c) = c else { panic!() };
        assert_eq!(c.key_label_prefix, "kmipd-master-v");
        assert_eq!(c.timeout_ms, DEFAULT_TIMEOUT_MS);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_fields_and_backends_are_refused() {
        assert!(
            parse("[hsm]\nbackend = \"software\"\nkey_file = \"/k\"\npin = \"1234\"\n").is_err()
        );
        assert!(parse(
            "[hsm]\nbackend = \"pkcs11\"\nmodule = \"/m\"\ntoken_label = \"t\"\nslot = 0\n"
        )
        .is_err());
        assert!(parse("[hsm]\nbackend = \"tpm\"\n").is_err());
    }

    #[test]
    fn validation() {
        let mut c = Pkcs11Config::new("/m.so", "t");
        assert!(c.validate().is_err(), "no PIN source");
        c.pin_env = Some("X".into());
        c.validate().unwrap();
        c.pin_file = Some("/p".into());
        assert!(c.validate().is_err(), "two PIN sources");
        c.pin_file = None;
        c.key_label_prefix = "key1".into();
        assert!(
            c.validate().is_err(),
            "prefix ending in a digit is ambiguous"
        );
    }
}
