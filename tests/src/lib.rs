//! Harness for Kura's end-to-end tests: builds and locates the real binaries, makes test
//! data and scratch directories, and runs real relay processes ([`relay`]).

pub mod donor;
pub mod net;
pub mod relay;

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Path of a workspace binary, built once per test process with the same profile as the
/// tests (`cargo build` from inside a test is safe: cargo has released its lock by then).
/// The build covers every target of the workspace, as `cargo test --workspace` does, so
/// that features unify the same way and the build is a no-op when the tests' own build
/// already made the binaries (building one package alone would rebuild libp2p with fewer
/// features, and overwrite the binary).
pub fn binary(package: &str, name: &str) -> Result<PathBuf> {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let exe = std::env::current_exe()?;
    // target/<profile>/deps/<test> -> target/<profile>
    let dir = exe.parent().and_then(Path::parent).context("cannot locate the target directory")?;
    let path = dir.join(name);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace_root()).args(["build", "--quiet", "--workspace", "--all-targets"]);
        // Cargo gives a test its package's variables (CARGO_PKG_*, CARGO_MANIFEST_*, OUT_DIR,
        // ...); passed on, some build scripts see a changed environment and rerun, rebuilding
        // half of libp2p. Hand the nested build the environment the outer one had.
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy();
            let from_test = (k.starts_with("CARGO_")
                && !k.starts_with("CARGO_HOME")
                && !k.starts_with("CARGO_TARGET_DIR"))
                || k == "OUT_DIR"
                || k == "LD_LIBRARY_PATH";
            if from_test {
                cmd.env_remove(&*k);
            }
        }
        if !cfg!(debug_assertions) {
            cmd.arg("--release");
        }
        let status = cmd.status().context("running cargo build")?;
        if !status.success() {
            bail!("cargo build of the workspace failed: {status}");
        }
        *built = true;
    }
    if !path.exists() {
        bail!("binary {name} of {package} not found at {}", path.display());
    }
    Ok(path)
}

pub use kura_core::testdata::pseudo_random;

/// The `kura` client binary as a command, with a home directory of the tests' own (`kura
/// put` adds every upload to `~/.kura/files.jsonl`; tests leave the user's alone).
pub fn kura_command() -> std::process::Command {
    let mut cmd =
        std::process::Command::new(binary("kura-client", "kura").unwrap_or_else(|e| panic!("{e:#}")));
    cmd.env("HOME", std::env::temp_dir().join("kura-tests-home"));
    cmd
}

/// A scratch directory removed on drop (kept when `KURA_KEEP_TMP` is set).
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Result<Self> {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("kura-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(Self(p))
    }
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("KURA_KEEP_TMP").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
