//! Facts about the running CPU.

use x86_64::registers::segmentation::{CS, Segment};

/// The privilege level the caller runs at (CS.RPL).
#[inline(always)]
pub fn cpl() -> u8 {
    CS::get_reg().rpl() as u8
}
