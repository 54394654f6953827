//! Generates the call on threads or serial: the parameter checks and one `Plan::map_with` (or
//! `try_map_with`) whose closure runs the body on one chunk.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::classify::{CutKind, Param, Role, Signature};
use super::options::ParallelArgs;

/// Checks, on each parameter's own tokens, that it can be shared or cloned for every chunk.
pub(crate) fn checks(sig: &Signature<'_>) -> TokenStream {
    sig.others()
        .map(|(name, p)| match p.role {
            Role::Shared => {
                quote_spanned!(p.arg.span()=> ::decor::__private::shared_param(&#name);)
            }
            _ => quote_spanned!(p.arg.span()=> ::decor::__private::owned_param(&#name);),
        })
        .collect()
}

/// The call's expression: the chunks' results as `Vec<R>` (or `Result<Vec<T>, E>`). `body` is the
/// body run on one chunk, with the cut parameter bound to the chunk and the owned ones to their
/// clones: by their patterns as written, or by their plain names when `by_name`.
///
/// `retry_if`: for a `Result` with `retries`, which `Err`s run again (a `&dyn Fn(&E) -> bool`).
pub(crate) fn call(
    sig: &Signature<'_>,
    body: TokenStream,
    by_name: bool,
    retry_if: Option<&TokenStream>,
) -> TokenStream {
    let cut = sig.cut_param();
    let cut_name = Signature::name(cut);
    let pat = |name: &syn::Ident, p: &Param<'_>| {
        if by_name {
            quote!(#name)
        } else {
            let pat = &p.arg.pat;
            quote!(#pat)
        }
    };
    let cut_pat = pat(cut_name, cut);
    let owned: Vec<_> = sig
        .others()
        .filter(|(_, p)| matches!(p.role, Role::Owned))
        .collect();
    let owned_names = owned.iter().map(|(n, _)| *n);
    let owned_pats = owned.iter().map(|(n, p)| pat(n, p));
    let is_async = sig.item.sig.asyncness.is_some();
    let method = match (is_async, sig.is_result, retry_if.is_some()) {
        (true, true, true) => quote!(try_map_async_retrying),
        (true, true, false) => quote!(try_map_async_checked),
        (true, false, _) => quote!(map_async_checked),
        (false, true, true) => quote!(try_map_retrying),
        (false, true, false) => quote!(try_map_with_checked),
        (false, false, _) => quote!(map_with_checked),
    };
    let retry_if = retry_if.map(|r| quote!(, #r));
    // An async body is a future per chunk, run by the call's own future: borrowed, then awaited.
    let (closure, awaited) = if is_async {
        (
            quote!(&|#cut_pat, (#(#owned_pats,)*)| async move #body),
            quote!(.await),
        )
    } else {
        (
            quote!(|#cut_pat, (#(#owned_pats,)*)| #body),
            TokenStream::new(),
        )
    };
    // Bytes with `cut_at`: handed over as `ByteText`, which cuts at lines or whitespace.
    let input = match (&cut.role, sig.bytes_cut_at) {
        (Role::Cut(CutKind::Vec), true) => quote!(::decor::chunks::ByteTextVec(#cut_name)),
        (_, true) => quote!(::decor::chunks::ByteText(&#cut_name[..])),
        _ => quote!(#cut_name),
    };
    let call = quote! {
        __decor_plan.#method(
            #input,
            || (#(::core::clone::Clone::clone(&#owned_names),)*),
            #closure
            #retry_if
        )#awaited
    };
    super::failed_chunk(sig, call)
}

/// For a `Result` with `retries`: which `Err`s run again, as the plan's `*_retrying` methods
/// take it; `None` when nothing is retried but dead workers.
pub(crate) fn retry_if(args: &ParallelArgs, sig: &Signature<'_>) -> Option<TokenStream> {
    if !(sig.is_result && args.retrying()) {
        return None;
    }
    Some(match &args.retry_if {
        Some(path) => quote_spanned! {path.span()=>
            &|__decor_e| ::decor::__private::retry_if(#path, __decor_e)
        },
        None => quote!(&|_| true),
    })
}
