//! `#[parallel_chunks(backend = "processes")]`: the extra checks and the generated worker entry.
//!
//! The body becomes a nested `fn __decor_body` with the function's own parameters, called by the
//! threads and serial path and by `__decor_entry`, which a worker runs: it decodes the other
//! parameters and the chunk, calls the body and encodes the result. Two ELF constructors register
//! the entry and, after every registration, let a worker process take over before `main`.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, ItemFn, Type};

use crate::options::Errors;

/// How the cut parameter is written.
pub(crate) enum SplitKind<'a> {
    /// `&[T]`: shared memory for plain data, else encoded.
    Slice(&'a Type),
    /// `&str`: encoded.
    Str,
    /// `Vec<T>`: encoded.
    Vec,
}

/// One parameter of the function, in order.
pub(crate) struct Param<'a> {
    pub(crate) name: &'a Ident,
    pub(crate) ty: &'a Type,
    pub(crate) split: bool,
}

/// Checks what only processes forbid; returns how the cut parameter crosses.
pub(crate) fn check<'a>(
    item: &ItemFn,
    split_ty: &'a Type,
    errors: &mut Errors,
) -> Option<SplitKind<'a>> {
    if !item.sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &item.sig.generics,
            "on `backend = \"processes\"` a worker runs the function by name, so it cannot be generic: write one non-generic function per type (each can call a generic helper), or use `backend = \"threads\"`",
        ));
    }
    if let Some(r) = item.sig.receiver() {
        errors.push(syn::Error::new_spanned(
            r,
            "on `backend = \"processes\"` the receiver would have to be sent to every worker: make it a free function taking what it needs, or use `backend = \"threads\"`",
        ));
    }
    if let syn::ReturnType::Type(_, ty) = &item.sig.output
        && mentions_impl(ty)
    {
        errors.push(syn::Error::new_spanned(
            ty,
            "on `backend = \"processes\"` the result is sent back from the worker, so it needs a concrete type that implements serde's traits, not `impl Trait`",
        ));
    }
    match split_ty {
        Type::Reference(r) if r.mutability.is_some() => {
            errors.push(syn::Error::new_spanned(
                split_ty,
                "on `backend = \"processes\"` each chunk is a copy in another process, so writes through `&mut [T]` would be lost: return the new values (`reduce = \"concat\"`) or use `backend = \"threads\"`",
            ));
            None
        }
        Type::Reference(r) => match &*r.elem {
            Type::Slice(s) => Some(SplitKind::Slice(&s.elem)),
            Type::Path(p) if p.path.is_ident("str") => Some(SplitKind::Str),
            other => {
                errors.push(syn::Error::new_spanned(
                    other,
                    "on `backend = \"processes\"` write the cut parameter as `&[T]`, `&str` or `Vec<T>`",
                ));
                None
            }
        },
        _ => Some(SplitKind::Vec),
    }
}

fn mentions_impl(ty: &Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|tt| match tt {
            proc_macro2::TokenTree::Ident(i) => i == "impl",
            proc_macro2::TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    walk(quote!(#ty))
}

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

pub(crate) struct Expansion {
    /// Items: the body fn, the entry, the registration.
    pub(crate) items: TokenStream,
    /// The expression of the processes path, giving what `map_with` would.
    pub(crate) run: TokenStream,
}

/// The generated items and the processes path of the call.
pub(crate) fn expand(
    item: &ItemFn,
    fn_name: &str,
    params: &[Param<'_>],
    split: &SplitKind<'_>,
    is_result: bool,
) -> Expansion {
    let inputs = &item.sig.inputs;
    let output = &item.sig.output;
    let block = &item.block;
    let ret: TokenStream = match output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => quote!(#ty),
    };
    let others: Vec<&Param<'_>> = params.iter().filter(|p| !p.split).collect();
    let other_names: Vec<&Ident> = others.iter().map(|p| p.name).collect();
    let other_owned: Vec<TokenStream> = others.iter().map(|p| owned_form(p.ty)).collect();
    let split_name = params
        .iter()
        .find(|p| p.split)
        .expect("a cut parameter")
        .name;

    let (decode, split_arg, prepare) = match split {
        SplitKind::Slice(elem) => (
            quote! {
                let __decor_chunk = {
                    use ::decor::__private::proc::{SliceViaSerde as _, SliceViaSharedMemory as _};
                    (&&::decor::__private::proc::SliceOf::<#elem>::new()).__decor_decode(__decor_input)?
                };
            },
            quote!(__decor_chunk.as_slice()),
            quote! {{
                use ::decor::__private::proc::{SliceViaSerde as _, SliceViaSharedMemory as _};
                (&&::decor::__private::proc::SliceOf::<#elem>::new()).__decor_prepare(&__decor_plan, #split_name)
            }},
        ),
        SplitKind::Str => (
            quote!(let __decor_chunk: ::std::string::String = __decor_input.split()?;),
            quote!(&__decor_chunk),
            quote!(::decor::__private::proc::prepare_serde(&__decor_plan, #split_name)),
        ),
        SplitKind::Vec => {
            let ty = params.iter().find(|p| p.split).expect("a cut parameter").ty;
            (
                quote!(let __decor_chunk: #ty = __decor_input.split()?;),
                quote!(__decor_chunk),
                quote!(::decor::__private::proc::prepare_serde(&__decor_plan, #split_name)),
            )
        }
    };
    let entry_args = params.iter().map(|p| {
        if p.split {
            split_arg.clone()
        } else if matches!(p.ty, Type::Reference(_)) {
            let n = p.name;
            quote!(&#n)
        } else {
            let n = p.name;
            quote!(#n)
        }
    });
    let checks = others
        .iter()
        .zip(&other_owned)
        .map(|(p, owned)| {
            quote_spanned!(p.ty.span()=> ::decor::__private::proc::crosses(::core::marker::PhantomData::<#owned>);)
        })
        .chain(std::iter::once(match output {
            syn::ReturnType::Type(_, ty) => {
                quote_spanned!(ty.span()=> ::decor::__private::proc::crosses(::core::marker::PhantomData::<#ty>);)
            }
            syn::ReturnType::Default => TokenStream::new(),
        }));
    let items = quote! {
        #[allow(clippy::too_many_arguments)]
        fn __decor_body(#inputs) #output #block

        fn __decor_entry(
            __decor_input: &::decor::__private::proc::ChunkInput<'_>,
        ) -> ::core::result::Result<::std::vec::Vec<u8>, ::std::string::String> {
            let (#(#other_names,)*): (#(#other_owned,)*) = __decor_input.args()?;
            #decode
            ::decor::__private::proc::encode(&__decor_body(#(#entry_args),*))
        }

        static __DECOR_ENTRY: ::decor::__private::proc::Entry = ::decor::__private::proc::Entry::new(
            ::core::concat!(::core::module_path!(), "::", #fn_name),
            __decor_entry,
        );

        // Before `main`: register the entry (prioritised constructors run first) ...
        #[used]
        #[cfg_attr(
            any(target_os = "linux", target_os = "android"),
            unsafe(link_section = ".init_array.00200")
        )]
        static __DECOR_REGISTER: extern "C" fn() = {
            extern "C" fn __decor_register() {
                ::decor::__private::proc::register(&__DECOR_ENTRY);
            }
            __decor_register
        };

        // ... then, after every registration, let a worker process take over.
        #[used]
        #[cfg_attr(any(target_os = "linux", target_os = "android"), unsafe(link_section = ".init_array"))]
        static __DECOR_WORKER: extern "C" fn() = {
            extern "C" fn __decor_worker() {
                ::decor::__private::proc::worker_main();
            }
            __decor_worker
        };

        #(#checks)*
    };
    let settle = if is_result {
        quote! {
            ::decor::__private::proc::settle_result(__decor_results, {
                use ::decor::__private::proc::{ConvertChunkError as _, PanicOnChunkError as _};
                (&&::decor::__private::proc::ErrorOf::<#ret>::new()).__decor_from_chunk_error()
            })
        }
    } else {
        quote!(::decor::__private::proc::settle(__decor_results))
    };
    let run = quote! {{
        let __decor_args = ::decor::__private::proc::encode(&(#(&#other_names,)*));
        let __decor_prepared = #prepare;
        let __decor_results = ::decor::__private::proc::run::<#ret>(
            &__decor_plan,
            &__DECOR_ENTRY,
            __decor_args,
            __decor_prepared,
        );
        #settle
    }};
    Expansion { items, run }
}
