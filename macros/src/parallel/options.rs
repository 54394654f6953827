//! The options of `#[parallel_chunks(…)]`, read into [`ParallelArgs`]; each bad value an error at
//! its token.

use proc_macro2::Span;
use quote::ToTokens;
use syn::Ident;
use syn::spanned::Spanned;

use crate::options::{self, Errors, RawOption, RawValue};

const ACCEPTED: &[&str] = &[
    "chunks",
    "chunk_size",
    "workers",
    "backend",
    "reduce",
    "split",
    "cut_at",
    "timeout",
    "retries",
    "backoff",
    "retry_if",
    "rate",
];

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Serial,
    Threads,
    Processes,
    Mpi,
}

impl Backend {
    /// Whether the chunks leave the process, so the body becomes a registered entry.
    pub(crate) fn crosses(self) -> bool {
        matches!(self, Backend::Processes | Backend::Mpi)
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Serial => "serial",
            Backend::Threads => "threads",
            Backend::Processes => "processes",
            Backend::Mpi => "mpi",
        }
    }
}

pub(crate) enum Reduce {
    Sum,
    Concat,
    Path(syn::Path),
}

/// A count written as a literal, or as the path of a `fn() -> usize` called at each call.
pub(crate) enum Count {
    Fixed(u64),
    PerCall(syn::Path),
}

impl Count {
    /// `ty`: what the path's function returns.
    fn parse(opt: &RawOption, min: u64, example: &str, ty: &str) -> syn::Result<Count> {
        match &opt.value {
            RawValue::Path(p) => Ok(Count::PerCall(p.clone())),
            _ => opt.int(min, example).map(Count::Fixed).map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("{e}, or the path of a `fn() -> {ty}` called at each call"),
                )
            }),
        }
    }
}

/// `rate`: written as a literal, or the path of a `fn() -> Option<decor::retry::Rate>` called at
/// each call (`None`: no limit).
pub(crate) enum RateOption {
    /// Starts, and the period in seconds.
    Fixed(u64, u64),
    PerCall(syn::Path),
}

pub(crate) enum Cut {
    Chunks(Count),
    ChunkSize(Count),
}

/// The options of `#[parallel_chunks(…)]`, checked.
pub(crate) struct ParallelArgs {
    pub(crate) cut: Option<Cut>,
    pub(crate) workers: Option<Count>,
    pub(crate) backend: Backend,
    pub(crate) reduce: Option<(Reduce, Span)>,
    /// `split = name`: the parameter to cut.
    pub(crate) split: Option<Ident>,
    /// `cut_at = "line" | "whitespace"`, and where it is written.
    pub(crate) cut_at: Option<(CutAt, Span)>,
    pub(crate) timeout_ns: Option<u64>,
    pub(crate) retries: Option<(Count, Span)>,
    /// `backoff = "min..max"`, in nanoseconds, and where it is written.
    pub(crate) backoff: Option<((u64, u64), Span)>,
    /// `retry_if = path`: a `fn(&E) -> bool`.
    pub(crate) retry_if: Option<syn::Path>,
    /// `rate = "N/s" | "N/min" | path`.
    pub(crate) rate: Option<RateOption>,
}

impl ParallelArgs {
    /// Whether chunks may be retried: `retries` above 0, or given at each call.
    pub(crate) fn retrying(&self) -> bool {
        match &self.retries {
            Some((Count::Fixed(n), _)) => *n > 0,
            Some((Count::PerCall(_), _)) => true,
            None => false,
        }
    }

    pub(crate) fn from_options(opts: &[RawOption], errors: &mut Errors) -> ParallelArgs {
        let mut args = ParallelArgs {
            cut: None,
            workers: None,
            backend: Backend::Threads,
            reduce: None,
            split: None,
            cut_at: None,
            timeout_ns: None,
            retries: None,
            backoff: None,
            retry_if: None,
            rate: None,
        };
        for opt in opts {
            let key = opt.key.to_string();
            match key.as_str() {
                "chunks" | "chunk_size" => {
                    if args.cut.is_some() {
                        errors.push(syn::Error::new_spanned(
                            &opt.key,
                            "`chunks` and `chunk_size` both say how to cut the input; keep one",
                        ));
                        continue;
                    }
                    if let Some(n) = errors.keep(Count::parse(opt, 1, "8", "usize")) {
                        args.cut = Some(if key == "chunks" {
                            Cut::Chunks(n)
                        } else {
                            Cut::ChunkSize(n)
                        });
                    }
                }
                "workers" => args.workers = errors.keep(Count::parse(opt, 1, "16", "usize")),
                "retries" => {
                    args.retries = errors
                        .keep(Count::parse(opt, 0, "2", "u32"))
                        .map(|n| (n, opt.key.span()))
                }
                "backoff" => args.backoff = errors.keep(parse_backoff(opt)),
                "retry_if" => args.retry_if = errors.keep(parse_retry_if(opt)),
                "rate" => args.rate = errors.keep(parse_rate(opt)),
                "timeout" => args.timeout_ns = errors.keep(options::duration(opt)),
                "backend" => {
                    if let Some(b) = errors.keep(parse_backend(opt)) {
                        args.backend = b;
                    }
                }
                "reduce" => args.reduce = errors.keep(parse_reduce(opt)),
                "split" => args.split = errors.keep(parse_split(opt)),
                "cut_at" => args.cut_at = errors.keep(parse_cut_at(opt)),
                _ => errors.push(options::unknown(opt, "parallel_chunks", ACCEPTED)),
            }
        }
        args
    }
}

fn parse_backend(opt: &RawOption) -> syn::Result<Backend> {
    let s = opt.str("\"threads\"")?;
    match s.value().as_str() {
        "threads" => Ok(Backend::Threads),
        "processes" => Ok(Backend::Processes),
        "serial" => Ok(Backend::Serial),
        "mpi" => Ok(Backend::Mpi),
        other => Err(syn::Error::new_spanned(
            &s,
            format_args!(
                "unknown backend \"{other}\"; accepted: \"threads\", \"processes\", \"serial\", \"mpi\""
            ),
        )),
    }
}

/// Where a text may be cut.
#[derive(Clone, Copy)]
pub(crate) enum CutAt {
    Line,
    Whitespace,
}

fn parse_cut_at(opt: &RawOption) -> syn::Result<(CutAt, Span)> {
    let s = opt.str("\"line\"")?;
    match s.value().as_str() {
        "line" => Ok((CutAt::Line, s.span())),
        "whitespace" => Ok((CutAt::Whitespace, s.span())),
        other => Err(syn::Error::new_spanned(
            &s,
            format_args!("unknown cut_at \"{other}\"; accepted: \"line\", \"whitespace\""),
        )),
    }
}

fn parse_reduce(opt: &RawOption) -> syn::Result<(Reduce, Span)> {
    let bad = |span: &dyn ToTokens, what: &str| {
        syn::Error::new_spanned(
            span,
            format_args!(
                "{what}; `reduce` accepts \"sum\", \"concat\" or the path of a `fn(R, R) -> R`, e.g. `reduce = \"sum\"` or `reduce = merge_counts`"
            ),
        )
    };
    match &opt.value {
        RawValue::Lit(syn::Lit::Str(s)) => match s.value().as_str() {
            "sum" => Ok((Reduce::Sum, s.span())),
            "concat" => Ok((Reduce::Concat, s.span())),
            other => Err(bad(s, &format!("unknown reduction \"{other}\""))),
        },
        RawValue::Path(p) => Ok((Reduce::Path(p.clone()), p.span())),
        _ => Err(bad(&opt.key, "`reduce` needs a value")),
    }
}

fn parse_backoff(opt: &RawOption) -> syn::Result<((u64, u64), Span)> {
    let s = opt.str("\"200ms..10s\"")?;
    let text = s.value();
    let bad = |why: String| {
        syn::Error::new_spanned(
            &s,
            format_args!(
                "invalid backoff \"{text}\": {why}; write the shortest and the longest wait, each a number and a unit (ns, us, ms or s), e.g. `backoff = \"200ms..10s\"`"
            ),
        )
    };
    let (min, max) = text
        .split_once("..")
        .ok_or_else(|| bad("no `..` between the two waits".into()))?;
    let ns = |part: &str, which: &str| {
        options::duration_ns(part).map_err(|why| bad(format!("its {which} wait: {why}")))
    };
    let (min, max) = (ns(min, "shortest")?, ns(max, "longest")?);
    if min > max {
        return Err(bad("the shortest wait is longer than the longest".into()));
    }
    Ok(((min, max), s.span()))
}

fn parse_retry_if(opt: &RawOption) -> syn::Result<syn::Path> {
    match &opt.value {
        RawValue::Path(p) => Ok(p.clone()),
        _ => Err(opt.error(
            "`retry_if` takes the path of a `fn(&E) -> bool` that says which errors are retried, e.g. `retry_if = is_transient`",
        )),
    }
}

fn parse_rate(opt: &RawOption) -> syn::Result<RateOption> {
    if let RawValue::Path(p) = &opt.value {
        return Ok(RateOption::PerCall(p.clone()));
    }
    let s = opt.str("\"50/min\"")?;
    let text = s.value();
    let bad = || {
        syn::Error::new_spanned(
            &s,
            format_args!(
                "invalid rate \"{text}\"; write starts per second or per minute, a whole number of at least 1, e.g. `rate = \"50/min\"` or `rate = \"10/s\"`"
            ),
        )
    };
    let (n, per) = text.split_once('/').ok_or_else(bad)?;
    let n: u64 = n.trim().replace('_', "").parse().map_err(|_| bad())?;
    let per = match per.trim() {
        "s" | "sec" => 1,
        "min" | "m" => 60,
        _ => return Err(bad()),
    };
    if n == 0 || n > u64::from(u32::MAX) {
        return Err(bad());
    }
    Ok(RateOption::Fixed(n, per))
}

fn parse_split(opt: &RawOption) -> syn::Result<Ident> {
    match &opt.value {
        RawValue::Path(p) if p.get_ident().is_some() => Ok(p.get_ident().cloned().unwrap()),
        _ => Err(opt.error("`split` takes the name of the parameter to cut, e.g. `split = text`")),
    }
}
