//! How a command ends: a [`Failure`] (one line and an exit code), and
//! output written and flushed, a write that fails being one.

use host::run::code;
use std::io::Write;

/// A command that could not finish: one line on standard error and an
/// exit code (README, "Exit codes").
pub struct Failure {
    pub code: i32,
    pub msg: String,
}

pub type Done = Result<i32, Failure>;

pub fn host_error(msg: impl std::fmt::Display) -> Failure {
    Failure {
        code: code::HOST_ERROR,
        msg: msg.to_string(),
    }
}

pub fn usage(msg: impl std::fmt::Display) -> Failure {
    Failure {
        code: code::USAGE,
        msg: msg.to_string(),
    }
}

/// Writes `text` to `w` and flushes it; a write that fails (a closed pipe,
/// a full disk) ends the command with one line and exit code 1.
pub fn emit(w: &mut dyn Write, text: &str, stream: &str) -> Result<(), Failure> {
    w.write_all(text.as_bytes())
        .and_then(|()| w.flush())
        .map_err(|e| host_error(format!("cannot write to {stream}: {e}")))
}

pub fn stdout(text: &str) -> Result<(), Failure> {
    emit(&mut std::io::stdout().lock(), text, "standard output")
}

pub fn stderr(text: &str) -> Result<(), Failure> {
    emit(&mut std::io::stderr().lock(), text, "standard error")
}

pub fn json(v: &impl serde::Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).map_err(host_error)?;
    stdout(&(text + "\n"))
}
