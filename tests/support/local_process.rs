//! `certweave local` as a child process, for the tests that run it:
//! start it on a directory, read its log, wait for files, stop it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use certweave::pki::{self, CertInfo};

pub struct Local {
    child: Child,
    log: PathBuf,
}

impl Local {
    pub fn start(dir: &Path) -> Self {
        Self::start_with(dir, &[])
    }

    pub fn start_with(dir: &Path, extra: &[&str]) -> Self {
        Self::start_with_env(dir, extra, &[])
    }

    /// [`Local::start_with`] with `env` added to the process's environment.
    pub fn start_with_env(dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Self {
        let log = dir.join(format!(
            "local-{}.log",
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_certweave"))
            .args(["local", "--dir"])
            .arg(dir)
            .args(extra)
            .envs(env.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and asserts a clean exit, with the log's end when not.
    pub fn terminate_cleanly(self) {
        let log = self.log.clone();
        let status = self.terminate();
        if !status.success() {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            panic!(
                "SIGTERM is a clean exit, got {status}; log ends:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    pub fn terminate(mut self) -> std::process::ExitStatus {
        // A SIGTERM before the process installed its handler (it logs
        // right after) ends it by the signal's default action, as for any
        // program; what is under test is the exit of a running certweave.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe_sigterm(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "certweave local did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}

pub fn secret_dir(root: &Path, namespace: &str, name: &str) -> PathBuf {
    root.join("secrets").join(namespace).join(name)
}

/// The leaf of a Secret directory, if its files form a valid bundle.
pub fn leaf(dir: &Path) -> Option<CertInfo> {
    let crt = std::fs::read_to_string(dir.join("tls.crt")).ok()?;
    let key = std::fs::read_to_string(dir.join("tls.key")).ok()?;
    pki::check_bundle(&crt, &key, None, SystemTime::now()).ok()
}

pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    local: &Local,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            local.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
