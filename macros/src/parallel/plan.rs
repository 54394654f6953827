//! Generates the plan: a `static ::decor::Plan` from the options written as literals, and the
//! builder calls applied at each call for counts given as `fn() -> usize`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::options::{Backend, Count, Cut, CutAt, ParallelArgs, RateOption};

/// The static plan's initialiser, and the calls applied to it at each call.
pub(crate) fn tokens(args: &ParallelArgs, fn_name: &str) -> (TokenStream, TokenStream) {
    let mut plan =
        quote!(::decor::Plan::new().named(::core::concat!(::core::module_path!(), "::", #fn_name)));
    let mut per_call = TokenStream::new();
    let mut count = |method: TokenStream, c: &Count| match c {
        Count::Fixed(n) => plan.extend(quote!(.#method(#n as usize))),
        Count::PerCall(p) => per_call.extend(quote_spanned!(p.span()=> .#method(#p()))),
    };
    match &args.cut {
        Some(Cut::Chunks(c)) => count(quote!(chunks), c),
        Some(Cut::ChunkSize(c)) => count(quote!(chunk_size), c),
        None => {}
    }
    if let Some(c) = &args.workers {
        count(quote!(workers), c);
    }
    plan.extend(match args.backend {
        Backend::Serial => quote!(.backend(::decor::Backend::Serial)),
        Backend::Threads => quote!(.backend(::decor::Backend::Threads)),
        Backend::Processes => quote!(.backend(::decor::Backend::Processes)),
        Backend::Mpi => quote!(.backend(::decor::Backend::Mpi)),
    });
    match args.cut_at {
        Some((CutAt::Line, _)) => plan.extend(quote!(.cut_at(::decor::chunks::CutAt::Line))),
        Some((CutAt::Whitespace, _)) => {
            plan.extend(quote!(.cut_at(::decor::chunks::CutAt::Whitespace)))
        }
        None => {}
    }
    if let Some(ns) = args.timeout_ns {
        plan.extend(quote!(.timeout(::core::time::Duration::from_nanos(#ns))));
    }
    match &args.retries {
        Some((Count::Fixed(n), _)) => plan.extend(quote!(.retries(#n as u32))),
        Some((Count::PerCall(p), _)) => {
            per_call.extend(quote_spanned!(p.span()=> .retries(#p())));
        }
        None => {}
    }
    if let Some(((min, max), _)) = args.backoff {
        plan.extend(quote!(.backoff(
            ::core::time::Duration::from_nanos(#min),
            ::core::time::Duration::from_nanos(#max)
        )));
    }
    match &args.rate {
        Some(RateOption::Fixed(n, secs)) => {
            let n = *n as u32;
            plan.extend(quote!(.rate(::decor::retry::Rate {
                starts: #n,
                per: ::core::time::Duration::from_secs(#secs),
            })));
        }
        Some(RateOption::PerCall(p)) => {
            per_call.extend(quote_spanned!(p.span()=> .with_rate(#p())));
        }
        None => {}
    }
    (plan, per_call)
}
