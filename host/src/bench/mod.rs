//! `host bench`: `metric value unit` lines named as in ../shared/bench-floor,
//! so the two can run side by side:
//! `CANDIDATE="target/release/host bench" make -C <copy of bench-floor> run`.

mod common;
mod irq;
mod process;
mod record;
mod report;
mod snapshot;
mod stages;

pub use common::BenchError;
pub use process::peak_rss_kib;
pub use stages::{BenchOptions, Busy, run};
