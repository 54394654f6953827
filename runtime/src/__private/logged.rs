//! What `#[logged]` expands into: the checks that put an error on the offending token, and the
//! autoref tiers that pick how a value is shown.

use std::fmt::{Debug, Display};

use crate::recorded::Recorded;

/// The body of a sync function, as a closure that runs once: called from one of two places, it
/// is made before either, and an `FnOnce` bound keeps it free to return what it captured (`self`
/// from a `&mut self` method).
#[inline(always)]
pub fn body<R, F: FnOnce() -> R>(f: F) -> F {
    f
}

/// The recorded arguments, their type pinned (an empty list too).
#[inline(always)]
pub fn recorded<const N: usize>(args: [Option<Recorded<'_>>; N]) -> [Option<Recorded<'_>>; N] {
    args
}

/// A recorded argument must be `Debug`; the check sits on the argument's own tokens.
#[diagnostic::on_unimplemented(
    message = "`#[logged]` records argument of type `{Self}` with `Debug`, which it does not implement",
    label = "this argument is recorded, so it must implement `Debug`",
    note = "derive or implement `Debug` for it, or leave it out with `#[logged(skip(name))]` or `#[logged(skip_all)]`"
)]
pub trait RecordedArg {
    /// The argument as a recorded value.
    fn as_recorded(&self) -> &dyn Debug;
}

impl<T: Debug> RecordedArg for T {
    #[inline]
    fn as_recorded(&self) -> &dyn Debug {
        self
    }
}

/// `ret = true` written out: the return value must be `Debug`.
#[diagnostic::on_unimplemented(
    message = "`#[logged(ret = true)]` records the return value of type `{Self}` with `Debug`, which it does not implement",
    label = "the return value is recorded",
    note = "implement `Debug` for it, or write `ret = false`"
)]
pub trait RecordedRet {
    /// The return value as a recorded value.
    fn as_recorded(&self) -> &dyn Debug;
}

impl<T: Debug> RecordedRet for T {
    #[inline]
    fn as_recorded(&self) -> &dyn Debug {
        self
    }
}

/// `err = true` written out: the error must be `Display`.
#[diagnostic::on_unimplemented(
    message = "`#[logged(err = true)]` reports the error of type `{Self}` with `Display`, which it does not implement",
    label = "the error is reported",
    note = "implement `Display` for it, or write `err = false`"
)]
pub trait ReportedErr {
    /// The error as shown.
    fn as_reported(&self) -> &dyn Display;
}

impl<T: Display> ReportedErr for T {
    #[inline]
    fn as_reported(&self) -> &dyn Display {
        self
    }
}

/// Checks a recorded argument at its own span: `arg(&x)`.
#[inline]
pub fn arg<T: RecordedArg>(value: &T) -> Option<&dyn Debug> {
    Some(value.as_recorded())
}

/// The return value when `ret = true` was written.
#[inline]
pub fn ret<T: RecordedRet>(value: &T) -> Option<&dyn Debug> {
    Some(value.as_recorded())
}

/// The error when `err = true` was written.
#[inline]
pub fn err<T: ReportedErr>(value: &T) -> &dyn Display {
    value.as_reported()
}

/// Wraps a value for the "autoref specialisation" below, which picks, at the macro's expansion
/// site, the best way the value's type offers to be shown without requiring any.
pub struct Wrap<'a, T>(pub &'a T);

/// Autoref tiers for values recorded when the type allows (`self`, and `ret` by default).
///
/// Call as `(&&Wrap(&v)).__decor_debug()`: `Debug` types resolve to `MaybeDebugYes`, others
/// to `MaybeDebugNo` and are left out.
pub mod maybe_debug {
    use super::*;

    /// The value is `Debug`.
    pub trait MaybeDebugYes<'a> {
        /// The value.
        fn __decor_debug(&self) -> Option<&'a dyn Debug>;
    }
    impl<'a, T: Debug> MaybeDebugYes<'a> for &Wrap<'a, T> {
        #[inline]
        fn __decor_debug(&self) -> Option<&'a dyn Debug> {
            Some(self.0)
        }
    }

    /// The value is not `Debug`: not recorded.
    pub trait MaybeDebugNo<'a> {
        /// Nothing.
        fn __decor_debug(&self) -> Option<&'a dyn Debug>;
    }
    impl<'a, T> MaybeDebugNo<'a> for Wrap<'a, T> {
        #[inline]
        fn __decor_debug(&self) -> Option<&'a dyn Debug> {
            None
        }
    }
}

/// How an error is shown when `err` is on by default: `Display`, else `Debug`, else its type.
pub enum Shown<'a> {
    /// By `Display`.
    Display(&'a dyn Display),
    /// By `Debug`.
    Debug(&'a dyn Debug),
    /// By type name.
    TypeName(&'static str),
}

impl Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Shown::Display(v) => Display::fmt(v, f),
            Shown::Debug(v) => Debug::fmt(v, f),
            Shown::TypeName(t) => write!(f, "an error of type {t}"),
        }
    }
}

/// Autoref tiers for errors: call as `(&&&Wrap(&e)).__decor_show()`.
pub mod show_error {
    use super::*;

    /// The error is `Display`.
    pub trait ShowDisplay<'a> {
        /// Shown by `Display`.
        fn __decor_show(&self) -> Shown<'a>;
    }
    impl<'a, T: Display> ShowDisplay<'a> for &&Wrap<'a, T> {
        #[inline]
        fn __decor_show(&self) -> Shown<'a> {
            Shown::Display(self.0)
        }
    }

    /// The error is `Debug` only.
    pub trait ShowDebug<'a> {
        /// Shown by `Debug`.
        fn __decor_show(&self) -> Shown<'a>;
    }
    impl<'a, T: Debug> ShowDebug<'a> for &Wrap<'a, T> {
        #[inline]
        fn __decor_show(&self) -> Shown<'a> {
            Shown::Debug(self.0)
        }
    }

    /// The error is neither.
    pub trait ShowTypeName<'a> {
        /// Shown by type name.
        fn __decor_show(&self) -> Shown<'a>;
    }
    impl<'a, T> ShowTypeName<'a> for Wrap<'a, T> {
        #[inline]
        fn __decor_show(&self) -> Shown<'a> {
            Shown::TypeName(std::any::type_name::<T>())
        }
    }
}

/// Whether a `#[timed]` call succeeded, from its return value: `Ok` or `Err` of a `Result`,
/// nothing for any other type (a type merely named `Result` included).
pub mod outcome {
    use super::*;

    /// The value is a `Result`.
    pub trait OutcomeOfResult {
        /// `Some(true)` for `Ok`, `Some(false)` for `Err`.
        fn __decor_ok(&self) -> Option<bool>;
    }
    impl<T, E> OutcomeOfResult for &Wrap<'_, Result<T, E>> {
        #[inline]
        fn __decor_ok(&self) -> Option<bool> {
            Some(self.0.is_ok())
        }
    }

    /// Any other value.
    pub trait OutcomeUnknown {
        /// `None`.
        fn __decor_ok(&self) -> Option<bool>;
    }
    impl<T> OutcomeUnknown for Wrap<'_, T> {
        #[inline]
        fn __decor_ok(&self) -> Option<bool> {
            None
        }
    }
}

/// How a recorded value is handed over when its type allows better than its own `Debug`: a
/// collection by its bounded preview (see `crate::preview`), a [`ShortDebug`] value as short,
/// anything else `None` (then shown by its `Debug`, cut at the limit). Call as
/// `(&&&Wrap(v)).__decor_record()`.
///
/// [`ShortDebug`]: crate::recorded::ShortDebug
pub mod record {
    use super::*;
    use crate::preview::{Preview, Walk};
    use crate::recorded::ShortDebug;

    /// The value is a collection with a bounded preview.
    pub trait RecordPreview<'a> {
        /// Its preview.
        fn __decor_record(&self) -> Option<Recorded<'a>>;
    }
    impl<'a, C: Walk> RecordPreview<'a> for &&Wrap<'a, C> {
        #[inline]
        fn __decor_record(&self) -> Option<Recorded<'a>> {
            Some(Recorded::Plain(Preview::of(self.0)))
        }
    }

    /// The value's `Debug` form has a known bound.
    pub trait RecordShort<'a> {
        /// The value, as short.
        fn __decor_record(&self) -> Option<Recorded<'a>>;
    }
    impl<'a, T: ShortDebug> RecordShort<'a> for &Wrap<'a, T> {
        #[inline]
        fn __decor_record(&self) -> Option<Recorded<'a>> {
            Some(Recorded::Short(self.0))
        }
    }

    /// Anything else.
    pub trait RecordOther<'a> {
        /// Nothing.
        fn __decor_record(&self) -> Option<Recorded<'a>>;
    }
    impl<'a, T> RecordOther<'a> for Wrap<'a, T> {
        #[inline]
        fn __decor_record(&self) -> Option<Recorded<'a>> {
            None
        }
    }
}
