//! File helpers that enforce private modes regardless of the umask.

use std::fs::{self, DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::IpamError;

/// Mode of every file in the store.
pub(crate) const FILE_MODE: u32 = 0o600;
/// Mode of the network directory and its subdirectories.
pub(crate) const DIR_MODE: u32 = 0o700;
/// Mode of missing parents of the data directory.
const PARENT_MODE: u32 = 0o755;
/// Prefix of temporary files; never a valid IP or record name.
pub(crate) const TMP_PREFIX: &str = ".tmp.";

/// Creates `path` and its missing parents (0755).
pub(crate) fn create_parents(path: &Path) -> Result<(), IpamError> {
    DirBuilder::new()
        .recursive(true)
        .mode(PARENT_MODE)
        .create(path)
        .map_err(IpamError::io("creating directory", path))
}

/// Creates `path` as a 0700 directory, or tightens an existing one to 0700.
pub(crate) fn ensure_private_dir(path: &Path) -> Result<(), IpamError> {
    match DirBuilder::new().mode(DIR_MODE).create(path) {
        Err(e) if e.kind() != ErrorKind::AlreadyExists => {
            return Err(IpamError::io("creating directory", path)(e));
        }
        _ => {}
    }
    let meta = fs::metadata(path).map_err(IpamError::io("inspecting", path))?;
    if !meta.is_dir() {
        let e = io::Error::new(ErrorKind::AlreadyExists, "not a directory");
        return Err(IpamError::io("creating directory", path)(e));
    }
    if meta.permissions().mode() & 0o7777 != DIR_MODE {
        fs::set_permissions(path, Permissions::from_mode(DIR_MODE))
            .map_err(IpamError::io("setting mode of", path))?;
    }
    Ok(())
}

/// Opens (creating if needed) a private file for reading and writing.
pub(crate) fn open_private(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    fix_mode(&file)?;
    Ok(file)
}

/// Sets the file's mode to [`FILE_MODE`] if the umask or an old version
/// left it different.
fn fix_mode(file: &File) -> io::Result<()> {
    if file.metadata()?.permissions().mode() & 0o7777 != FILE_MODE {
        file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    }
    Ok(())
}

/// Creates `path` exclusively (`O_EXCL`) with `content`; removes it again if
/// writing fails.
pub(crate) fn create_exclusive(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)?;
    let written = fix_mode(&file).and_then(|()| file.write_all(content));
    if written.is_err() {
        let _ = fs::remove_file(path);
    }
    written
}

/// Replaces `dir/name` with `content` via a temporary file and rename(2): a reader (or a
/// later DEL after a kill) sees the old file or the whole new one, never a torn one.
pub(crate) fn write_atomic(dir: &Path, name: &str, content: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{TMP_PREFIX}{name}"));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&tmp)?;
    fix_mode(&file)?;
    file.write_all(content)?;
    drop(file);
    fs::rename(&tmp, dir.join(name))
}

/// Overwrites `path` with `content` in place (for hints that may be lost or torn).
pub(crate) fn write_in_place(path: &Path, content: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)?;
    fix_mode(&file)?;
    file.write_all(content)
}

/// Reads a file; `None` if it does not exist.
pub(crate) fn read_opt(path: &Path) -> Result<Option<String>, IpamError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IpamError::io("reading", path)(e)),
    }
}

/// Removes a file; `false` if it did not exist.
pub(crate) fn remove_opt(path: &Path) -> Result<bool, IpamError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IpamError::io("removing", path)(e)),
    }
}

/// Whether anything exists at `path` (symlinks are not followed).
pub(crate) fn exists(path: &Path) -> Result<bool, IpamError> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IpamError::io("inspecting", path)(e)),
    }
}

/// The names and paths of the entries of `dir`.
pub(crate) fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, IpamError> {
    let entries = fs::read_dir(dir).map_err(IpamError::io("listing", dir))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(IpamError::io("listing", dir))?;
        if let Some(name) = entry.file_name().to_str() {
            out.push((name.to_owned(), entry.path()));
        }
    }
    Ok(out)
}

/// Removes leftover temporary files of interrupted writes in `dir`.
pub(crate) fn sweep_tmp(dir: &Path) -> Result<(), IpamError> {
    for (name, path) in list_dir(dir)? {
        if name.starts_with(TMP_PREFIX) {
            remove_opt(&path)?;
        }
    }
    Ok(())
}
