//! Slices of serde values whose element is a primitive number cross as plain bytes: the one
//! place that finds out, by `TypeId`, that a generic `T` is such a type `P`, and the one place
//! that then treats a `T` as that `P`.

use std::any::TypeId;
use std::marker::PhantomData;

/// Something to do with slices of `T` once `T` is known to be one primitive number type `P`.
pub(crate) trait OnPrimitive<T> {
    type Out;
    /// Runs with `P`, the type `T` is; `same` converts between the two.
    fn run<P: bytemuck::Pod>(self, same: Same<T, P>) -> Self::Out;
}

/// Runs `op` with `P = T` when `T` is a primitive number type (whose slices are plain bytes), by
/// its `TypeId`; `None` for any other type.
pub(crate) fn with_primitive<T: 'static, O: OnPrimitive<T>>(op: O) -> Option<O::Out> {
    macro_rules! each {
        ($($p:ty),*) => {$(
            if TypeId::of::<T>() == TypeId::of::<$p>() {
                return Some(op.run::<$p>(Same(PhantomData)));
            }
        )*};
    }
    each!(
        u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
    );
    None
}

/// `P` as `T`, when `T` is `P`: slices of `String`s cross as a table (see
/// [`strings`](super::strings)), and so do results of `Vec<String>`. By `typeid`'s `TypeId`,
/// which also serves a `T` that is not `'static` (the generic functions' serde elements are not
/// bound by it); it erases lifetimes, so equal ids mean `T` is `P` for a `P` without any
/// (both callers' `P`s have none).
pub(crate) fn same_as<T, P: 'static>() -> Option<Same<T, P>> {
    (typeid::of::<T>() == TypeId::of::<P>()).then_some(Same(PhantomData))
}

/// Proof that `T` and `P` are one type: made only by [`with_primitive`] and [`same_as`],
/// after comparing their `TypeId`s, so the conversions it offers change a type's name only.
pub(crate) struct Same<T, P>(PhantomData<Invariant<(T, P)>>);

/// Neither variance nor auto traits taken from the types: the proof holds for exactly them.
type Invariant<X> = fn(X) -> X;

impl<T, P> Same<T, P> {
    /// `xs` as the slice of `P` it is.
    pub(crate) fn to_p<'a>(&self, xs: &'a [T]) -> &'a [P] {
        // SAFETY: `T` is `P` (see the type's doc): same layout, same validity.
        unsafe { std::slice::from_raw_parts(xs.as_ptr().cast::<P>(), xs.len()) }
    }

    /// `xs` as the slice of `T` it is.
    pub(crate) fn to_t<'a>(&self, xs: &'a [P]) -> &'a [T] {
        // SAFETY: as for `to_p`.
        unsafe { std::slice::from_raw_parts(xs.as_ptr().cast::<T>(), xs.len()) }
    }

    /// `x` as the `P` it is.
    pub(crate) fn ref_to_p<'a>(&self, x: &'a T) -> &'a P {
        // SAFETY: as for `to_p`.
        unsafe { &*std::ptr::from_ref(x).cast::<P>() }
    }

    /// `p` as the `T` it is, moved.
    pub(crate) fn value_to_t(&self, p: P) -> T {
        let p = std::mem::ManuallyDrop::new(p);
        // SAFETY: as for `to_p`; `p` is not dropped, so the value is moved, not duplicated.
        unsafe { std::ptr::read(std::ptr::from_ref(&*p).cast::<T>()) }
    }

    /// `v` as the `Vec<T>` it is, without a copy.
    pub(crate) fn vec_to_t(&self, v: Vec<P>) -> Vec<T> {
        let mut v = std::mem::ManuallyDrop::new(v);
        // SAFETY: as for `to_p`; the allocation moves from one `Vec` to the other, whose element
        // type has the same size and alignment, so it is freed once, as allocated.
        unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Sum<'a, T>(&'a [T]);
    impl<T> OnPrimitive<T> for Sum<'_, T> {
        type Out = (u64, Vec<T>);
        fn run<P: bytemuck::Pod>(self, same: Same<T, P>) -> Self::Out {
            let bytes: &[u8] = bytemuck::cast_slice(same.to_p(self.0));
            let sum = bytes.iter().map(|&b| u64::from(b)).sum();
            let copied: Vec<P> = same.to_p(self.0).to_vec();
            (sum, same.vec_to_t(copied))
        }
    }

    #[test]
    fn numbers_are_seen_as_their_primitive_and_come_back_unchanged() {
        let xs = [1u16, 256, 3];
        let (sum, back) = with_primitive::<u16, _>(Sum(&xs)).expect("u16 is primitive");
        assert_eq!(sum, 1 + 1 + 3, "little-endian bytes 01 00, 00 01, 03 00");
        assert_eq!(back, xs);
        assert_eq!(Same::<u16, u16>(PhantomData).to_t(&xs), &xs);
    }

    #[test]
    fn other_types_are_not_primitive() {
        assert!(with_primitive::<String, _>(Sum(&[String::new()])).is_none());
        assert!(with_primitive::<(u8, u8), _>(Sum(&[(1, 2)])).is_none());
    }

    #[test]
    fn strings_are_seen_as_strings_and_nothing_else_is() {
        let xs = vec!["a".to_string()];
        let same = same_as::<String, String>().expect("String is String");
        assert_eq!(same.vec_to_t(same.to_p(&xs).to_vec()), xs);
        let same = same_as::<Vec<String>, Vec<String>>().expect("the same type");
        assert_eq!(same.value_to_t(same.ref_to_p(&xs).clone()), xs);
        assert!(same_as::<&str, String>().is_none());
        assert!(same_as::<Vec<u8>, String>().is_none());
        assert!(same_as::<Vec<&str>, Vec<String>>().is_none());
    }
}
