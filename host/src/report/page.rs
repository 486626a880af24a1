//! The page itself: one HTML file with the CSS, the script and the data
//! inline, nothing fetched.

use serde_json::Value;

/// The most a page may hold; past it the data is cut to its summary (the
/// glance, the exit table, the text report) and the page says so.
pub const MAX_PAGE_BYTES: usize = 8 << 20;

const TEMPLATE: &str = include_str!("assets/report.html");
const CSS: &str = include_str!("assets/report.css");
const SCRIPT: &str = include_str!("assets/report.js");

/// `data` as text that may sit inside `<script type="application/json">`:
/// no `</script>` or `<!--` can end or change it.
fn embed(data: &Value) -> String {
    serde_json::to_string(data)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The page for `data` (its `title` names it).
pub fn page(data: &Value) -> String {
    let mut json = embed(data);
    let fixed = TEMPLATE.len() + CSS.len() + SCRIPT.len() + 1024;
    if json.len() + fixed > MAX_PAGE_BYTES {
        // keep the summary: drop the bulky parts, say so
        let mut d = data.clone();
        if let Some(m) = d.as_object_mut() {
            for k in ["timeline", "simvirtio_history", "kvm_calls", "layout"] {
                m.remove(k);
            }
            m.insert(
                "cut".into(),
                Value::String(format!(
                    "this page would have been over {} MiB: the timeline, the device history, the KVM calls and the layout were left out",
                    MAX_PAGE_BYTES >> 20
                )),
            );
        }
        json = embed(&d);
    }
    // braces too: the title goes in before the other parts
    let title = escape(data["title"].as_str().unwrap_or("report")).replace('{', "&#123;");
    TEMPLATE
        .replace("{{TITLE}}", &title)
        .replace("{{CSS}}", CSS)
        .replace("{{SCRIPT}}", SCRIPT)
        .replace("{{DATA}}", &json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_cannot_close_its_script() {
        let p = page(&serde_json::json!({"title": "a</script><b>", "x": "</script><!--"}));
        assert_eq!(p.matches("</script>").count(), 3, "the page's own three");
        assert!(!p.contains("<!--"));
        assert!(p.contains("<title>a&lt;/script&gt;&lt;b&gt;</title>"));
    }

    #[test]
    fn a_page_too_large_keeps_its_summary() {
        let big = "x".repeat(MAX_PAGE_BYTES);
        let p = page(&serde_json::json!({"title": "t", "timeline": big, "text": "kept"}));
        assert!(p.len() < MAX_PAGE_BYTES);
        assert!(p.contains("kept") && p.contains("were left out"));
    }
}
