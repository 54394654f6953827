//! How chunk results combine, always in chunk order: `reduce = "sum" | "concat" | path`.

use std::iter::Sum;

/// Results that join end to end: `reduce = "concat"`.
///
/// ```
/// use decor::reduce::Concat;
/// assert_eq!(Vec::concat_all(vec![vec![1, 2], vec![], vec![3]]), [1, 2, 3]);
/// assert_eq!(String::concat_all(vec!["ab".into(), "c".into()]), "abc");
/// ```
#[diagnostic::on_unimplemented(
    message = "`reduce = \"concat\"` joins `Vec<T>` or `String` results, not `{Self}`",
    note = "use `reduce = \"sum\"` for numbers, or `reduce = path::to::fn` with a `fn(R, R) -> R`"
)]
pub trait Concat: Sized {
    /// The parts joined in order.
    fn concat_all(parts: Vec<Self>) -> Self;
}

impl<T> Concat for Vec<T> {
    fn concat_all(parts: Vec<Self>) -> Self {
        let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
        for p in parts {
            out.extend(p);
        }
        out
    }
}

impl Concat for String {
    fn concat_all(parts: Vec<Self>) -> Self {
        parts.concat()
    }
}

/// `reduce = "sum"`.
pub fn sum<R: Sum>(parts: Vec<R>) -> R {
    parts.into_iter().sum()
}

/// `reduce = "concat"`.
pub fn concat<R: Concat>(parts: Vec<R>) -> R {
    R::concat_all(parts)
}

/// `reduce = path`: `f` folded left over the results, in chunk order.
///
/// There is always at least one result: an empty input still runs the body once.
pub fn fold<R>(parts: Vec<R>, f: impl FnMut(R, R) -> R) -> R {
    parts
        .into_iter()
        .reduce(f)
        .expect("a call always has at least one chunk")
}
