//! Certificate bundles and keys as files: `tls.crt`, `tls.key`, `ca.crt` in
//! a directory, the layout of a mounted `kubernetes.io/tls` Secret.
//!
//! Every file is written to a temporary file in the same directory, synced,
//! and renamed over the old one, so a reader (a web server reloading its
//! certificate, the proxy sidecar) sees the old file or the new one, never
//! half of one. Private keys are created with mode 0600 from the start,
//! never chmod-ed after their content is on disk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::Bundle;

/// `tls.crt`: the leaf, then the intermediates.
pub const CERT_FILE: &str = "tls.crt";
/// `tls.key`: the private key.
pub const KEY_FILE: &str = "tls.key";
/// `ca.crt`: the root the chain leads to, when the issuer knows it.
pub const CA_FILE: &str = "ca.crt";

const PRIVATE: u32 = 0o600;
const PUBLIC: u32 = 0o644;

/// Writes `bundle` into `dir` (created if missing). The key goes first and
/// the certificate right after it, each atomically; `ca.crt` is written
/// when the bundle has a CA, and a stale one is removed when it has none,
/// so the three files always describe one issuance. The bundle is written
/// as given: check it before calling this.
pub fn write_bundle(dir: &Path, bundle: &Bundle) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    // Stage everything first: a full disk or a permission problem then
    // fails before any file was replaced.
    let key = stage(dir, KEY_FILE, bundle.key_pem.as_bytes(), PRIVATE)?;
    let cert = stage(dir, CERT_FILE, bundle.chain_pem.as_bytes(), PUBLIC)?;
    let ca = match &bundle.ca_pem {
        Some(ca) => Some(stage(dir, CA_FILE, ca.as_bytes(), PUBLIC)?),
        None => None,
    };
    key.commit()?;
    cert.commit()?;
    match ca {
        Some(ca) => ca.commit()?,
        None => match fs::remove_file(dir.join(CA_FILE)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        },
    }
    sync_dir(dir);
    Ok(())
}

/// Replaces `path` atomically with `contents`, with the given Unix mode.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = parent(path);
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    stage(dir, name, contents, mode)?.commit()?;
    sync_dir(dir);
    Ok(())
}

/// Creates `path` with `contents` and mode 0600, failing with
/// [`io::ErrorKind::AlreadyExists`] if it exists: for keys that must never
/// be replaced (an ACME account key). The file appears complete or not at
/// all.
pub fn create_new_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = parent(path);
    if !dir.as_os_str().is_empty() {
        fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let staged = stage(dir, name, contents, PRIVATE)?;
    // A hard link never replaces an existing file, unlike rename. Dropping
    // `staged` removes the temporary name either way.
    fs::hard_link(&staged.temp, path)?;
    drop(staged);
    sync_dir(dir);
    Ok(())
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or_else(|| Path::new(""))
}

/// A complete, synced temporary file waiting to be renamed into place.
/// Dropped uncommitted, it removes its temporary file.
struct Staged {
    temp: PathBuf,
    target: PathBuf,
    committed: bool,
}

impl Staged {
    fn commit(mut self) -> io::Result<()> {
        fs::rename(&self.temp, &self.target)?;
        // The temporary name is free again and may already belong to
        // another writer's file: never remove it after the rename.
        self.committed = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

/// Distinguishes the temporary files of concurrent writers in one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

fn stage(dir: &Path, name: &str, contents: &[u8], mode: u32) -> io::Result<Staged> {
    let dir_or_here = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    for _attempt in 0u32..16 {
        let unique = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
        let temp = dir_or_here.join(format!(".{name}.{}.{unique}.tmp", std::process::id()));
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        let mut file: File = match options.open(&temp) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        };
        let staged = Staged {
            temp,
            target: dir_or_here.join(name),
            committed: false,
        };
        file.write_all(contents)?;
        file.sync_all()?;
        return Ok(staged);
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "cannot create a temporary file for {name} in {}",
            dir_or_here.display()
        ),
    ))
}

/// Removes, under `root` (recursively), the temporary files writers left
/// behind when they were killed between staging and renaming (`kill -9`,
/// a power cut): `.<name>.<pid>.<n>.tmp` whose process is gone. A file of
/// a live process (another certweave writing now) is left alone. Returns
/// how many were removed.
pub fn sweep_stale_temps(root: &Path) -> usize {
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(temp_owner) else {
                continue;
            };
            if !process_alive(pid) && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// The writer's process id, when `name` is a temporary file of [`stage`].
fn temp_owner(name: &str) -> Option<u32> {
    let inner = name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = inner.rsplitn(3, '.');
    let _unique: u64 = parts.next()?.parse().ok()?;
    let pid: u32 = parts.next()?.parse().ok()?;
    let _target = parts.next().filter(|t| !t.is_empty())?;
    Some(pid)
}

/// Whether process `pid` exists (on systems without `/proc`, every
/// process is taken to exist, so nothing is removed).
fn process_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    let proc = Path::new("/proc");
    !proc.is_dir() || proc.join(pid.to_string()).exists()
}

/// Makes the renames durable. Best effort: not every filesystem allows
/// opening a directory.
fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temps_of_dead_writers_are_swept_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("state/certificates/default");
        fs::create_dir_all(&nested).unwrap();
        // A process that has exited: its pid names no process now.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = nested.join(format!(".web.json.{dead}.3.tmp"));
        let live = nested.join(format!(".web.json.{}.4.tmp", std::process::id()));
        let unrelated = nested.join(".hidden.tmp");
        let data = nested.join("web.json");
        for path in [&stale, &live, &unrelated, &data] {
            fs::write(path, b"x").unwrap();
        }
        assert_eq!(sweep_stale_temps(dir.path()), 1);
        assert!(!stale.exists());
        assert!(live.exists() && unrelated.exists() && data.exists());
        assert_eq!(temp_owner(".tls.key.12.0.tmp"), Some(12));
        assert_eq!(temp_owner(".12.0.tmp"), None);
        assert_eq!(temp_owner("tls.key"), None);
    }

    fn bundle(ca: Option<&str>) -> Bundle {
        Bundle {
            chain_pem: "CHAIN".into(),
            key_pem: "KEY".into(),
            ca_pem: ca.map(str::to_owned),
        }
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn bundles_are_written_whole_with_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        write_bundle(&out, &bundle(Some("CA"))).unwrap();
        assert_eq!(fs::read_to_string(out.join(CERT_FILE)).unwrap(), "CHAIN");
        assert_eq!(fs::read_to_string(out.join(KEY_FILE)).unwrap(), "KEY");
        assert_eq!(fs::read_to_string(out.join(CA_FILE)).unwrap(), "CA");
        #[cfg(unix)]
        {
            assert_eq!(mode(&out.join(KEY_FILE)), 0o600);
            assert_eq!(mode(&out.join(CERT_FILE)), 0o644);
        }
        // A bundle without a CA removes the stale ca.crt.
        write_bundle(&out, &bundle(None)).unwrap();
        assert!(!out.join(CA_FILE).exists());
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn create_new_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/account.key");
        create_new_private(&path, b"first").unwrap();
        let err = create_new_private(&path, b"second").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read_to_string(&path).unwrap(), "first");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
        assert_eq!(fs::read_dir(dir.path().join("keys")).unwrap().count(), 1);
    }

    #[test]
    fn atomic_writes_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        write_atomic(&path, b"one", 0o644).unwrap();
        write_atomic(&path, b"two", 0o600).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "two");
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn concurrent_writers_of_one_file_do_not_disturb_each_other() {
        // Many tasks creating the same account key at once: exactly one
        // wins, every other one is told it exists, none fails otherwise.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/account.key");
        let outcomes: Vec<io::Result<()>> = std::thread::scope(|scope| {
            let writers: Vec<_> = (0..16)
                .map(|i| {
                    let path = &path;
                    scope.spawn(move || create_new_private(path, format!("key {i}").as_bytes()))
                })
                .collect();
            writers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        let created = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(created, 1, "{outcomes:?}");
        for outcome in outcomes.iter().filter_map(|o| o.as_ref().err()) {
            assert_eq!(outcome.kind(), io::ErrorKind::AlreadyExists, "{outcome}");
        }
        // And replacing writers all succeed, leaving no temporary files.
        let replaced = dir.path().join("keys/state.json");
        std::thread::scope(|scope| {
            for i in 0..16 {
                let replaced = &replaced;
                scope.spawn(move || {
                    for round in 0..20 {
                        write_atomic(replaced, format!("{i}.{round}").as_bytes(), 0o644).unwrap();
                    }
                });
            }
        });
        let names: Vec<_> = fs::read_dir(dir.path().join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}
