//! `#[parallel_chunks]`: options, checks and expansion.
//!
//! The function becomes: a `static ::decor::Plan` built from the options, one call of
//! `Plan::map_with` (or `try_map_with` for a `Result`) whose closure is the original body run on
//! one chunk, and the reduction of the chunk results.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::{FnArg, Ident, Pat, Type};

use crate::options::{self, Begin, Errors, RawOption, RawValue};
use crate::signature::{FnShape, Output};

const ACCEPTED: &[&str] = &[
    "chunks",
    "chunk_size",
    "workers",
    "backend",
    "reduce",
    "split",
    "timeout",
    "retries",
];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Serial,
    Threads,
    Processes,
}

enum Reduce {
    Sum,
    Concat,
    Path(syn::Path),
}

/// A count written as a literal, or as the path of a `fn() -> usize` called at each call.
enum Count {
    Fixed(u64),
    Call(syn::Path),
}

impl Count {
    fn parse(opt: &RawOption, min: u64, example: &str) -> syn::Result<Count> {
        match &opt.value {
            RawValue::Path(p) => Ok(Count::Call(p.clone())),
            _ => opt.int(min, example).map(Count::Fixed).map_err(|e| {
                syn::Error::new(
                    e.span(),
                    format!("{e}, or the path of a `fn() -> usize` called at each call"),
                )
            }),
        }
    }
}

enum Cut {
    Chunks(Count),
    ChunkSize(Count),
}

/// The options of `#[parallel_chunks(…)]`, checked.
struct ParallelArgs {
    cut: Option<Cut>,
    workers: Option<Count>,
    backend: Backend,
    reduce: Option<(Reduce, Span)>,
    split: Option<Ident>,
    timeout_ns: Option<u64>,
    retries: Option<u64>,
}

impl ParallelArgs {
    fn from_options(opts: &[RawOption], errors: &mut Errors) -> ParallelArgs {
        let mut args = ParallelArgs {
            cut: None,
            workers: None,
            backend: Backend::Threads,
            reduce: None,
            split: None,
            timeout_ns: None,
            retries: None,
        };
        for opt in opts {
            let key = opt.key.to_string();
            match key.as_str() {
                "chunks" | "chunk_size" => {
                    if args.cut.is_some() {
                        errors.push(syn::Error::new_spanned(
                            &opt.key,
                            "`chunks` and `chunk_size` both say how to cut the input; keep one",
                        ));
                        continue;
                    }
                    if let Some(n) = errors.keep(Count::parse(opt, 1, "8")) {
                        args.cut = Some(if key == "chunks" {
                            Cut::Chunks(n)
                        } else {
                            Cut::ChunkSize(n)
                        });
                    }
                }
                "workers" => args.workers = errors.keep(Count::parse(opt, 1, "16")),
                "retries" => args.retries = errors.keep(opt.int(0, "2")),
                "timeout" => args.timeout_ns = errors.keep(options::duration(opt)),
                "backend" => {
                    if let Some(b) = errors.keep(parse_backend(opt)) {
                        args.backend = b;
                    }
                }
                "reduce" => args.reduce = errors.keep(parse_reduce(opt)),
                "split" => args.split = errors.keep(parse_split(opt)),
                _ => errors.push(options::unknown(opt, "parallel_chunks", ACCEPTED)),
            }
        }
        args
    }
}

fn parse_backend(opt: &RawOption) -> syn::Result<Backend> {
    let s = opt.str("\"threads\"")?;
    match s.value().as_str() {
        "threads" => Ok(Backend::Threads),
        "processes" => Ok(Backend::Processes),
        "serial" => Ok(Backend::Serial),
        other => Err(syn::Error::new_spanned(
            &s,
            format_args!(
                "unknown backend \"{other}\"; accepted: \"threads\", \"processes\", \"serial\""
            ),
        )),
    }
}

fn parse_reduce(opt: &RawOption) -> syn::Result<(Reduce, Span)> {
    let bad = |span: &dyn ToTokens, what: &str| {
        syn::Error::new_spanned(
            span,
            format_args!(
                "{what}; `reduce` accepts \"sum\", \"concat\" or the path of a `fn(R, R) -> R`, e.g. `reduce = \"sum\"` or `reduce = merge_counts`"
            ),
        )
    };
    match &opt.value {
        RawValue::Lit(syn::Lit::Str(s)) => match s.value().as_str() {
            "sum" => Ok((Reduce::Sum, s.span())),
            "concat" => Ok((Reduce::Concat, s.span())),
            other => Err(bad(s, &format!("unknown reduction \"{other}\""))),
        },
        RawValue::Path(p) => Ok((Reduce::Path(p.clone()), p.span())),
        _ => Err(bad(&opt.key, "`reduce` needs a value")),
    }
}

fn parse_split(opt: &RawOption) -> syn::Result<Ident> {
    match &opt.value {
        RawValue::Path(p) if p.get_ident().is_some() => Ok(p.get_ident().cloned().unwrap()),
        _ => Err(opt.error("`split` takes the name of the parameter to cut, e.g. `split = text`")),
    }
}

/// The kind of a parameter that can be cut, from its written type.
fn cuttable(ty: &Type) -> bool {
    match ty {
        Type::Reference(r) => match &*r.elem {
            Type::Slice(_) => true,
            Type::Path(p) => p.path.segments.last().is_some_and(|s| {
                s.ident == "str"
                    || (r.mutability.is_none() && (s.ident == "String" || s.ident == "Vec"))
            }),
            _ => false,
        },
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Vec"),
        Type::Group(g) => cuttable(&g.elem),
        Type::Paren(p) => cuttable(&p.elem),
        _ => false,
    }
}

fn is_mut_ref(ty: &Type) -> bool {
    matches!(ty, Type::Reference(r) if r.mutability.is_some())
}

fn is_shared_ref(ty: &Type) -> bool {
    matches!(ty, Type::Reference(r) if r.mutability.is_none())
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let (mut item, opts, mut errors) = match options::begin("parallel_chunks", attr, item)? {
        Begin::Expand(item, opts, errors) => (*item, opts, errors),
        Begin::Wait(tokens) => return Ok(tokens),
    };
    let args = ParallelArgs::from_options(&opts, &mut errors);
    let shape = FnShape::of(&item);
    let fn_name = shape.name();

    if let Some(a) = &item.sig.asyncness {
        errors.push(syn::Error::new_spanned(
            a,
            "`#[parallel_chunks]` cannot go on an `async fn`: its chunks run on threads or processes, which block; make it a plain `fn` (call it from async code with `spawn_blocking`), or split the work with your runtime's tasks",
        ));
    }
    if let Some(c) = &item.sig.constness {
        errors.push(syn::Error::new_spanned(
            c,
            "`#[parallel_chunks]` cannot go on a `const fn`: it starts threads; remove `const`",
        ));
    }

    // The parameter to cut.
    let typed: Vec<(&syn::PatType, Option<&Ident>)> = item
        .sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some((
                t,
                match &*t.pat {
                    Pat::Ident(p) => Some(&p.ident),
                    _ => None,
                },
            )),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let split_index = match &args.split {
        Some(name) => {
            match typed
                .iter()
                .position(|(_, n)| n.is_some_and(|n| n.unraw() == name.unraw()))
            {
                Some(i) if cuttable(&typed[i].0.ty) => Some(i),
                Some(i) => {
                    errors.push(syn::Error::new_spanned(
                        &typed[i].0.ty,
                        format_args!(
                            "`split = {name}`: this type cannot be cut; `#[parallel_chunks]` cuts a `&[T]`, `&mut [T]`, `&str` or `Vec<T>`"
                        ),
                    ));
                    None
                }
                None => {
                    let names: Vec<String> = typed
                        .iter()
                        .filter_map(|(_, n)| n.map(|n| format!("`{n}`")))
                        .collect();
                    errors.push(syn::Error::new_spanned(
                        name,
                        format_args!(
                            "`split = {name}`: `{fn_name}` has no parameter `{name}`; its parameters are {}",
                            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                        ),
                    ));
                    None
                }
            }
        }
        None => {
            let found = typed.iter().position(|(t, _)| cuttable(&t.ty));
            if found.is_none() {
                errors.push(syn::Error::new_spanned(
                    &item.sig.ident,
                    format_args!(
                        "`{fn_name}` has no parameter `#[parallel_chunks]` can cut: give it a `&[T]`, `&mut [T]`, `&str` or `Vec<T>` parameter (the first one is cut, or name it with `split = …`)"
                    ),
                ));
            }
            found
        }
    };

    // The receiver and the other parameters: shared by reference or cloned per chunk.
    if let Some(r) = item.sig.receiver() {
        let by_ref = matches!(&r.kind, syn::ReceiverKind::Reference(_, _, None));
        if !by_ref {
            errors.push(syn::Error::new_spanned(
                r,
                "`#[parallel_chunks]` shares the receiver with every chunk: take `&self`",
            ));
        }
    }
    let mut shared = Vec::new();
    let mut owned = Vec::new();
    for (i, (t, name)) in typed.iter().enumerate() {
        if Some(i) == split_index {
            continue;
        }
        let Some(name) = name else {
            errors.push(syn::Error::new_spanned(
                &t.pat,
                "`#[parallel_chunks]` hands this parameter to every chunk, so it needs a plain name",
            ));
            continue;
        };
        if is_mut_ref(&t.ty) {
            errors.push(syn::Error::new_spanned(
                t,
                format_args!(
                    "`{name}` is a `&mut` reference, which the chunks cannot share; pass `&` (with a `Mutex` or atomics inside if chunks must write), or cut it with `split = {name}`"
                ),
            ));
        } else if is_shared_ref(&t.ty) {
            shared.push((*name, *t));
        } else {
            owned.push((*name, *t));
        }
    }

    let process_split = match (args.backend, split_index) {
        (Backend::Processes, Some(i)) => {
            crate::processes::check(&item, &typed[i].0.ty, &mut errors)
        }
        _ => None,
    };

    let (is_result, ok_is_unit) = result_shape(&shape);
    if args.reduce.is_none() && !matches!(shape.output, Output::Unit) && !(is_result && ok_is_unit)
    {
        let ret = &item.sig.output;
        errors.push(syn::Error::new_spanned(
            ret,
            format_args!(
                "`{fn_name}` returns a value per chunk: say how they combine with `reduce = \"sum\"`, `reduce = \"concat\"` or `reduce = path::to::fn` (a `fn(R, R) -> R`)"
            ),
        ));
    }
    errors.finish()?;
    let split_index = split_index.expect("checked above");

    let (split_pat, split_ident) = {
        let (t, name) = typed[split_index];
        (&t.pat, name.expect("cuttable parameters are named").clone())
    };

    // The plan.
    let mut plan =
        quote!(::decor::Plan::new().named(::core::concat!(::core::module_path!(), "::", #fn_name)));
    // Literal counts go in the static plan; `fn() -> usize` ones are applied at each call.
    let mut per_call = TokenStream::new();
    let mut count = |method: TokenStream, c: &Count| match c {
        Count::Fixed(n) => plan.extend(quote!(.#method(#n as usize))),
        Count::Call(p) => per_call.extend(quote_spanned!(p.span()=> .#method(#p()))),
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
    });
    if let Some(ns) = args.timeout_ns {
        plan.extend(quote!(.timeout(::core::time::Duration::from_nanos(#ns))));
    }
    if let Some(n) = args.retries {
        plan.extend(quote!(.retries(#n as u32)));
    }

    // Compile-time checks with messages on the parameters' own tokens.
    let checks =
        shared
            .iter()
            .map(|(name, t)| quote_spanned!(t.span()=> ::decor::__private::shared_param(&#name);))
            .chain(owned.iter().map(
                |(name, t)| quote_spanned!(t.span()=> ::decor::__private::owned_param(&#name);),
            ));
    let owned_names: Vec<&Ident> = owned.iter().map(|(n, _)| *n).collect();
    let owned_pats: Vec<&Box<Pat>> = owned.iter().map(|(_, t)| &t.pat).collect();

    let hint = shape.return_type_hint();
    let block = &item.block;
    let method = if is_result {
        quote!(try_map_with)
    } else {
        quote!(map_with)
    };
    let (process_items, run) = match &process_split {
        None => (
            TokenStream::new(),
            quote! {
                __decor_plan.#method(
                    #split_ident,
                    || (#(::core::clone::Clone::clone(&#owned_names),)*),
                    |#split_pat, (#(#owned_pats,)*)| { #hint #block },
                )
            },
        ),
        Some(kind) => {
            let params: Vec<crate::processes::Param<'_>> = typed
                .iter()
                .enumerate()
                .map(|(i, (t, name))| crate::processes::Param {
                    name: name.expect("checked: every parameter is named"),
                    ty: &t.ty,
                    split: i == split_index,
                })
                .collect();
            let expansion = crate::processes::expand(&item, &fn_name, &params, kind, is_result);
            let body_args = params.iter().map(|p| p.name);
            let process_run = expansion.run;
            (
                expansion.items,
                quote! {
                    if __decor_plan.effective_backend() == ::decor::Backend::Processes {
                        #process_run
                    } else {
                        __decor_plan.#method(
                            #split_ident,
                            || (#(::core::clone::Clone::clone(&#owned_names),)*),
                            |#split_ident, (#(#owned_names,)*)| __decor_body(#(#body_args),*),
                        )
                    }
                },
            )
        }
    };
    let ret_span = match &item.sig.output {
        syn::ReturnType::Type(_, ty) => ty.span(),
        syn::ReturnType::Default => item.sig.ident.span(),
    };
    let reduce_fn = args.reduce.as_ref().map(|(r, span)| match r {
        Reduce::Sum => quote_spanned!(*span=> ::decor::reduce::sum),
        Reduce::Concat => quote_spanned!(ret_span=> ::decor::reduce::concat),
        Reduce::Path(p) => {
            quote_spanned!(p.span()=> |__decor_parts| ::decor::reduce::fold(__decor_parts, #p))
        }
    });
    let finish = match (&shape.output, is_result, reduce_fn) {
        (Output::Unit, _, _) => quote!(let _: ::std::vec::Vec<()> = __decor_parts;),
        (_, true, Some(f)) => quote!(::core::result::Result::map(__decor_parts, #f)),
        (_, true, None) => quote!(::core::result::Result::map(__decor_parts, |_| ())),
        (_, false, Some(f)) => quote!((#f)(__decor_parts)),
        (_, false, None) => unreachable!("a reduction is required for non-unit returns"),
    };
    let body = quote!({
        static __DECOR_PLAN: ::decor::Plan = #plan;
        let __decor_plan: ::decor::Plan = __DECOR_PLAN #per_call;
        #process_items
        #(#checks)*
        #[allow(clippy::redundant_closure_call)]
        let __decor_parts = #run;
        #finish
    });
    *item.block = syn::parse2(body)?;
    Ok(quote!(#item))
}

/// Whether the return type is written `Result<T, E>`, and whether `T` is `()`.
fn result_shape(shape: &FnShape<'_>) -> (bool, bool) {
    if !shape.returns_result() {
        return (false, false);
    }
    let Output::Type(Type::Path(p)) = shape.output else {
        return (false, false);
    };
    let last = p.path.segments.last().expect("a Result path");
    let ok_is_unit = match &last.arguments {
        syn::PathArguments::AngleBracketed(a) => matches!(
            a.args.first(),
            Some(syn::GenericArgument::Type(Type::Tuple(t))) if t.elems.is_empty()
        ),
        _ => false,
    };
    (true, ok_is_unit)
}
