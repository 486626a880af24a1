//! libtest's command line for `host cargo-runner` of a test build: which
//! tests run (filters, `--exact`, `--ignored`, ...) and how their output
//! looks (`--nocapture`, `--show-output`, `--format terse`); what is not
//! supported is refused in one line.

use std::time::Duration;

/// What `cargo test -- ARGS` asked for.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// Name filters (a test runs if its name contains one; all without).
    pub filters: Vec<String>,
    /// `--exact`: filters must equal the name.
    pub exact: bool,
    /// `--list`: print the names, run nothing.
    pub list: bool,
    /// `--ignored`: only the ignored tests; `--include-ignored`: all.
    pub ignored: bool,
    /// `--include-ignored`.
    pub include_ignored: bool,
    /// `--timeout DURATION` (ours, not libtest's): the limit per test.
    pub timeout: Option<Duration>,
    /// `--nocapture`: each test's output as it comes, not kept.
    pub nocapture: bool,
    /// `--show-output`: the output of passing tests too, at the end.
    pub show_output: bool,
    /// `--format terse` (or `-q`): one character per test.
    pub terse: bool,
}

impl Selection {
    /// libtest's arguments: filters, `--exact`, `--list`, `--ignored`,
    /// `--include-ignored`, `--nocapture`, `--show-output`, `--format
    /// pretty|terse` (`-q`), `--test-threads N` (each test has a VM of its
    /// own and they run one after another, as with N = 1: any N >= 1 is
    /// taken), `--color` (the output has no colour). Anything else is an
    /// error that says what is supported: nothing is ignored silently.
    pub fn parse(args: &[String]) -> Result<Selection, String> {
        let mut s = Selection::default();
        let mut it = args.iter().cloned();
        while let Some(a) = it.next() {
            let (flag, inline) = match a.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
                _ => (a.clone(), None),
            };
            let val = |it: &mut dyn Iterator<Item = String>| -> Result<String, String> {
                inline
                    .clone()
                    .or_else(|| it.next())
                    .ok_or(format!("cargo-runner: {flag} needs a value"))
            };
            match flag.as_str() {
                "--nocapture" => s.nocapture = true,
                "--show-output" => s.show_output = true,
                "-q" | "--quiet" => s.terse = true,
                "--format" => match val(&mut it)?.as_str() {
                    "pretty" => s.terse = false,
                    "terse" => s.terse = true,
                    f => {
                        return Err(format!(
                            "cargo-runner: --format {f} is not supported (pretty and terse are)"
                        ));
                    }
                },
                "--test-threads" => {
                    let n = val(&mut it)?;
                    if n.parse::<usize>().map_or(true, |n| n == 0) {
                        return Err(format!(
                            "cargo-runner: --test-threads wants a number of at least 1, not {n}"
                        ));
                    }
                }
                "--color" => {
                    val(&mut it)?;
                }
                _ => match a.as_str() {
                    "--exact" => s.exact = true,
                    "--list" => s.list = true,
                    "--ignored" => s.ignored = true,
                    "--include-ignored" => s.include_ignored = true,
                    "--timeout" => {
                        let v = it
                            .next()
                            .ok_or("cargo-runner: --timeout needs a duration")?;
                        s.timeout =
                            Some(crate::size::parse_duration(&v).map_err(|e| e.to_string())?);
                    }
                    f if f.starts_with('-') => {
                        return Err(format!(
                            "cargo-runner: unknown test option {f} (filters, --exact, --list, --ignored, --include-ignored, --nocapture, --show-output, --format pretty|terse, -q, --test-threads, --color and --timeout are supported)"
                        ));
                    }
                    f => s.filters.push(f.to_string()),
                },
            }
        }
        Ok(s)
    }

    /// Whether the test `name` is selected by the filters.
    pub fn wants(&self, name: &str) -> bool {
        self.filters.is_empty()
            || self.filters.iter().any(|f| {
                if self.exact {
                    name == f
                } else {
                    name.contains(f.as_str())
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::Selection;

    #[test]
    fn libtest_arguments() {
        let a = |v: &[&str]| Selection::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        let s = a(&["ring", "--exact", "--test-threads", "1", "--nocapture"]).unwrap();
        assert_eq!(s.filters, ["ring"]);
        assert!(s.exact && !s.list && s.nocapture && !s.terse);
        assert!(s.wants("ring") && !s.wants("ring2"));
        let s = a(&[
            "--list",
            "--format=terse",
            "--include-ignored",
            "--timeout",
            "2s",
        ])
        .unwrap();
        assert!(s.list && s.wants("anything") && s.include_ignored && s.terse);
        assert!(
            a(&["--show-output", "--color", "never"])
                .unwrap()
                .show_output
        );
        assert!(
            a(&["--format", "json"])
                .unwrap_err()
                .contains("json is not supported")
        );
        assert!(
            a(&["--test-threads"])
                .unwrap_err()
                .contains("needs a value")
        );
        assert_eq!(s.timeout, Some(std::time::Duration::from_secs(2)));
        assert!(a(&["--bogus"]).unwrap_err().contains("--bogus"));
    }
}
