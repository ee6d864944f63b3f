//! Python virtualenvs with real MCP servers from PyPI, created once per build dir.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

static CREATING: Mutex<()> = Mutex::new(());

/// The python of a venv called `name` with `packages` installed (created on first use,
/// under the test target dir, so later runs reuse it).
pub fn venv_python(name: &str, packages: &[&str]) -> PathBuf {
    let _one_at_a_time = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("venv-{name}"));
    let python = dir.join("bin").join("python");
    let marker = dir.join(".mcp-rust-ready");
    let wanted = packages.join(" ");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return python;
    }
    let _ = std::fs::remove_dir_all(&dir);
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .expect("python3 is needed for the tests against real MCP servers");
    assert!(status.success(), "python3 -m venv {} failed", dir.display());
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages)
        .status()
        .expect("run pip");
    assert!(status.success(), "pip install {wanted} failed");
    std::fs::write(&marker, &wanted).expect("write venv marker");
    python
}

/// The venv with the current SDK (`mcp` 2.3, stateless era), `mcp-server-time` and
/// `mcp-server-git`.
pub fn modern() -> PathBuf {
    venv_python(
        "modern",
        &["mcp==2.3.0", "mcp-server-time", "mcp-server-git"],
    )
}

/// The venv with a handshake-era SDK (`mcp` < 2).
pub fn legacy() -> PathBuf {
    venv_python("legacy", &["mcp<2"])
}

/// Path of a Python fixture script in `tests/fixtures`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(name)
}
