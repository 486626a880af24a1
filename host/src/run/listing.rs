//! The test program's listing (`guest_rt::testing::runner` in list
//! mode): one line per test, parsed without copying.

/// One listed test, borrowed from the listing's text.
#[derive(Clone, Copy)]
pub(super) struct Listed<'a> {
    /// Its index: what the host passes in RDX to run it.
    pub(super) index: usize,
    pub(super) name: &'a str,
    pub(super) ignored: bool,
    /// `#[ignore = "reason"]`'s reason (empty: none).
    pub(super) reason: &'a str,
    /// `#[should_panic]`.
    pub(super) should_panic: bool,
}

/// The listed tests: one line per test, its name, then a tab and
/// `should_panic` for a test that must panic, then a tab and `ignored`
/// (`ignored=reason` with a reason) for an ignored one
/// (guest_rt::testing::runner). A name may hold spaces (it is the guest's
/// text, escaped where it is shown). Names are borrowed from the listing's
/// text (bounded by [`super::JSON_OUTPUT_CAP`]), never copied per test.
pub(super) fn listed(text: &str) -> impl Iterator<Item = Listed<'_>> {
    text.lines().enumerate().map(|(index, l)| {
        let (name, mut rest) = l.split_once('\t').unwrap_or((l, ""));
        let should_panic = match rest.strip_prefix("should_panic") {
            Some(r) if r.is_empty() || r.starts_with('\t') => {
                rest = r.strip_prefix('\t').unwrap_or(r);
                true
            }
            _ => false,
        };
        let (ignored, reason) = match rest.strip_prefix("ignored") {
            Some("") => (true, ""),
            Some(r) => match r.strip_prefix('=') {
                Some(reason) => (true, reason),
                None => (false, ""),
            },
            None => (false, ""),
        };
        Listed {
            index,
            name,
            ignored,
            reason,
            should_panic,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_name_marks_and_reason() {
        let text = "tests::a\ntests::b\tshould_panic\ntests::c\tignored\ntests::d\tshould_panic\tignored=too slow\ntests::e\tignored_x\nesc_ with spaces";
        let l: Vec<_> = listed(text)
            .map(|t| (t.index, t.name, t.should_panic, t.ignored, t.reason))
            .collect();
        assert_eq!(
            l,
            [
                (0, "tests::a", false, false, ""),
                (1, "tests::b", true, false, ""),
                (2, "tests::c", false, true, ""),
                (3, "tests::d", true, true, "too slow"),
                (4, "tests::e", false, false, ""),
                (5, "esc_ with spaces", false, false, ""),
            ]
        );
    }
}
