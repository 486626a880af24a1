//! Argument blocks: `#[repr(C)]` structs a guest passes by address. Each is
//! declared with [`abi_block!`](crate::abi_block), which also records its
//! layout (size, alignment, every field's offset and size) as
//! [`Block::LAYOUT`], so the fingerprint and the ELF note cover every field
//! without anyone listing them.

/// One field of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// The Rust field name.
    pub name: &'static str,
    /// The Rust type, as written (`u64`, `i32`, ...).
    pub ty: &'static str,
    /// Offset in bytes.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// The field's documentation (`In: ...` / `Out: ...`).
    pub doc: &'static str,
}

/// The layout of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    /// The type's name.
    pub name: &'static str,
    /// Size in bytes.
    pub size: usize,
    /// Alignment in bytes.
    pub align: usize,
    /// Every field, in declaration order.
    pub fields: &'static [Field],
}

impl BlockLayout {
    /// A hash of the size, the alignment and every field's name, type,
    /// offset and size: two fields of one size swapped, a field renamed or
    /// retyped, all change it. The block's own name and the documentation
    /// do not.
    pub const fn hash(&self) -> u32 {
        use crate::fingerprint::{FNV_BASIS, fnv, fnv_str};
        let mut h = fnv(FNV_BASIS, self.size as u64);
        h = fnv(h, self.align as u64);
        let mut i = 0;
        while i < self.fields.len() {
            let f = &self.fields[i];
            h = fnv_str(h, f.name);
            h = fnv_str(h, f.ty);
            h = fnv(h, f.offset as u64);
            h = fnv(h, f.size as u64);
            i += 1;
        }
        (h ^ (h >> 32)) as u32
    }
}

/// The field types a block may have: fixed-size integers, for which every
/// bit pattern is a valid value.
pub trait Int: Copy {}
macro_rules! ints {
    ($($t:ty)*) => { $(impl Int for $t {})* };
}
ints!(u8 u16 u32 u64 i8 i16 i32 i64);

/// A type that is an argument block.
///
/// # Safety
/// The type is `#[repr(C)]` with only [`Int`] fields, so every bit pattern
/// of its size is a valid value: the host may fill one from guest bytes.
/// `abi_block!` checks both and is the only intended implementor.
pub unsafe trait Block: Copy + Default {
    /// Its layout, from its declaration.
    const LAYOUT: BlockLayout;

    /// Its bytes, to write it to guest memory.
    fn as_bytes(&self) -> &[u8] {
        // SAFETY: the trait's contract: `#[repr(C)]`, integer fields, no
        // padding, so every byte is initialised; the slice covers exactly
        // `self` and borrows it.
        unsafe {
            core::slice::from_raw_parts(
                (self as *const Self).cast::<u8>(),
                core::mem::size_of::<Self>(),
            )
        }
    }

    /// Its bytes, to fill it from guest memory: any bytes are a valid value.
    fn as_bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_bytes`, and every bit pattern is a valid value
        // (integer fields only), so any write through the slice leaves a
        // valid `Self`; the slice borrows `self` mutably.
        unsafe {
            core::slice::from_raw_parts_mut(
                (self as *mut Self).cast::<u8>(),
                core::mem::size_of::<Self>(),
            )
        }
    }
}

/// Declares an argument block: a `#[repr(C)]` struct whose layout is
/// recorded in [`Block::LAYOUT`].
///
/// ```
/// hypercall_abi::abi_block! {
///     /// Argument block of `add`.
///     pub struct AddArgs {
///         /// In: the first addend.
///         pub a: u32,
///         /// In: the second addend.
///         pub b: u32,
///         /// Out: the sum.
///         pub sum: u32,
///         /// Out: a status.
///         pub status: i32,
///     }
/// }
/// use hypercall_abi::block::Block;
/// assert_eq!(AddArgs::LAYOUT.size, 16);
/// assert_eq!(AddArgs::LAYOUT.fields[2].offset, 8);
/// ```
#[macro_export]
macro_rules! abi_block {
    (
        $(#[doc = $doc:literal])*
        pub struct $name:ident {
            $( $(#[doc = $fdoc:literal])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        #[repr(C)]
        pub struct $name {
            $( $(#[doc = $fdoc])* pub $field: $ty, )*
        }

        // Every field is an integer (`Int`) and there is no padding (add
        // explicit `reserved` fields): checked here at compile time.
        const _: () = {
            const fn is_int<T: $crate::block::Int>() {}
            $( is_int::<$ty>(); )*
            assert!(
                0 $( + ::core::mem::size_of::<$ty>() )* == ::core::mem::size_of::<$name>(),
                "an ABI block has no padding: add explicit reserved fields"
            );
        };

        // SAFETY: `#[repr(C)]` with only `Int` fields (checked just above):
        // every bit pattern of the struct's size is a valid value.
        unsafe impl $crate::block::Block for $name {
            const LAYOUT: $crate::block::BlockLayout = $crate::block::BlockLayout {
                name: stringify!($name),
                size: ::core::mem::size_of::<$name>(),
                align: ::core::mem::align_of::<$name>(),
                fields: &[ $( $crate::block::Field {
                    name: stringify!($field),
                    ty: stringify!($ty),
                    offset: ::core::mem::offset_of!($name, $field),
                    size: ::core::mem::size_of::<$ty>(),
                    doc: concat!($($fdoc),*),
                }, )* ],
            };
        }
    };
}
