//! Durations that read well on a terminal ([`HumanDuration`]), and values cut at a length while
//! they are formatted (for `#[logged]`).

use std::fmt::{self, Debug, Display, Write};
use std::time::Duration;

use crate::recorded::Recorded;

/// Formats a value with `Debug` or `Display`, stopping after `max_len` characters and marking the
/// cut with `…`.
///
/// The cut happens *while* formatting, so the work is bounded too, whatever the value's `Debug`
/// does: past the limit the writer swallows what it is given, and once a value keeps writing
/// (more than [`SWALLOWED`] pieces, e.g. a derived `Debug` walking a big `Vec`) it leaves the
/// formatting by unwinding to [`Truncated`], which catches it. Two cases fail the formatting
/// instead (a `Debug` that writes with `?` stops there; the standard collections step over their
/// remaining elements): builds with `panic = "abort"`, which cannot unwind, and a value that
/// formats a `std::sync::Mutex`, whose `Debug` holds the lock while it formats the data (an
/// unwind would poison it). `#[logged]` shows the standard collections through `crate::preview`,
/// which stops in every build.
pub(crate) struct Truncated<'a> {
    value: Shown<'a>,
    max_len: usize,
}

enum Shown<'a> {
    Debug(&'a dyn Debug),
    Display(&'a dyn Display),
    /// Known to fit (a [`ShortDebug`](crate::logged::ShortDebug) value within its bound): its
    /// `Debug` form written straight through.
    Whole(&'a dyn Debug),
}

impl<'a> Truncated<'a> {
    /// `value`'s `Debug` form, at most `max_len` characters.
    #[cfg(test)]
    pub(crate) fn debug(value: &'a dyn Debug, max_len: usize) -> Self {
        Self::recorded(Recorded::Plain(value), max_len)
    }

    /// A recorded value's `Debug` form, at most `max_len` characters; one known to fit is not
    /// cut, nor counted.
    pub(crate) fn recorded(value: Recorded<'a>, max_len: usize) -> Self {
        let (value, fits) = value.fits(max_len);
        Truncated {
            value: if fits {
                Shown::Whole(value)
            } else {
                Shown::Debug(value)
            },
            max_len,
        }
    }

    /// `value`'s `Display` form, at most `max_len` characters.
    pub(crate) fn display(value: &'a dyn Display, max_len: usize) -> Self {
        Truncated {
            value: Shown::Display(value),
            max_len,
        }
    }
}

/// Pieces a value may write past the limit before the formatting is left by unwinding: enough
/// for the closing brackets of a nested value, so that a value just over the limit finishes
/// normally (an unwind costs microseconds), few enough to bound the work.
const SWALLOWED: u32 = 64;

/// The unwind payload that ends a formatting past its budget.
struct BudgetSpent;

/// Passes characters through until the budget is spent; then swallows (or refuses, where it may
/// not unwind) what follows.
struct Limited<'w, 'f> {
    out: &'w mut fmt::Formatter<'f>,
    left: usize,
    cut: bool,
    /// May this formatting be left by unwinding?
    may_unwind: bool,
    swallowed: u32,
}

impl Limited<'_, '_> {
    /// After the cut: swallow the piece, refuse it, or leave the formatting.
    fn past_limit(&mut self, s: &str) -> fmt::Result {
        // An empty piece is a question: has the cut happened? `crate::preview` asks it after each
        // element, to stop there rather than format on.
        if s.is_empty() {
            return Err(fmt::Error);
        }
        if !self.may_unwind {
            return Err(fmt::Error);
        }
        self.swallowed += 1;
        if self.swallowed > SWALLOWED {
            // `resume_unwind` skips the panic hook: nothing is printed.
            std::panic::resume_unwind(Box::new(BudgetSpent));
        }
        Ok(())
    }
}

impl Write for Limited<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // `std::sync::Mutex`'s `Debug` writes its name, then formats the data under the lock.
        if s == "Mutex" {
            self.may_unwind = false;
        }
        if self.cut {
            return self.past_limit(s);
        }
        // Fast path: the whole piece fits (byte length bounds char count).
        if s.len() <= self.left {
            self.left -= s.chars().count();
            return self.out.write_str(s);
        }
        let mut end = s.len();
        for (taken, (i, _)) in s.char_indices().enumerate() {
            if taken == self.left {
                end = i;
                break;
            }
        }
        if end == s.len() {
            self.left -= s.chars().count();
            return self.out.write_str(s);
        }
        self.out.write_str(&s[..end])?;
        self.left = 0;
        self.cut = true;
        if self.may_unwind {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

impl Truncated<'_> {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Shown::Whole(v) = self.value {
            return v.fmt(f);
        }
        let mut w = Limited {
            out: f,
            left: self.max_len,
            cut: false,
            may_unwind: cfg!(panic = "unwind"),
            swallowed: 0,
        };
        let r = self.format_into(&mut w);
        match r {
            Ok(()) if !w.cut => Ok(()),
            Ok(()) => w.out.write_char('…'),
            Err(_) if w.cut => w.out.write_char('…'),
            Err(e) => Err(e),
        }
    }

    /// Formats into `w`; a formatting left by unwinding is a cut one.
    fn format_into(&self, w: &mut Limited<'_, '_>) -> fmt::Result {
        let format = |w: &mut Limited<'_, '_>| match self.value {
            Shown::Debug(v) | Shown::Whole(v) => write!(w, "{v:?}"),
            Shown::Display(v) => write!(w, "{v}"),
        };
        if !w.may_unwind {
            return format(w);
        }
        // Only `BudgetSpent` is caught here; the value's own panics go on as they came.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| format(&mut *w))) {
            Ok(r) => r,
            Err(payload) if payload.is::<BudgetSpent>() => Err(fmt::Error),
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }
}

impl Debug for Truncated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f)
    }
}

impl Display for Truncated<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f)
    }
}

/// A duration with three significant digits and the unit that suits it: `812ns`, `1.23ms`,
/// `4.50s`.
///
/// ```
/// use std::time::Duration;
/// use decor::fmt::HumanDuration;
/// assert_eq!(HumanDuration(Duration::from_micros(1234)).to_string(), "1.23ms");
/// assert_eq!(HumanDuration(Duration::from_nanos(812)).to_string(), "812ns");
/// assert_eq!(HumanDuration(Duration::from_secs(75)).to_string(), "75.0s");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0.as_nanos();
        if ns < 1_000 {
            return write!(f, "{ns}ns");
        }
        let (value, unit) = if ns < 1_000_000 {
            (ns as f64 / 1e3, "µs")
        } else if ns < 1_000_000_000 {
            (ns as f64 / 1e6, "ms")
        } else {
            (ns as f64 / 1e9, "s")
        };
        let decimals = if value >= 100.0 {
            0
        } else if value >= 10.0 {
            1
        } else {
            2
        };
        write!(f, "{value:.decimals$}{unit}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_values_are_not_marked() {
        assert_eq!(Truncated::debug(&"abc", 10).to_string(), "\"abc\"");
        assert_eq!(Truncated::debug(&12345, 5).to_string(), "12345");
    }

    #[test]
    fn cut_counts_characters_not_bytes() {
        let s = "日本語のテキスト";
        assert_eq!(Truncated::display(&s, 3).to_string(), "日本語…");
        assert_eq!(Truncated::display(&s, 0).to_string(), "…");
    }

    /// Counts how often it is formatted.
    struct Counted<'a>(&'a std::cell::Cell<usize>);

    impl Debug for Counted<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.set(self.0.get() + 1);
            f.write_str("7")
        }
    }

    #[derive(Debug)]
    #[expect(dead_code, reason = "read by its Debug only")]
    struct Batch<'a> {
        id: u32,
        xs: Vec<Counted<'a>>,
    }

    #[test]
    #[cfg(panic = "unwind")]
    fn a_derived_debug_walking_a_big_vec_stops_soon_after_the_limit() {
        let seen = std::cell::Cell::new(0);
        let batch = Batch {
            id: 1,
            xs: (0..1_000_000).map(|_| Counted(&seen)).collect(),
        };
        let shown = Truncated::debug(&batch, 40).to_string();
        assert_eq!(shown, "Batch { id: 1, xs: [7, 7, 7, 7, 7, 7, 7,…");
        // 7 shown, then at most SWALLOWED pieces (an element and its ", " are two).
        assert!(
            seen.get() < 7 + SWALLOWED as usize,
            "{} formatted",
            seen.get()
        );
    }

    #[test]
    fn a_value_just_over_the_limit_is_formatted_to_its_end() {
        let seen = std::cell::Cell::new(0);
        let batch = Batch {
            id: 1,
            xs: (0..3).map(|_| Counted(&seen)).collect(),
        };
        assert_eq!(
            Truncated::debug(&batch, 20).to_string(),
            "Batch { id: 1, xs: […"
        );
        // Under `panic = "abort"` the list stops at the failed write and formats none.
        let expected = if cfg!(panic = "unwind") { 3 } else { 0 };
        assert_eq!(seen.get(), expected);
    }

    #[test]
    fn a_mutex_formatted_past_the_limit_is_not_poisoned() {
        let seen = std::cell::Cell::new(0);
        let m = std::sync::Mutex::new((0..100_000).map(|_| Counted(&seen)).collect::<Vec<_>>());
        let shown = Truncated::debug(&m, 20).to_string();
        assert_eq!(shown, "Mutex { data: [7, 7,…");
        assert!(!m.is_poisoned());
        assert!(m.lock().is_ok());
    }

    #[test]
    fn a_panic_in_the_value_goes_on() {
        struct Panics;
        impl Debug for Panics {
            fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
                panic!("my own panic")
            }
        }
        let caught = std::panic::catch_unwind(|| Truncated::debug(&Panics, 10).to_string());
        let payload = caught.expect_err("the value's panic reaches the caller");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"my own panic"));
    }

    #[test]
    fn cut_in_the_middle_of_a_piece() {
        let v = vec!["hello world"; 3];
        assert_eq!(Truncated::debug(&v, 8).to_string(), "[\"hello …");
    }
}
