//! How a value reaches `#[logged]`: [`Recorded`], and the types whose `Debug` form has a known
//! bound on its length ([`ShortDebug`]), which are formatted straight into the subscriber's
//! output when the bound fits `max_len`, with no cut writer between them.

use std::fmt::Debug;

/// A value to record, as the attribute hands it over.
///
/// A plain `&dyn Debug` converts into one (`.into()`), and is formatted through the cut at
/// `max_len`; a [`ShortDebug`] value whose bound fits skips the cut.
#[derive(Clone, Copy)]
pub enum Recorded<'a> {
    /// Any `Debug` value: formatted up to `max_len` characters.
    Plain(&'a dyn Debug),
    /// A value whose `Debug` form is known to be short.
    Short(&'a dyn ShortDebug),
}

impl std::fmt::Debug for Recorded<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Recorded::Plain(v) => v.fmt(f),
            Recorded::Short(v) => v.fmt(f),
        }
    }
}

impl<'a> From<&'a dyn Debug> for Recorded<'a> {
    fn from(v: &'a dyn Debug) -> Self {
        Recorded::Plain(v)
    }
}

impl<'a> Recorded<'a> {
    /// The value, and whether its whole `Debug` form fits in `max_len` characters (then it needs
    /// no cut).
    pub(crate) fn fits(self, max_len: usize) -> (&'a dyn Debug, bool) {
        match self {
            Recorded::Plain(v) => (v, false),
            Recorded::Short(v) => (v.as_debug(), v.debug_len_bound() <= max_len),
        }
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A type whose `Debug` form (as `{:?}` writes it) has a length bound cheap to know: integers,
/// floats, `bool`, `char`, `&str` and `String`, and references to them. Sealed: a wrong bound would
/// let a value past `max_len`.
pub trait ShortDebug: Debug + sealed::Sealed {
    /// At least as many characters as the value's `Debug` form has.
    fn debug_len_bound(&self) -> usize;

    /// The value as `&dyn Debug`.
    fn as_debug(&self) -> &dyn Debug;
}

macro_rules! fixed_bound {
    ($($t:ty => $n:expr),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl ShortDebug for $t {
            #[inline]
            fn debug_len_bound(&self) -> usize {
                $n
            }
            #[inline]
            fn as_debug(&self) -> &dyn Debug {
                self
            }
        }
    )*};
}

// The longest `Debug` form of each: `u64::MAX` has 20 digits, `i128::MIN` 40 characters,
// `'\u{10ffff}'` 12; a float's shortest round-trip form with sign and exponent,
// `-1.2345678901234567e-300`, 24 (`-1.1754944e-38` for `f32`, and its decimal forms up to
// `-1234567900000000.0`, 19). `tests` checks these.
fixed_bound! {
    u8 => 3, u16 => 5, u32 => 10, u64 => 20, u128 => 39, usize => 20,
    i8 => 4, i16 => 6, i32 => 11, i64 => 20, i128 => 40, isize => 20,
    f32 => 20, f64 => 24, bool => 5, char => 12,
}

/// A string's `Debug` form: its quotes, and each character as itself or escaped (at most 10
/// characters, `\u{10ffff}`). Plain printable ASCII, the common case, is exact.
fn str_bound(s: &str) -> usize {
    let plain = s
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
    let per_byte = if plain { 1 } else { 10 };
    s.len().saturating_mul(per_byte).saturating_add(2)
}

macro_rules! computed_bound {
    ($(<$($g:ident),*> $t:ty => $bound:expr),* $(,)?) => {$(
        impl<$($g: ShortDebug),*> sealed::Sealed for $t {}
        impl<$($g: ShortDebug),*> ShortDebug for $t {
            #[inline]
            fn debug_len_bound(&self) -> usize {
                $bound(self)
            }
            #[inline]
            fn as_debug(&self) -> &dyn Debug {
                self
            }
        }
    )*};
}

computed_bound! {
    <> &str => |s: &&str| str_bound(s),
    <> String => |s: &String| str_bound(s),
    <T> &T => |v: &&T| (**v).debug_len_bound(),
    <T> &mut T => |v: &&mut T| (**v).debug_len_bound(),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn holds<T: ShortDebug>(v: T) -> bool {
        format!("{v:?}").chars().count() <= v.debug_len_bound()
    }

    #[test]
    fn integer_bounds_hold_at_the_extremes() {
        assert!(holds(u8::MAX) && holds(i8::MIN) && holds(u16::MAX) && holds(i16::MIN));
        assert!(holds(u32::MAX) && holds(i32::MIN) && holds(u64::MAX) && holds(i64::MIN));
        assert!(holds(u128::MAX) && holds(i128::MIN) && holds(usize::MAX) && holds(isize::MIN));
        assert!(holds(char::MAX) && holds('\'') && holds('\u{301}') && holds(false));
    }

    #[test]
    fn float_bounds_hold_at_the_edges() {
        for v in [
            f64::MIN,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE / 3.0,
            f64::NAN,
            -1e16 + 2.0,
        ] {
            assert!(holds(v), "{v:?}");
        }
        for v in [
            f32::MIN,
            -f32::MIN_POSITIVE,
            f32::NEG_INFINITY,
            -1.234_568e15,
            -1e-4,
        ] {
            assert!(holds(v), "{v:?}");
        }
    }

    #[test]
    fn plain_ascii_strings_are_exact() {
        assert_eq!("ana".debug_len_bound(), format!("{:?}", "ana").len());
        assert_eq!(String::from("a b").debug_len_bound(), 5);
        assert!("say \"hi\"\\".debug_len_bound() >= format!("{:?}", "say \"hi\"\\").len());
    }

    proptest! {
        #[test]
        fn every_f64_fits_its_bound(bits: u64) {
            prop_assert!(holds(f64::from_bits(bits)));
        }

        #[test]
        fn every_f32_fits_its_bound(bits: u32) {
            prop_assert!(holds(f32::from_bits(bits)));
        }

        #[test]
        fn every_string_fits_its_bound(s: String) {
            prop_assert!(holds(s.as_str()));
        }

        #[test]
        fn every_char_fits_its_bound(c: char) {
            prop_assert!(holds(c));
        }
    }
}
