//! The host's side of the table: [`Handlers`] has one method per hypercall,
//! typed by its row (`Out8` takes the byte, `Out32` the value, `In32`
//! returns the result, `OutBlock(B)` gets `&mut B`), and [`serve`] calls the
//! right one. A host implements the trait, so a hypercall added to the table
//! without a handler does not compile ("not all trait items implemented"),
//! and neither does a handler that reads its block as another type
//! ("method has an incompatible type for trait"), even one of the same size.

use crate::Hypercall;
use crate::block::Block;

/// Expands the table into [`Handlers`] and [`serve`] (see
/// [`hypercalls!`](crate::hypercalls)).
macro_rules! define_handlers {
    ($( $(#[doc = $doc:literal])* $nr:literal $v:ident $name:ident = $port:literal : $t:ident $(($b:ty))? ; )*) => {
        /// One typed method per hypercall of the table, for the host. The
        /// access's width and direction have been checked against the row's
        /// transport before a method is called.
        pub trait Handlers {
            /// What a handler can fail with (the host's own errors, such as
            /// a closed stdout; a guest's bad argument is a status instead).
            type Error;

            /// Reads the argument block of `hc` at guest-physical `gpa`;
            /// `Ok(None)` when it lies outside guest memory (after the
            /// implementation has reported it), and then no handler runs.
            fn read_block<B: Block>(&mut self, hc: Hypercall, gpa: u32)
                -> Result<Option<B>, Self::Error>;

            /// Writes the block back after its handler ran.
            fn write_block<B: Block>(&mut self, gpa: u32, block: &B)
                -> Result<(), Self::Error>;

            $( define_handlers!(@method [$($doc)*] $name $t $(($b))?); )*
        }

        /// Serves `hc` with `data`, the access's value (`out`) or zero
        /// (`in`): calls its method of `h`, reading and writing its block
        /// around the call. Returns the value for an `in` (all ones when
        /// there is none).
        #[inline(always)]
        pub fn serve<H: Handlers>(h: &mut H, hc: Hypercall, data: u32) -> Result<u32, H::Error> {
            match hc {
                $( Hypercall::$v => define_handlers!(@call h hc data $name $t $(($b))?), )*
            }
        }
    };
    (@method [$($doc:literal)*] $name:ident Out8) => {
        $(#[doc = $doc])*
        fn $name(&mut self, byte: u8) -> Result<(), Self::Error>;
    };
    (@method [$($doc:literal)*] $name:ident Out32) => {
        $(#[doc = $doc])*
        fn $name(&mut self, value: u32) -> Result<(), Self::Error>;
    };
    (@method [$($doc:literal)*] $name:ident In32) => {
        $(#[doc = $doc])*
        fn $name(&mut self) -> Result<u32, Self::Error>;
    };
    (@method [$($doc:literal)*] $name:ident OutBlock($b:ty)) => {
        $(#[doc = $doc])*
        fn $name(&mut self, block: &mut $b) -> Result<(), Self::Error>;
    };
    (@call $h:ident $hc:ident $data:ident $name:ident Out8) => {
        $h.$name($data as u8).map(|()| u32::MAX)
    };
    (@call $h:ident $hc:ident $data:ident $name:ident Out32) => {
        $h.$name($data).map(|()| u32::MAX)
    };
    (@call $h:ident $hc:ident $data:ident $name:ident In32) => {
        $h.$name()
    };
    (@call $h:ident $hc:ident $data:ident $name:ident OutBlock($b:ty)) => {{
        if let Some(mut block) = $h.read_block::<$b>($hc, $data)? {
            $h.$name(&mut block)?;
            $h.write_block($data, &block)?;
        }
        Ok(u32::MAX)
    }};
}

crate::hypercalls!(define_handlers);
