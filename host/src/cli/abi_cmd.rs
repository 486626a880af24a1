//! `host abi`: the hypercall ABI as a table, as Markdown regions, or
//! spliced into (or checked against) a document.

use super::{Done, host_error, stdout};
use host::run::code;
use std::path::PathBuf;

pub fn cmd_abi(markdown: bool, update: Option<PathBuf>, check: Option<PathBuf>) -> Done {
    use host::abi;
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p)
            .map_err(|e| host_error(format!("cannot read {}: {e}", p.display())))
    };
    if let Some(p) = update {
        let new = abi::splice(&read(&p)?).map_err(host_error)?;
        std::fs::write(&p, new)
            .map_err(|e| host_error(format!("cannot write {}: {e}", p.display())))?;
    } else if let Some(p) = check {
        abi::check_doc(&read(&p)?).map_err(host_error)?;
    } else if markdown {
        let mut text = String::new();
        for (name, body) in abi::regions() {
            text.push_str(&format!(
                "<!-- abi:{name}:begin -->\n{body}<!-- abi:{name}:end -->\n"
            ));
        }
        stdout(&text)?;
    } else {
        stdout(&abi::table())?;
    }
    Ok(code::OK)
}
