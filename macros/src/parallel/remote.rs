//! Generates what a call that may leave the process adds (on processes or MPI, asked for with
//! `backend = …` or moved there by `DECOR_BACKEND`): the worker entry, a closure that captures
//! nothing (so it may name the function's generics and `Self`) holding the body; how each
//! parameter crosses, chosen by autoref on its type; the constructor that lets a worker take over
//! before `main`; the serde checks when the attribute asks for processes; and the call.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Type;
use syn::spanned::Spanned;

use super::classify::{CutKind, Role, Signature, vec_elem};

/// How one parameter crosses: the parent's push, the worker's take, and what the body gets.
struct Crossing {
    push: TokenStream,
    take: TokenStream,
    pass: TokenStream,
}

fn via(ty: &Type) -> TokenStream {
    quote! {
        (&&::decor::__private::remote::Via::<#ty>::new())
    }
}

fn slice_of(elem: &Type) -> TokenStream {
    quote! {
        (&&&::decor::__private::remote::SliceOf::<#elem>::new())
    }
}

fn use_via() -> TokenStream {
    quote!(
        use ::decor::__private::remote::{ViaNothing as _, ViaSerde as _};
    )
}

fn use_slice() -> TokenStream {
    quote!(
        use ::decor::__private::remote::{
            SliceViaNothing as _, SliceViaSerde as _, SliceViaSharedMemory as _,
        };
    )
}

/// A parameter other than the cut one, at position `k` among them.
fn other(name: &syn::Ident, ty: &Type, role: &Role<'_>, k: usize) -> Crossing {
    let piece = quote!(__decor_input.arg(#k)?);
    let (uv, us) = (use_via(), use_slice());
    if let (Role::Shared, Type::Reference(r)) = (role, ty) {
        let elem = &*r.elem;
        if let Type::Slice(s) = elem {
            let m = slice_of(&s.elem);
            return Crossing {
                push: quote!({ #us #m.__decor_arg(&mut __decor_args, #name); }),
                take: quote!({ #us #m.__decor_take(#piece)? }),
                pass: quote!(#name.as_slice()),
            };
        }
        if is_path(elem, "str") {
            return Crossing {
                push: quote!(__decor_args.text(#name);),
                take: quote!(#piece.text()?),
                pass: quote!(#name.as_str()),
            };
        }
        if is_path(elem, "String") {
            return Crossing {
                push: quote!(__decor_args.text(#name);),
                take: quote!(#piece.text()?.into_string()),
                pass: quote!(&#name),
            };
        }
        let m = via(elem);
        return Crossing {
            push: quote!({ #uv #m.__decor_arg(&mut __decor_args, #name); }),
            take: quote!({ #uv #m.__decor_take(#piece)? }),
            pass: quote!(&#name),
        };
    }
    if let (Role::Owned, Some(elem)) = (role, vec_elem(ty).filter(|_| is_path(ty, "Vec"))) {
        let m = slice_of(elem);
        return Crossing {
            push: quote!({ #us #m.__decor_arg(&mut __decor_args, &#name[..]); }),
            take: quote!({ #us #m.__decor_take_vec(#piece)? }),
            pass: quote!(#name),
        };
    }
    let m = via(ty);
    Crossing {
        push: quote!({ #uv #m.__decor_arg(&mut __decor_args, &#name); }),
        take: quote!({ #uv #m.__decor_take(#piece)? }),
        pass: quote!(#name),
    }
}

/// How the cut parameter crosses.
struct CutCrossing {
    /// The parent's chunks.
    prepare: TokenStream,
    /// Why its elements cannot cross, if they cannot (an `Option<String>`).
    unfit: TokenStream,
    /// The worker's take of its chunk.
    take: TokenStream,
    /// What the body gets.
    pass: TokenStream,
}

/// The cut parameter: the parent's chunks, whether they can cross, the worker's take, and what
/// the body gets.
fn cut(sig: &Signature<'_>) -> CutCrossing {
    let p = sig.cut_param();
    let name = Signature::name(p);
    let us = use_slice();
    let chunk = quote!(__decor_input.chunk());
    let none = quote!(::core::option::Option::None::<::std::string::String>);
    match &p.role {
        Role::Cut(kind) if sig.bytes_cut_at => {
            let pass = match kind {
                CutKind::Vec => quote!(__decor_chunk.into_vec()),
                CutKind::VecRef => quote!(&__decor_chunk.into_vec()),
                _ => quote!(__decor_chunk.as_slice()),
            };
            CutCrossing {
                prepare: quote!(::decor::__private::remote::prepare_bytes(&__decor_call, &#name[..])),
                unfit: none,
                take: quote!(#chunk.pod::<u8>()?),
                pass,
            }
        }
        Role::Cut(CutKind::Slice(elem)) => {
            let m = slice_of(elem);
            CutCrossing {
                prepare: quote!({ #us #m.__decor_prepare(&__decor_call, #name) }),
                unfit: quote!({ #us #m.__decor_unfit() }),
                take: quote!({ #us #m.__decor_take(#chunk)? }),
                pass: quote!(__decor_chunk.as_slice()),
            }
        }
        Role::Cut(kind @ (CutKind::Vec | CutKind::VecRef)) => {
            let elem = vec_elem(&p.arg.ty).expect("checked by cannot_cross");
            let m = slice_of(elem);
            let pass = if matches!(kind, CutKind::Vec) {
                quote!(__decor_chunk)
            } else {
                quote!(&__decor_chunk)
            };
            CutCrossing {
                prepare: quote!({ #us #m.__decor_prepare(&__decor_call, &#name[..]) }),
                unfit: quote!({ #us #m.__decor_unfit() }),
                take: quote!({ #us #m.__decor_take_vec(#chunk)? }),
                pass,
            }
        }
        Role::Cut(CutKind::File) => CutCrossing {
            prepare: quote!(::decor::__private::remote::prepare_file(&__decor_call, #name)),
            unfit: none,
            take: quote!(::decor::shm::MappedFile::lent(#chunk.bytes())),
            pass: quote!(&__decor_chunk),
        },
        Role::Cut(CutKind::StringRef) => CutCrossing {
            prepare: quote!(::decor::__private::remote::prepare_text(&__decor_call, #name)),
            unfit: none,
            take: quote!(#chunk.text()?.into_string()),
            pass: quote!(&__decor_chunk),
        },
        _ => CutCrossing {
            prepare: quote!(::decor::__private::remote::prepare_text(&__decor_call, #name)),
            unfit: none,
            take: quote!(#chunk.text()?),
            pass: quote!(__decor_chunk.as_str()),
        },
    }
}

/// The function's result type as written, `()` for none.
fn ret(sig: &Signature<'_>) -> TokenStream {
    match &sig.item.sig.output {
        syn::ReturnType::Default => quote!(()),
        syn::ReturnType::Type(_, ty) => quote!(#ty),
    }
}

/// The constructor that lets a worker process or a serving rank take over before `main`.
pub(crate) fn takeover() -> TokenStream {
    quote! {
        #[used]
        #[cfg_attr(any(target_os = "linux", target_os = "android"), unsafe(link_section = ".init_array"))]
        static __DECOR_WORKER: extern "C" fn() = {
            extern "C" fn __decor_worker() {
                ::decor::__private::remote::worker_main();
            }
            __decor_worker
        };
    }
}

/// On `backend = "processes"` or `"mpi"` written in the attribute: every type that crosses is
/// checked at its own tokens.
pub(crate) fn checks(sig: &Signature<'_>) -> TokenStream {
    let owned = |ty: &Type| -> TokenStream {
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
    };
    let cut = sig.cut_param();
    let elem = match &cut.role {
        Role::Cut(CutKind::Slice(elem)) => Some(*elem),
        Role::Cut(CutKind::Vec | CutKind::VecRef) => vec_elem(&cut.arg.ty),
        _ => None,
    };
    let us = use_slice();
    let cut_check = elem.map(|e| {
        let m = slice_of(e);
        quote_spanned!(cut.arg.ty.span()=> { #us #m.__decor_must_cross(); })
    });
    cut_check.into_iter().chain(sig.others()
        .map(|(_, p)| {
            let o = owned(&p.arg.ty);
            quote_spanned!(p.arg.ty.span()=> ::decor::__private::remote::crosses(::core::marker::PhantomData::<#o>);)
        })
        .chain(std::iter::once(match &sig.item.sig.output {
            syn::ReturnType::Type(_, ty) => {
                quote_spanned!(ty.span()=> ::decor::__private::remote::crosses(::core::marker::PhantomData::<#ty>);)
            }
            syn::ReturnType::Default => TokenStream::new(),
        })))
        .collect()
}

/// The remote call: `Some(parts)` as the local call gives them (`Vec<R>`, or
/// `Result<Vec<T>, E>`), or `None` after one WARN when a type cannot cross, so that the call runs
/// on threads. Evaluated only when the resolved backend leaves the process. `retry_if`: as
/// [`local::retry_if`](super::local::retry_if) gives it; the worker judges each `Err` with it
/// and tells the parent, which runs the chunk again.
pub(crate) fn call(
    sig: &Signature<'_>,
    fn_name: &str,
    retry_if: Option<&TokenStream>,
) -> TokenStream {
    let others: Vec<Crossing> = sig
        .others()
        .enumerate()
        .map(|(k, (name, p))| other(name, &p.arg.ty, &p.role, k))
        .collect();
    let pushes = others.iter().map(|c| &c.push);
    let cut = cut(sig);
    let (prepare, cut_unfit) = (&cut.prepare, &cut.unfit);
    let entry = entry(sig, &others, &cut, retry_if);
    let m = via(&syn::parse2(ret(sig)).expect("a type"));
    let uv = use_via();
    let settled = settled(sig);
    quote! {{
        #entry
        let mut __decor_args = ::decor::__private::remote::Args::new(&__decor_call);
        #(#pushes)*
        let __decor_unfit: ::core::option::Option<::std::string::String> = { #uv #m.__decor_unfit() }
            .or_else(|| #cut_unfit)
            .or_else(|| __decor_args.why_unfit().map(::std::borrow::ToOwned::to_owned));
        match __decor_unfit {
            ::core::option::Option::None => {
                let __decor_chunks = #prepare;
                let __decor_remote = ::decor::__private::remote::Remote::new(
                    ::core::concat!(::core::module_path!(), "::", #fn_name),
                    __decor_entry,
                );
                let __decor_outcomes = {
                    #uv
                    #m.__decor_run(&__decor_call, __decor_remote, __decor_args, __decor_chunks)
                };
                ::core::option::Option::Some(#settled)
            }
            ::core::option::Option::Some(__decor_why) => {
                ::decor::__private::remote::stays_here(&__decor_call, &__decor_why);
                ::core::option::Option::None
            }
        }
    }}
}

/// `let __decor_entry`: what a worker runs for one chunk: the other parameters taken from the
/// call's arguments, the chunk from its input, the body, `retry_if` on an `Err`, the encoded
/// value.
fn entry(
    sig: &Signature<'_>,
    others: &[Crossing],
    cut: &CutCrossing,
    retry_if: Option<&TokenStream>,
) -> TokenStream {
    let (cut_take, cut_pass) = (&cut.take, &cut.pass);
    let inputs = &sig.item.sig.inputs;
    let block = &sig.item.block;
    let ret = ret(sig);
    let other_names: Vec<_> = sig.others().map(|(n, _)| n).collect();
    let takes = others.iter().map(|c| &c.take);
    let mut passes = others.iter().map(|c| c.pass.clone());
    let body_args: Vec<TokenStream> = sig
        .params
        .iter()
        .map(|p| match p.role {
            Role::Cut(_) => cut_pass.clone(),
            _ => passes.next().expect("one per other parameter"),
        })
        .collect();
    let m = via(&syn::parse2(ret.clone()).expect("a type"));
    let uv = use_via();
    let ask_retry = retry_if.map(|judge| {
        quote! {
            if let ::core::result::Result::Err(__decor_err) = &__decor_out {
                if (#judge)(__decor_err) {
                    __decor_input.ask_retry(::std::format!("{:?}", __decor_err));
                }
            }
        }
    });
    quote! {
        let __decor_entry: ::decor::__private::remote::EntryFn = |__decor_input| {
            #(let #other_names = #takes;)*
            let __decor_chunk = #cut_take;
            #[allow(clippy::too_many_arguments)]
            let __decor_body = |#inputs| -> #ret #block;
            let __decor_out = __decor_body(#(#body_args),*);
            #ask_retry
            #uv
            #m.__decor_encode(&__decor_out)
        };
    }
}

/// The outcomes of a remote call settled as the local call gives them: `Vec<R>`, or
/// `Result<Vec<T>, E>` with the failed chunk named.
fn settled(sig: &Signature<'_>) -> TokenStream {
    let settle = if sig.is_result {
        quote!(::decor::__private::remote::settle_try(
            &__decor_call,
            __decor_outcomes
        ))
    } else {
        quote!(::decor::__private::remote::settle(
            &__decor_call,
            __decor_outcomes
        ))
    };
    super::failed_chunk(sig, settle)
}

fn is_path(ty: &Type, name: &str) -> bool {
    matches!(ty, Type::Path(p) if p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == name))
}
