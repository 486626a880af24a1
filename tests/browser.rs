//! A real browser for the tests: Debian's chromium-headless-shell
//! (tools/test-deps.txt) loads a page from disk, and the DOM its script
//! drew, its console and its screenshots come back (tests/report.rs,
//! tests/nested.rs).
#![allow(dead_code)]

use crate::common;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The widths each page is drawn at: a phone, a laptop, a wide screen.
pub const WIDTHS: [u32; 3] = [390, 1024, 1600];

pub fn chromium() -> &'static str {
    for c in ["chromium-headless-shell", "chromium"] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {c}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c;
        }
    }
    panic!(
        "tests/report.rs needs Debian's chromium-headless-shell: `make test-deps` installs it (sudo apt-get install -y chromium-headless-shell)"
    );
}

/// Runs the browser on `page` (with `#hash`) and `extra` flags; its
/// standard output and its console lines.
pub fn browse(page: &Path, hash: &str, extra: &[String]) -> (String, Vec<String>) {
    let profile = common::temp_dir().join(format!(
        "chromium-{}",
        page.file_name().unwrap().to_string_lossy()
    ));
    let url = format!("file://{}{hash}", page.display());
    let o = Command::new(chromium())
        .args([
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=3000",
            // nothing may come from a network: there is none
            "--proxy-server=127.0.0.1:9",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(&url)
        .output()
        .expect("start chromium");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        o.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let console = String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .map(str::to_string)
        .collect();
    (String::from_utf8_lossy(&o.stdout).into_owned(), console)
}

/// The DOM of `page` after its script ran; fails on any console message.
pub fn dom(page: &Path, hash: &str) -> String {
    let (dom, console) = browse(page, hash, &["--dump-dom".into()]);
    assert!(
        console.is_empty(),
        "{}: the console says:\n{}",
        page.display(),
        console.join("\n")
    );
    assert!(
        dom.contains("data-drawn=\"yes\""),
        "the script did not finish"
    );
    dom
}

/// A screenshot of `page` at `width`: its decoded pixels.
pub fn screenshot(page: &Path, name: &str, width: u32) -> (PathBuf, Vec<[u8; 3]>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/report-shots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(format!("{name}-{width}.png"));
    let _ = std::fs::remove_file(&png);
    let (_, console) = browse(
        page,
        "",
        &[
            format!("--screenshot={}", png.display()),
            format!("--window-size={width},1600"),
            "--hide-scrollbars".into(),
        ],
    );
    assert!(console.is_empty(), "{}", console.join("\n"));
    let d = png::Decoder::new(std::fs::File::open(&png).expect("the screenshot"));
    let mut r = d.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    let px = buf[..info.buffer_size()]
        .chunks(step)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (png, px)
}

/// Whether a picture shows something: 16 colours or more (a blank page
/// has one or two), and at least 0.5% of it away from the background
/// (the page's near-white).
pub fn drawn(px: &[[u8; 3]]) -> bool {
    let colours: std::collections::BTreeSet<[u8; 3]> = px.iter().copied().collect();
    let inked = px.iter().filter(|p| p.iter().any(|&c| c < 200)).count();
    colours.len() >= 16 && inked * 200 >= px.len()
}

pub fn shots(page: &Path, name: &str) {
    for w in WIDTHS {
        let (png, px) = screenshot(page, name, w);
        assert!(drawn(&px), "{} is blank", png.display());
    }
}

/// The text of the first element with `data-k="key"` (tags inside it left
/// out, entities decoded).
pub fn field(dom: &str, key: &str) -> String {
    let at = dom
        .find(&format!("data-k=\"{key}\""))
        .unwrap_or_else(|| panic!("no data-k=\"{key}\" in the page"));
    let rest = &dom[at..];
    let start = rest.find('>').unwrap() + 1;
    let mut depth = 0;
    let mut out = String::new();
    let mut i = start;
    let b = rest.as_bytes();
    while i < b.len() {
        if rest[i..].starts_with("</") {
            if depth == 0 {
                break;
            }
            depth -= 1;
            i += rest[i..].find('>').unwrap() + 1;
        } else if b[i] == b'<' {
            let end = rest[i..].find('>').unwrap();
            if !rest[i..i + end].ends_with('/') {
                depth += 1;
            }
            i += end + 1;
        } else {
            let end = rest[i..].find('<').unwrap_or(rest.len() - i);
            out.push_str(&rest[i..i + end]);
            i += end;
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

pub fn count(dom: &str, key: &str) -> usize {
    dom.matches(&format!("data-k=\"{key}\"")).count()
}

pub fn sections(dom: &str) -> Vec<String> {
    dom.split("<section ")
        .skip(1)
        .filter_map(|s| s.split("data-section=\"").nth(1))
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect()
}

/// The `<li>` items inside the first element with `data-k="key"`.
pub fn items(dom: &str, key: &str) -> usize {
    let at = dom.find(&format!("data-k=\"{key}\"")).unwrap();
    let end = at + dom[at..].find("</ol>").unwrap();
    dom[at..end].matches("<li").count()
}
