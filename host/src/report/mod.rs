//! `--html FILE`: a run, a layout or a matrix as one self-contained HTML
//! page (inline CSS, JavaScript and SVG; no network). The page is drawn
//! from what `run`, `inspect` and `matrix` already report: this module
//! only gathers it (bounded) and embeds it as JSON for the page's script.

mod data;
mod page;

pub use data::{HTML_OUTPUT_CAP, MAX_PAGE_SLICES, Tee, layout_page, matrix_page, run_page};
pub use page::MAX_PAGE_BYTES;
