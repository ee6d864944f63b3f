//! Least privilege for the processes a node starts: a stdio spec's
//! [`Sandbox`](mcp_raft::registry::spec::Sandbox) applied to the command before it is
//! spawned: user and group through `Command::uid`/`gid` (which also drops supplementary
//! groups), then, between fork and exec, the resource limits (`setrlimit`) and
//! `PR_SET_NO_NEW_PRIVS`. The process group of its own is set by the caller for every
//! stdio server.

use mcp_raft::registry::spec::Sandbox;
use tokio::process::Command;

/// One resource limit: soft and hard set to `value`.
fn limit(resource: libc::__rlimit_resource_t, value: u64) -> std::io::Result<()> {
    let rlim = libc::rlimit {
        rlim_cur: value as libc::rlim_t,
        rlim_max: value as libc::rlim_t,
    };
    // SAFETY: setrlimit reads the struct we pass and nothing else; it is
    // async-signal-safe, so it may run between fork and exec.
    if unsafe { libc::setrlimit(resource, &rlim) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Applies `sandbox` to `cmd`. A limit or flag the kernel refuses fails the spawn with
/// the OS error, rather than starting the server with less protection than asked.
pub fn apply(cmd: &mut Command, sandbox: &Sandbox) {
    if let Some(gid) = sandbox.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = sandbox.uid {
        cmd.uid(uid);
    }
    let limits: Vec<(libc::__rlimit_resource_t, u64)> = [
        (
            libc::RLIMIT_AS,
            sandbox
                .max_memory_mb
                .map(|mb| mb.saturating_mul(1024 * 1024)),
        ),
        (libc::RLIMIT_NOFILE, sandbox.max_open_files),
        (libc::RLIMIT_NPROC, sandbox.max_processes),
    ]
    .into_iter()
    .filter_map(|(resource, value)| value.map(|v| (resource, v)))
    .collect();
    let no_new_privs = sandbox.no_new_privs;
    if limits.is_empty() && !no_new_privs {
        return;
    }
    // SAFETY: the closure runs between fork and exec; it only calls setrlimit(2) and
    // prctl(2), both async-signal-safe, on data moved into it before the fork (no
    // allocation happens in the child).
    unsafe {
        cmd.pre_exec(move || {
            for (resource, value) in &limits {
                limit(*resource, *value)?;
            }
            if no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}
