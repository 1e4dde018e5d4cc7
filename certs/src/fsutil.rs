//! Atomic file writes with explicit permissions.
//!
//! Every file is written to a temporary file in the target directory, flushed, given its mode
//! and renamed over the target, so a reader (the server reloading its certificates) never sees
//! a half-written file and a crash never leaves one behind.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Mode of private key files.
pub(crate) const KEY_MODE: u32 = 0o600;
/// Mode of certificates and trust lists.
pub(crate) const PUBLIC_MODE: u32 = 0o644;

/// Creates `dir` and its parents (mode 0700 for the directories created).
pub(crate) fn ensure_dir(dir: &Path) -> Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| Error::io(dir, e))
}

/// Writes `data` to `path` atomically with the given mode. With `overwrite == false` an
/// existing file is an error ([`Error::AlreadyExists`]) and is left untouched.
pub(crate) fn write_atomic(path: &Path, data: &[u8], mode: u32, overwrite: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    ensure_dir(dir)?;
    // tempfile creates the file with mode 0600, so a key is never readable by others, even
    // for a moment.
    let mut tmp = tempfile::Builder::new()
        .prefix(".kmipd-tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(data).map_err(|e| Error::io(tmp.path(), e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(tmp.path(), e))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.as_file()
        .sync_all()
        .map_err(|e| Error::io(tmp.path(), e))?;
    if overwrite {
        tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    } else {
        tmp.persist_noclobber(path).map_err(|e| {
            if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                Error::AlreadyExists {
                    path: path.to_owned(),
                }
            } else {
                Error::io(path, e.error)
            }
        })?;
    }
    // Make the rename durable; failure to sync a directory is not worth failing the write.
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}
