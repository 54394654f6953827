//! Durations that read well on a terminal ([`HumanDuration`]), and values cut at a length while
//! they are formatted (for `#[logged]`).

use std::fmt::{self, Debug, Display, Write};
use std::time::Duration;

/// Formats a value with `Debug` or `Display`, stopping after `max_len` characters and marking the
/// cut with `…`.
///
/// The cut happens *while* formatting: once the limit is reached the inner writer reports an
/// error, which a `Debug` impl that writes with `?` stops at. The standard collections' `Debug`
/// does not stop (it steps over the remaining elements): `#[logged]` shows those through
/// `crate::preview`, which does.
pub(crate) struct Truncated<'a> {
    value: Shown<'a>,
    max_len: usize,
}

enum Shown<'a> {
    Debug(&'a dyn Debug),
    Display(&'a dyn Display),
}

impl<'a> Truncated<'a> {
    /// `value`'s `Debug` form, at most `max_len` characters.
    pub(crate) fn debug(value: &'a dyn Debug, max_len: usize) -> Self {
        Truncated {
            value: Shown::Debug(value),
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

/// Passes characters through until the budget is spent, then fails the formatting.
struct Limited<'w, 'f> {
    out: &'w mut fmt::Formatter<'f>,
    left: usize,
    cut: bool,
}

impl Write for Limited<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.cut {
            return Err(fmt::Error);
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
        Err(fmt::Error)
    }
}

impl Truncated<'_> {
    fn write(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut w = Limited {
            out: f,
            left: self.max_len,
            cut: false,
        };
        let r = match self.value {
            Shown::Debug(v) => write!(w, "{v:?}"),
            Shown::Display(v) => write!(w, "{v}"),
        };
        match r {
            Ok(()) => Ok(()),
            Err(_) if w.cut => f.write_char('…'),
            Err(e) => Err(e),
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

    #[test]
    fn cut_in_the_middle_of_a_piece() {
        let v = vec!["hello world"; 3];
        assert_eq!(Truncated::debug(&v, 8).to_string(), "[\"hello …");
    }
}
