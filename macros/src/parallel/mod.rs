//! `#[parallel_chunks]`: read the options, classify the signature once, check every rule, then
//! generate.
//!
//! - [`options`]: the attribute's `key = value` options, read into `ParallelArgs`;
//! - [`classify`]: which parameter is cut and how, which are shared or owned, the return shape;
//! - [`valid`]: every rule, checked before any token is generated;
//! - [`unfit`]: the one table of what keeps a function from another process, read by `valid` and
//!   by the expansion;
//! - generation, by what it emits: [`plan`] (the `static` plan), [`local`] (the threads and serial
//!   call), [`remote`] (the worker entry and the call on processes or MPI), [`reduce`] (the
//!   combination of the chunks' results).
//!
//! The function becomes: a `static ::decor::Plan` built from the options, one call of
//! `Plan::map_with` (or `try_map_with` for a `Result`) whose closure is the original body run on
//! one chunk, and the reduction of the chunk results. A function that can run outside the
//! process (any backend: `DECOR_BACKEND` may move it) also gets a worker entry, a closure that
//! captures nothing holding a second copy of the body, and the call goes there when the resolved
//! backend is processes or MPI and its types can cross.

mod classify;
mod local;
mod options;
mod plan;
mod reduce;
mod remote;
mod unfit;
mod valid;

use proc_macro2::TokenStream;
use quote::quote;

use crate::options::Begin;
use classify::Signature;

/// What a failed chunk becomes, the same on every backend: `call` gives the chunks' results or a
/// `ChunkError`; for a `Result` whose `E: From<ChunkError>` the error is `Err(E::from(…))`,
/// otherwise a panic naming the function and the chunk.
fn failed_chunk(sig: &Signature<'_>, call: TokenStream) -> TokenStream {
    let nameable = match &sig.item.sig.output {
        syn::ReturnType::Type(_, ty) => !crate::signature::mentions_impl(quote!(#ty)),
        syn::ReturnType::Default => true,
    };
    match &sig.item.sig.output {
        syn::ReturnType::Type(_, ret) if sig.is_result && nameable => quote! {
            ::decor::__private::or_convert(#call, {
                use ::decor::__private::{ConvertChunkError as _, PanicOnChunkError as _};
                (&&::decor::__private::ErrorOf::<#ret>::new()).__decor_from_chunk_error()
            })
        },
        // Not a `Result`, or `Result<impl Trait, E>`, which cannot be named for the choice: a
        // failed chunk is a panic.
        _ => quote!(::decor::__private::or_panic(#call)),
    }
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let (mut item, opts, mut errors) = match crate::options::begin("parallel_chunks", attr, item)? {
        Begin::Expand(item, opts, errors) => (*item, opts, errors),
        Begin::Wait(tokens) => return Ok(tokens),
    };
    let args = options::ParallelArgs::from_options(&opts, &mut errors);
    let mut sig = Signature::of(&item, args.split.as_ref());
    sig.bytes_cut_at = args.cut_at.is_some() && sig.cuts_bytes();
    valid::check(&args, &sig, &mut errors);
    errors.finish()?;

    let fn_name = sig.shape.name();
    let (plan, per_call) = plan::tokens(&args, &fn_name);
    let checks = local::checks(&sig);
    let hint = sig.shape.return_type_hint();
    let block = crate::signature::statements(&item.block);
    let retry_if = local::retry_if(&args, &sig);
    let local = local::call(&sig, quote!({ #hint #block }), false, retry_if.as_ref());
    let (items, run) = match unfit::unfit(&sig).first().map(|u| u.why) {
        None => {
            let remote = remote::call(&sig, &fn_name, retry_if.as_ref());
            let asked = if args.backend.crosses() {
                remote::checks(&sig)
            } else {
                TokenStream::new()
            };
            let takeover = remote::takeover();
            (
                quote!(#takeover #asked),
                quote! {{
                    let __decor_call = ::decor::__private::resolve(&__decor_plan);
                    let __decor_remote = if ::decor::__private::remote::leaves_process(&__decor_call) {
                        #remote
                    } else {
                        ::core::option::Option::None
                    };
                    match __decor_remote {
                        ::core::option::Option::Some(__decor_parts) => __decor_parts,
                        ::core::option::Option::None => #local,
                    }
                }},
            )
        }
        Some(why) => (
            TokenStream::new(),
            quote! {{
                let __decor_call = ::decor::__private::resolve(&__decor_plan);
                if ::decor::__private::remote::leaves_process(&__decor_call) {
                    ::decor::__private::remote::stays_here(&__decor_call, #why);
                }
                #local
            }},
        ),
    };
    let finish = reduce::finish(&sig, args.reduce.as_ref());
    let body = quote!({
        // Before `main`: a bad `DECOR_BACKEND` / `DECOR_WORKERS` is reported before any work.
        #[used]
        #[cfg_attr(any(target_os = "linux", target_os = "android"), unsafe(link_section = ".init_array"))]
        static __DECOR_CHECK_ENV: extern "C" fn() = {
            extern "C" fn __decor_check_env() {
                ::decor::__private::check_environment();
            }
            __decor_check_env
        };
        static __DECOR_PLAN: ::decor::Plan = #plan;
        let __decor_plan: ::decor::Plan = __DECOR_PLAN #per_call;
        #items
        #checks
        #[allow(clippy::redundant_closure_call)]
        let __decor_parts = #run;
        #finish
    });
    drop(sig);
    crate::signature::replace_body(&mut item, body)?;
    Ok(quote!(#item))
}
