//! Child processes that cannot outlive the test process, and temp dirs that are
//! removed when it exits.
//!
//! Three layers, because each covers a way of dying the others miss:
//!
//! 1. Every child gets `PR_SET_PDEATHSIG(SIGKILL)`: when the test process dies for any
//!    reason (panic, `kill -9` of the test runner), the kernel kills the JVM.
//!    The signal fires when the *thread* that forked the child exits, not the process,
//!    so all children are forked from one spawner thread that lives as long as the
//!    process. Forking from a test thread would kill a shared broker as soon as the
//!    test that started it returned.
//! 2. An `atexit` hook kills what is still registered and removes registered dirs when
//!    the process exits normally (libtest ends with `process::exit`, which runs it),
//!    so shared clusters held in statics are torn down too.
//! 3. Dirs left by a process that was killed outright are swept by the next start
//!    ([`sweep_stale_dirs`]): their names carry the owner's pid.

use std::collections::BTreeSet;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread;

/// Processes and dirs to clean up at exit.
#[derive(Default)]
struct Registry {
    pids: BTreeSet<i32>,
    dirs: BTreeSet<PathBuf>,
}

fn registry() -> &'static Mutex<Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        // SAFETY: registering a plain `extern "C" fn` with no captured state.
        unsafe {
            libc::atexit(cleanup_at_exit);
        }
        Mutex::new(Registry::default())
    })
}

extern "C" fn cleanup_at_exit() {
    // try_lock: a thread that held the lock while the process exits must not hang us.
    let Ok(reg) = registry().try_lock() else {
        return;
    };
    for &pid in &reg.pids {
        // SAFETY: kill(2) on a pid we spawned; a stale pid gives ESRCH, which is fine.
        unsafe {
            libc::kill(pid, libc::SIGCONT);
            libc::kill(pid, libc::SIGKILL);
        }
    }
    for &pid in &reg.pids {
        let mut status = 0;
        // SAFETY: reaping our own child; returns -1 if it was already reaped.
        unsafe {
            libc::waitpid(pid, &mut status, 0);
        }
    }
    for dir in &reg.dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

pub(crate) fn register_dir(dir: &Path) {
    registry().lock().unwrap().dirs.insert(dir.to_path_buf());
}

pub(crate) fn unregister_dir(dir: &Path) {
    registry().lock().unwrap().dirs.remove(dir);
}

pub(crate) fn unregister_pid(pid: i32) {
    registry().lock().unwrap().pids.remove(&pid);
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

fn spawner() -> &'static Mutex<mpsc::Sender<SpawnRequest>> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("courier-testkit-spawner".into())
            .spawn(move || {
                // Lives until the process exits: the parent-death signal of every child
                // is tied to this thread.
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("spawning the test kit's spawner thread");
        Mutex::new(tx)
    })
}

/// Spawns `cmd` so that it dies with this process, and registers it for cleanup.
pub(crate) fn spawn_owned(mut cmd: Command) -> io::Result<Child> {
    // SAFETY: getpid is async-signal-safe and has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then nobody will send
            // the signal, so give up now instead of leaking a JVM.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (tx, rx) = mpsc::channel();
    spawner()
        .lock()
        .unwrap()
        .send((cmd, tx))
        .map_err(|_| io::Error::other("the test kit's spawner thread is gone"))?;
    let child = rx
        .recv()
        .map_err(|_| io::Error::other("the test kit's spawner thread is gone"))??;
    registry().lock().unwrap().pids.insert(child.id() as i32);
    Ok(child)
}

/// Sends `signal` to `pid`.
pub(crate) fn signal(pid: u32, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid as i32, signal) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn pid_alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The prefix of every run dir: `<tmp>/courier-testkit/<pid>-<n>`.
pub(crate) fn runs_root() -> PathBuf {
    std::env::temp_dir().join("courier-testkit")
}

/// Creates a fresh run dir owned by this process and registers it for removal at exit.
pub(crate) fn make_run_dir(label: &str) -> io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let root = runs_root();
    std::fs::create_dir_all(&root)?;
    sweep_stale_dirs(&root);
    let dir = root.join(format!(
        "{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        label
    ));
    std::fs::create_dir_all(&dir)?;
    register_dir(&dir);
    Ok(dir)
}

/// Removes run dirs whose owning process no longer exists (it was killed before its
/// exit hook could run).
pub(crate) fn sweep_stale_dirs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() as i32 && !pid_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn owned_child_is_tracked_and_killable() {
        let mut cmd = Command::new("sleep");
        cmd.arg("30");
        let mut child = spawn_owned(cmd).unwrap();
        let pid = child.id();
        assert!(pid_alive(pid as i32));
        signal(pid, libc::SIGKILL).unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success());
        unregister_pid(pid as i32);
    }

    #[test]
    fn child_survives_the_thread_that_asked_for_it() {
        // A shared broker must not die when the test that started it returns.
        let (pid, child) = thread::spawn(|| {
            let mut cmd = Command::new("sleep");
            cmd.arg("30");
            let child = spawn_owned(cmd).unwrap();
            (child.id(), child)
        })
        .join()
        .unwrap();
        thread::sleep(Duration::from_millis(300));
        assert!(
            pid_alive(pid as i32),
            "child died with its requesting thread"
        );
        let mut child = child;
        child.kill().unwrap();
        child.wait().unwrap();
        unregister_pid(pid as i32);
    }

    #[test]
    fn stale_dirs_of_dead_owners_are_swept() {
        let root = std::env::temp_dir().join(format!("courier-sweep-test-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        // A pid far above pid_max on Linux cannot be alive.
        let stale = root.join("999999999-0-x");
        let ours = root.join(format!("{}-0-x", std::process::id()));
        std::fs::create_dir_all(&stale).unwrap();
        std::fs::create_dir_all(&ours).unwrap();
        sweep_stale_dirs(&root);
        assert!(!stale.exists());
        assert!(ours.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
