//! Loading PKCS#11 modules once per process, finding tokens by label, and
//! mapping PKCS#11 errors to ours.
//!
//! `C_Initialize` may be called once per process and module; a second call
//! returns `CKR_CRYPTOKI_ALREADY_INITIALIZED` and a `C_Finalize` would pull
//! the module from under every other user. So every protector, test and
//! benchmark gets its context from [`module`], which loads and initialises
//! each module path once and never finalises it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::slot::Slot;

use crate::error::{Error, Result};

static MODULES: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();

/// The process-wide, initialised context of the PKCS#11 module at `path`.
pub fn module(path: &Path) -> Result<Pkcs11> {
    let key = path.canonicalize().map_err(|e| Error::io(path, e))?;
    let mut modules = MODULES
        .get_or_init(Default::default)
        .lock()
        // Entries are inserted whole, so a poisoned map is still consistent.
        .unwrap_or_else(|e| e.into_inner());
    if let Some(ctx) = modules.get(&key) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(&key).map_err(|e| Error::Module {
        reason: format!("cannot load {}: {e}", key.display()),
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(map(e)),
    }
    modules.insert(key, ctx.clone());
    Ok(ctx)
}

/// The slot holding the initialised token labelled `label`.
pub(crate) fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot> {
    let mut found = Vec::new();
    for slot in ctx.get_slots_with_initialized_token().map_err(map)? {
        let info = ctx.get_token_info(slot).map_err(map)?;
        if info.label().trim_end() == label {
            found.push(slot);
        }
    }
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(Error::TokenNotFound {
            label: label.to_string(),
        }),
        _ => Err(Error::Config {
            reason: format!(
                "{} tokens are labelled {label:?}; labels must be unique",
                found.len()
            ),
        }),
    }
}

/// Maps a cryptoki error to ours, naming the function and return code the
/// way PKCS#11 documentation does (`C_Encrypt`, `CKR_DEVICE_ERROR`).
pub(crate) fn map(e: CkError) -> Error {
    match e {
        CkError::Pkcs11(rv, function) => Error::Pkcs11 {
            function: format!("C_{function:?}"),
            rv: rv_name(rv),
        },
        other => Error::Module {
            reason: other.to_string(),
        },
    }
}

/// `GeneralError` becomes `CKR_GENERAL_ERROR`.
fn rv_name(rv: RvError) -> String {
    match rv {
        RvError::UnknownErrorCode(code) => format!("CKR_{code:#x}"),
        RvError::VendorDefined(code) => format!("CKR_VENDOR_DEFINED({code:#x})"),
        other => {
            let camel = format!("{other:?}");
            let mut out = String::from("CKR");
            for c in camel.chars() {
                if c.is_ascii_uppercase() {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// Errors after which the session (or login) is gone and a fresh session may
/// succeed: the token was removed and reinserted, the module restarted its
/// sessions, or the login expired.
pub(crate) fn is_session_lost(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::UserNotLoggedIn
            | RvError::TokenNotPresent
            | RvError::DeviceRemoved
            | RvError::TokenNotRecognized
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use cryptoki::context::Function;

    #[test]
    fn names_follow_pkcs11() {
        assert_eq!(rv_name(RvError::GeneralError), "CKR_GENERAL_ERROR");
        assert_eq!(rv_name(RvError::UserNotLoggedIn), "CKR_USER_NOT_LOGGED_IN");
        let e = map(CkError::Pkcs11(RvError::DeviceError, Function::Encrypt));
        assert_eq!(e.to_string(), "PKCS#11 C_Encrypt failed: CKR_DEVICE_ERROR");
    }
}
