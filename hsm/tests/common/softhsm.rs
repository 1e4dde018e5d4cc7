//! A throwaway SoftHSM2 token for tests and benchmarks.
//!
//! SoftHSM2 reads `SOFTHSM2_CONF` once, at `C_Initialize`, and a process can
//! initialise a module only once; so each test process creates one token in
//! a fresh directory, points `SOFTHSM2_CONF` at it before the first
//! `C_Initialize`, and every test of the process shares that token, each
//! with its own master key label prefix.
//!
//! SoftHSM2 must be installed: the tests fail (never skip) without it.
//! `scripts/test.sh` installs it (`apt-get install -y softhsm2`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kmipd_hsm::Pkcs11Config;

/// The token label of the test token.
pub const TOKEN_LABEL: &str = "kmipd-test";
/// The user PIN of the test token (test only!).
pub const USER_PIN: &str = "123456";
/// Environment variable through which tests pass the PIN.
pub const PIN_ENV: &str = "KMIPD_TEST_HSM_PIN";
const SO_PIN: &str = "12345678";
const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// The test token of this process.
#[derive(Debug)]
pub struct TestToken {
    /// The SoftHSM2 module.
    pub module: PathBuf,
    /// Where the token lives (kept for the life of the process).
    pub dir: PathBuf,
}

static TOKEN: OnceLock<TestToken> = OnceLock::new();

fn missing(what: &str) -> ! {
    panic!(
        "SoftHSM2 is required by the kmipd-hsm tests and {what}. \
         Run scripts/test.sh, which installs it, or `apt-get install -y softhsm2`; \
         set KMIPD_TEST_PKCS11_MODULE if libsofthsm2.so lives elsewhere."
    )
}

/// Creates the token on first use.
pub fn token() -> &'static TestToken {
    TOKEN.get_or_init(|| {
        let module = std::env::var_os("KMIPD_TEST_PKCS11_MODULE")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE));
        if !module.exists() {
            missing(&format!("its module {} is missing", module.display()));
        }
        // Under target/tmp so that a crashed run leaves nothing in /tmp.
        let dir = tempfile::Builder::new()
            .prefix("softhsm-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("create token directory")
            .keep();
        let tokens = dir.join("tokens");
        std::fs::create_dir(&tokens).expect("create token directory");
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("write softhsm2.conf");
        // Set before any C_Initialize in this process (this runs first).
        std::env::set_var("SOFTHSM2_CONF", &conf);
        std::env::set_var(PIN_ENV, USER_PIN);
        let out = Command::new("softhsm2-util")
            .env("SOFTHSM2_CONF", &conf)
            .args(["--init-token", "--free", "--label", TOKEN_LABEL])
            .args(["--so-pin", SO_PIN, "--pin", USER_PIN])
            .output()
            .unwrap_or_else(|e| missing(&format!("softhsm2-util cannot be run ({e})")));
        assert!(
            out.status.success(),
            "softhsm2-util --init-token failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        TestToken { module, dir }
    })
}

/// A configuration for the test token whose master keys are labelled
/// `t-{name}-vN`, so that tests sharing the token do not see each other's.
pub fn config(name: &str) -> Pkcs11Config {
    let token = token();
    let mut c = Pkcs11Config::new(&token.module, TOKEN_LABEL);
    c.pin_env = Some(PIN_ENV.into());
    c.key_label_prefix = format!("t-{name}-v");
    c.sessions = Some(4);
    c.timeout_ms = 30_000;
    c.create_if_missing = true;
    c
}

/// Writes a PIN file with `mode` in the token directory.
pub fn pin_file(name: &str, pin: &str, mode: u32) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = token().dir.join(name);
    std::fs::write(&path, format!("{pin}\n")).expect("write PIN file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path
}

/// The token directory.
pub fn dir() -> &'static Path {
    &token().dir
}
