//! Stacked decor attributes wrap in the order they are written, like Python decorators.
//!
//! Rust expands the outermost attribute first, and it sees the function with the inner attributes
//! still on it. If each attribute wrapped the body right away, the *innermost* attribute's code
//! would end up outermost. So an attribute that sees an inner decor attribute not yet expanded
//! does nothing but move itself, marked as deferred, to just after the last such attribute; the
//! inner ones then expand first and the deferred one wraps what they produced.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Attribute, Ident, ItemFn};

/// The marker option put first in a deferred attribute's arguments.
const DEFERRED: &str = "__decor_deferred";

const DECOR_ATTRIBUTES: &[&str] = &["timed", "logged", "parallel_chunks"];

/// Splits the deferred marker off an attribute's arguments.
fn strip_marker(attr: TokenStream) -> (bool, TokenStream) {
    let mut tokens = attr.clone().into_iter();
    match tokens.next() {
        Some(proc_macro2::TokenTree::Ident(i)) if i == DEFERRED => {
            let rest: TokenStream = tokens.collect();
            let mut rest = rest.into_iter().peekable();
            if matches!(rest.peek(), Some(proc_macro2::TokenTree::Punct(p)) if p.as_char() == ',') {
                rest.next();
            }
            (true, rest.collect())
        }
        _ => (false, attr),
    }
}

fn is_pending_decor(attr: &Attribute) -> bool {
    let Some(last) = attr.path().segments.last() else {
        return false;
    };
    if !DECOR_ATTRIBUTES.iter().any(|n| last.ident == n) {
        return false;
    }
    match &attr.meta {
        syn::Meta::List(list) => !strip_marker(list.tokens.clone()).0,
        _ => true,
    }
}

/// Whether an attribute expands now or waits for inner decor attributes.
pub(crate) enum Turn {
    /// Expand now, with these arguments (marker removed).
    Now(TokenStream),
    /// Emit these tokens: the function with this attribute moved after the inner ones.
    Later(TokenStream),
}

/// Decides the [`Turn`] of the attribute `name` with arguments `attr` on `item`.
pub(crate) fn turn(name: &str, attr: TokenStream, item: &ItemFn) -> Turn {
    let (deferred, attr) = strip_marker(attr);
    if deferred {
        return Turn::Now(attr);
    }
    match defer(name, &attr, item) {
        Some(tokens) => Turn::Later(tokens),
        None => Turn::Now(attr),
    }
}

fn defer(name: &str, attr: &TokenStream, item: &ItemFn) -> Option<TokenStream> {
    let last = item.attrs.iter().rposition(is_pending_decor)?;
    let mut item = item.clone();
    let name = Ident::new(name, proc_macro2::Span::call_site());
    let marker = Ident::new(DEFERRED, proc_macro2::Span::call_site());
    let deferred: Attribute = syn::parse_quote!(#[::decor::#name(#marker, #attr)]);
    item.attrs.insert(last + 1, deferred);
    Some(quote!(#item))
}
