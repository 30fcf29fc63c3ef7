//! Starting a relay process and waiting for its ready line: the one harness the devnet,
//! the tests and the benchmarks share.

use crate::docs::Ready;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Why a relay did not come up.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot start the relay: {0}")]
    Start(#[from] std::io::Error),
    #[error("the relay printed no ready line within {0:?}")]
    NotReady(Duration),
    #[error("the relay's ready line {line:?} is not one: {error}")]
    BadLine { line: String, error: serde_json::Error },
}

/// Whether a relay outlives the process that started it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifetime {
    /// It runs until stopped.
    Own,
    /// It gets SIGKILL when the thread that started it ends (Linux's parent-death signal:
    /// even a parent killed with SIGKILL leaves no relay holding its ports and directory).
    /// Start it from a thread that lives as long as the process, such as the main thread.
    DiesWithParent,
}

/// Starts `cmd` (a relay with its arguments; its stdin is closed, its stdout taken for the
/// ready line and drained after it, its stderr left as the caller set it) and waits up to
/// `limit` for the ready line. On failure the process is killed and reaped.
pub fn spawn_relay(
    mut cmd: Command,
    lifetime: Lifetime,
    limit: Duration,
) -> Result<(Child, Ready), SpawnError> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    if lifetime == Lifetime::DiesWithParent {
        die_with_parent(&mut cmd);
    }
    let mut child = cmd.spawn()?;
    let stdout = child.stdout.take().ok_or_else(|| std::io::Error::other("no stdout"))?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let _ = tx.send(lines.next());
        // Keep draining, so the relay never blocks on a full pipe.
        for _ in lines {}
    });
    let fail = |child: &mut Child, e: SpawnError| {
        let _ = child.kill();
        let _ = child.wait();
        Err(e)
    };
    let line = match rx.recv_timeout(limit) {
        Ok(Some(Ok(line))) => line,
        _ => return fail(&mut child, SpawnError::NotReady(limit)),
    };
    match Ready::parse(&line) {
        Ok(ready) => Ok((child, ready)),
        Err(error) => fail(&mut child, SpawnError::BadLine { line, error }),
    }
}

#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: runs in the child between fork and exec, where only async-signal-safe calls
    // are allowed: prctl and getppid are system calls, and nothing here allocates or locks.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before the signal was asked for.
            if libc::getppid() as u32 != parent {
                return Err(std::io::Error::other("the parent exited while the relay started"));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_: &mut Command) {}
