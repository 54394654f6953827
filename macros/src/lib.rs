//! The attribute macros of [`decor`](https://docs.rs/decor): parsing and code generation only.
//!
//! Depend on `decor`, which re-exports these attributes with their user documentation and holds
//! everything they do at run time. The generated code names `::decor::…` only.

use proc_macro::TokenStream;

mod logged;
mod options;
mod parallel;
mod signature;
mod stacking;
mod timed;

/// Times every call of a function; see `decor::timed` for the documentation.
#[proc_macro_attribute]
pub fn timed(attr: TokenStream, item: TokenStream) -> TokenStream {
    finish(timed::expand(attr.into(), item.clone().into()), item)
}

/// Logs every call of a function in a span; see `decor::logged` for the documentation.
#[proc_macro_attribute]
pub fn logged(attr: TokenStream, item: TokenStream) -> TokenStream {
    finish(logged::expand(attr.into(), item.clone().into()), item)
}

/// Runs a function's body on chunks of its input, in parallel; see `decor::parallel_chunks`.
#[proc_macro_attribute]
pub fn parallel_chunks(attr: TokenStream, item: TokenStream) -> TokenStream {
    finish(parallel::expand(attr.into(), item.clone().into()), item)
}

/// On error, the errors and the function unchanged, so that the rest of the crate still checks
/// against it instead of reporting a missing function.
fn finish(result: syn::Result<proc_macro2::TokenStream>, item: TokenStream) -> TokenStream {
    match result {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            let mut out: proc_macro2::TokenStream = e.to_compile_error();
            out.extend(proc_macro2::TokenStream::from(item));
            out.into()
        }
    }
}
