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
        Reduce::Path(p) => {
            quote_spanned!(p.span()=> |__decor_parts| ::decor::reduce::fold(__decor_parts, #p))
        }
    });
    match (&sig.shape.output, sig.is_result, reduce_fn) {
        (Output::Unit, _, _) => quote!(let _: ::std::vec::Vec<()> = __decor_parts;),
        (_, true, Some(f)) => quote!(::core::result::Result::map(__decor_parts, #f)),
        (_, true, None) => quote!(::core::result::Result::map(__decor_parts, |_| ())),
        (_, false, Some(f)) => quote!((#f)(__decor_parts)),
        (_, false, None) => unreachable!("validated: a reduction is required for non-unit returns"),
    }
}
