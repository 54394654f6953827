//! Generates what `backend = "processes"` adds: the body as a nested `fn __decor_body` with the
//! function's own parameters, the worker entry `__decor_entry` (decode the other parameters and
//! the chunk, call the body, encode the result), the two ELF constructors that register it and let
//! a worker take over before `main`, the serde checks, and the call on the pool.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use super::classify::{CutKind, Role, Signature};

/// The owned form a worker decodes a parameter into: `&str` → `String`, `&[T]` → `Vec<T>`,
/// `&T` → `T`, `T` → `T`.
fn owned_form(ty: &Type) -> TokenStream {
    match ty {
        Type::Reference(r) => match &*r.elem {
            Type::Path(p) if p.path.is_ident("str") => quote!(::std::string::String),
            Type::Slice(s) => {
                let e = &s.elem;
                quote!(::std::vec::Vec<#e>)
            }
            other => quote!(#other),
        },
        other => quote!(#other),
    }
}

/// The items the function's block starts with: the body fn, the entry, its registration, the
/// serde checks.
pub(crate) fn items(sig: &Signature<'_>, fn_name: &str) -> TokenStream {
    let item = sig.item;
    let inputs = &item.sig.inputs;
    let output = &item.sig.output;
    let block = &item.block;
    let other_names: Vec<_> = sig.others().map(|(n, _)| n).collect();
    let other_owned: Vec<TokenStream> = sig.others().map(|(_, p)| owned_form(&p.arg.ty)).collect();
    let cut = sig.cut_param();
    let decode = match &cut.role {
        Role::Cut(CutKind::Slice(elem)) => quote! {
            let __decor_chunk = {
                use ::decor::__private::processes::{SliceViaSerde as _, SliceViaSharedMemory as _};
                (&&::decor::__private::processes::SliceOf::<#elem>::new()).__decor_decode(__decor_input)?
            };
        },
        Role::Cut(CutKind::Str) => {
            quote!(let __decor_chunk: ::std::string::String = __decor_input.chunk()?;)
        }
        _ => {
            let ty = &cut.arg.ty;
            quote!(let __decor_chunk: #ty = __decor_input.chunk()?;)
        }
    };
    let cut_arg = match &cut.role {
        Role::Cut(CutKind::Slice(_)) => quote!(__decor_chunk.as_slice()),
        Role::Cut(CutKind::Str) => quote!(&__decor_chunk),
        _ => quote!(__decor_chunk),
    };
    let entry_args = sig.params.iter().map(|p| match p.role {
        Role::Cut(_) => cut_arg.clone(),
        Role::Shared => {
            let n = Signature::name(p);
            quote!(&#n)
        }
        _ => {
            let n = Signature::name(p);
            quote!(#n)
        }
    });
    let checks = sig
        .others()
        .zip(&other_owned)
        .map(|((_, p), owned)| {
            quote_spanned!(p.arg.ty.span()=> ::decor::__private::processes::crosses(::core::marker::PhantomData::<#owned>);)
        })
        .chain(std::iter::once(match output {
            syn::ReturnType::Type(_, ty) => {
                quote_spanned!(ty.span()=> ::decor::__private::processes::crosses(::core::marker::PhantomData::<#ty>);)
            }
            syn::ReturnType::Default => TokenStream::new(),
        }));
    quote! {
        #[allow(clippy::too_many_arguments)]
        fn __decor_body(#inputs) #output #block

        fn __decor_entry(
            __decor_input: &::decor::__private::processes::ChunkInput<'_>,
        ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
            let (#(#other_names,)*): (#(#other_owned,)*) = __decor_input.args()?;
            #decode
            ::decor::__private::processes::encode(&__decor_body(#(#entry_args),*))
        }

        static __DECOR_ENTRY: ::decor::__private::processes::Entry = ::decor::__private::processes::Entry::new(
            ::core::concat!(::core::module_path!(), "::", #fn_name),
            __decor_entry,
        )
        .key(::core::concat!(
            ::core::module_path!(), "::", #fn_name, "@",
            ::core::file!(), ":", ::core::line!(), ":", ::core::column!()
        ));

        // Before `main`: register the entry (prioritised constructors run first) ...
        #[used]
        #[cfg_attr(
            any(target_os = "linux", target_os = "android"),
            unsafe(link_section = ".init_array.00200")
        )]
        static __DECOR_REGISTER: extern "C" fn() = {
            extern "C" fn __decor_register() {
                ::decor::__private::processes::register(&__DECOR_ENTRY);
            }
            __decor_register
        };

        // ... then, after every registration, let a worker process take over.
        #[used]
        #[cfg_attr(any(target_os = "linux", target_os = "android"), unsafe(link_section = ".init_array"))]
        static __DECOR_WORKER: extern "C" fn() = {
            extern "C" fn __decor_worker() {
                ::decor::__private::processes::worker_main();
            }
            __decor_worker
        };

        #(#checks)*
    }
}

/// The call on the pool: the chunks' results as the threads path gives them (`Vec<R>`, or
/// `Result<Vec<T>, E>`), a failed chunk converted to `E` where it can be, else a panic.
pub(crate) fn call(sig: &Signature<'_>) -> TokenStream {
    let cut = sig.cut_param();
    let cut_name = Signature::name(cut);
    let other_names = sig.others().map(|(n, _)| n);
    let prepare = match &cut.role {
        Role::Cut(CutKind::Slice(elem)) => quote! {{
            use ::decor::__private::processes::{SliceViaSerde as _, SliceViaSharedMemory as _};
            (&&::decor::__private::processes::SliceOf::<#elem>::new()).__decor_prepare(&__decor_call, #cut_name)
        }},
        _ => quote!(::decor::__private::processes::prepare_serde(&__decor_call, #cut_name)),
    };
    let run = if sig.is_result {
        quote!(::decor::__private::processes::run_try(
            &__decor_call,
            &__DECOR_ENTRY,
            __decor_args,
            __decor_chunks
        ))
    } else {
        let ret: TokenStream = match &sig.item.sig.output {
            syn::ReturnType::Default => quote!(()),
            syn::ReturnType::Type(_, ty) => quote!(#ty),
        };
        quote!(::decor::__private::processes::run::<#ret>(&__decor_call, &__DECOR_ENTRY, __decor_args, __decor_chunks))
    };
    let settle = super::failed_chunk(sig, run);
    quote! {{
        let __decor_args = ::decor::__private::processes::encode(&(#(&#other_names,)*));
        let __decor_chunks = #prepare;
        #settle
    }}
}
