//! Generates the end of the call: the chunks' results combined in chunk order.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::classify::Signature;
use super::options::Reduce;
use crate::signature::Output;

/// The statement that turns `__decor_parts` into the function's value.
pub(crate) fn finish(
    sig: &Signature<'_>,
    reduce: Option<&(Reduce, proc_macro2::Span)>,
) -> TokenStream {
    let ret_span = match &sig.item.sig.output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => sig.item.sig.ident.span(),
    };
    let reduce_fn = reduce.map(|(r, span)| match r {
        Reduce::Sum => quote_spanned!(*span=> ::decor::reduce::sum),
        Reduce::Concat => quote_spanned!(ret_span=> ::decor::reduce::concat),
        // The chunk result's type is given, so that a reducer of another type is reported at
        // the `reduce` path with both signatures, not as a mismatch of the parts' `Vec`.
        Reduce::Path(p) => match per_chunk(sig) {
            Some(r) => quote_spanned!(p.span()=> |__decor_parts| ::decor::reduce::fold::<#r>(__decor_parts, #p)),
            None => quote_spanned!(p.span()=> |__decor_parts| ::decor::reduce::fold(__decor_parts, #p)),
        },
    });
    match (&sig.shape.output, sig.is_result, reduce_fn) {
        (Output::Unit, _, _) => quote!(let _: ::std::vec::Vec<()> = __decor_parts;),
        (_, true, Some(f)) => quote!(::core::result::Result::map(__decor_parts, #f)),
        (_, true, None) => quote!(::core::result::Result::map(__decor_parts, |_| ())),
        (_, false, Some(f)) => quote!((#f)(__decor_parts)),
        (_, false, None) => unreachable!("validated: a reduction is required for non-unit returns"),
    }
}

/// The type each chunk's body gives, when it can be named: the return type, or `T` of a
/// `Result<T, E>`.
fn per_chunk(sig: &Signature<'_>) -> Option<TokenStream> {
    let Output::Type(ty) = &sig.shape.output else {
        return None;
    };
    if crate::signature::mentions_impl(quote!(#ty)) {
        return None;
    }
    if !sig.is_result {
        return Some(quote!(#ty));
    }
    let syn::Type::Path(p) = ty else { return None };
    match &p.path.segments.last()?.arguments {
        syn::PathArguments::AngleBracketed(a) => match a.args.first()? {
            syn::GenericArgument::Type(t) => Some(quote!(#t)),
            _ => None,
        },
        _ => None,
    }
}
