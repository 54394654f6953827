//! Bounded previews of collections for `#[logged]`: a slice, `Vec`, `VecDeque`, array, set or map
//! recorded as an argument or return value is formatted element by element, stopping at the first
//! element the length limit refuses, so that an 8,000,000-element argument costs what an 8-element
//! one does.
//!
//! The standard `Debug` of a collection (`debug_list().entries(..)`) cannot stop: once the limit's
//! writer fails it skips each remaining element, but still walks them all, so the cut writer
//! (`crate::fmt`) has to leave it by unwinding, which costs a few microseconds. The attribute picks
//! these previews at the expansion site, where the argument's type is known (autoref
//! specialization); what else it records keeps its own `Debug`, cut at the limit.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt::{self, Debug, Formatter};

/// One element of a collection as shown: a value, or a map's key and value.
#[doc(hidden)]
pub enum Item<'a> {
    /// A sequence's or set's element.
    One(&'a dyn Debug),
    /// A map's key and value.
    Pair(&'a dyn Debug, &'a dyn Debug),
}

/// A collection whose elements can be visited until the visitor fails.
pub trait Walk {
    /// `[` or `{`.
    #[doc(hidden)]
    const OPEN: &'static str;
    /// Visits the elements in order; stops at the first error and returns it.
    #[doc(hidden)]
    fn walk(&self, f: &mut dyn FnMut(Item<'_>) -> fmt::Result) -> fmt::Result;
}

/// Shows a [`Walk`] collection as its standard `Debug` does, stopping at the first refused write.
#[repr(transparent)]
pub struct Preview<C: ?Sized>(C);

impl<C: Walk + ?Sized> Preview<C> {
    /// The collection seen as its preview, borrowed for as long as it is.
    pub fn of(c: &C) -> &Preview<C> {
        // SAFETY: `Preview` is `repr(transparent)` over `C`: same layout, same metadata.
        unsafe { &*(c as *const C as *const Preview<C>) }
    }
}

impl<C: Walk + ?Sized> Debug for Preview<C> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let close = if C::OPEN == "[" { "]" } else { "}" };
        f.write_str(C::OPEN)?;
        let mut first = true;
        self.0.walk(&mut |item| {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            match item {
                Item::One(v) => v.fmt(f)?,
                Item::Pair(k, v) => {
                    k.fmt(f)?;
                    f.write_str(": ")?;
                    v.fmt(f)?;
                }
            }
            // Past `max_len` the cut writer swallows what it is given, and fails only this empty
            // piece: stop at the element that ran over.
            f.write_str("")
        })?;
        f.write_str(close)
    }
}

fn each<'a, T: Debug + 'a>(
    items: impl IntoIterator<Item = &'a T>,
    f: &mut dyn FnMut(Item<'_>) -> fmt::Result,
) -> fmt::Result {
    items.into_iter().try_for_each(|v| f(Item::One(v)))
}

macro_rules! sequences {
    ($($t:ty => $open:literal),* $(,)?) => {$(
        impl<T: Debug> Walk for $t {
            const OPEN: &'static str = $open;
            fn walk(&self, f: &mut dyn FnMut(Item<'_>) -> fmt::Result) -> fmt::Result {
                each(self.iter(), f)
            }
        }
    )*};
}

sequences!([T] => "[", Vec<T> => "[", VecDeque<T> => "[", Box<[T]> => "[", BTreeSet<T> => "{");

impl<T: Debug, const N: usize> Walk for [T; N] {
    const OPEN: &'static str = "[";
    fn walk(&self, f: &mut dyn FnMut(Item<'_>) -> fmt::Result) -> fmt::Result {
        each(self.iter(), f)
    }
}

impl<T: Debug, S> Walk for HashSet<T, S> {
    const OPEN: &'static str = "{";
    fn walk(&self, f: &mut dyn FnMut(Item<'_>) -> fmt::Result) -> fmt::Result {
        each(self.iter(), f)
    }
}

impl<K: Debug, V: Debug> Walk for BTreeMap<K, V> {
    const OPEN: &'static str = "{";
    fn walk(&self, f: &mut dyn FnMut(Item<'_>) -> fmt::Result) -> fmt::Result {
        self.iter().try_for_each(|(k, v)| f(Item::Pair(k, v)))
    }
}

impl<K: Debug, V: Debug, S> Walk for HashMap<K, V, S> {
    const OPEN: &'static str = "{";
    fn walk(&self, f: &mut dyn FnMut(Item<'_>) -> fmt::Result) -> fmt::Result {
        self.iter().try_for_each(|(k, v)| f(Item::Pair(k, v)))
    }
}

impl<C: Walk + ?Sized> Walk for &C {
    const OPEN: &'static str = C::OPEN;
    fn walk(&self, f: &mut dyn FnMut(Item<'_>) -> fmt::Result) -> fmt::Result {
        (**self).walk(f)
    }
}

impl<C: Walk + ?Sized> Walk for &mut C {
    const OPEN: &'static str = C::OPEN;
    fn walk(&self, f: &mut dyn FnMut(Item<'_>) -> fmt::Result) -> fmt::Result {
        (**self).walk(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_read_as_the_standard_debug() {
        let v = vec![1u8, 2, 3];
        assert_eq!(format!("{:?}", Preview::of(&v)), format!("{v:?}"));
        assert_eq!(format!("{:?}", Preview::of(&v[..0])), "[]");
        let m: BTreeMap<&str, u8> = [("a", 1), ("b", 2)].into();
        assert_eq!(format!("{:?}", Preview::of(&m)), format!("{m:?}"));
        let s: BTreeSet<u8> = [3, 1].into();
        assert_eq!(format!("{:?}", Preview::of(&&s)), format!("{s:?}"));
        let d: VecDeque<u8> = [1, 2].into();
        assert_eq!(format!("{:?}", Preview::of(&d)), format!("{d:?}"));
    }

    #[test]
    fn a_preview_visits_only_what_the_limit_shows() {
        struct Counted<'a>(&'a std::cell::Cell<usize>);
        impl Debug for Counted<'_> {
            fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
                self.0.set(self.0.get() + 1);
                f.write_str("7")
            }
        }
        let visits = std::cell::Cell::new(0);
        let big: Vec<Counted<'_>> = (0..100_000).map(|_| Counted(&visits)).collect();
        let shown = crate::fmt::Truncated::debug(Preview::of(&big), 20).to_string();
        assert_eq!(shown, "[7, 7, 7, 7, 7, 7, 7…");
        assert!(visits.get() <= 8, "{} elements formatted", visits.get());
    }
}
