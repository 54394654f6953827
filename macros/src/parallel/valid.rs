//! Every rule of `#[parallel_chunks]`, checked before any token is generated; each failure an error
//! on the offending token saying what is accepted. Generation may then assume a valid function.

use super::classify::{CutChoice, CutKind, Role, Signature};
use super::options::ParallelArgs;
use crate::options::Errors;

const CUTTABLE: &str = "a `&[T]`, `&mut [T]`, `&str`, `Vec<T>` or `&MappedFile`";

/// Checks the function against the options; every failure goes to `errors`.
pub(crate) fn check(args: &ParallelArgs, sig: &Signature<'_>, errors: &mut Errors) {
    let item = sig.item;
    let fn_name = sig.shape.name();
    if let Some(c) = &item.sig.constness {
        errors.push(syn::Error::new_spanned(
            c,
            "`#[parallel_chunks]` cannot go on a `const fn`: it starts threads; remove `const`",
        ));
    }
    check_cut(sig, &fn_name, errors);
    check_retries(args, sig, errors);
    if let Some(r) = item.sig.receiver() {
        let by_ref = matches!(&r.kind, syn::ReceiverKind::Reference(_, _, None));
        if !by_ref {
            errors.push(syn::Error::new_spanned(
                r,
                "`#[parallel_chunks]` shares the receiver with every chunk: take `&self`",
            ));
        }
    }
    for p in sig
        .params
        .iter()
        .filter(|p| !matches!(p.role, Role::Cut(_)))
    {
        let Some(name) = p.name else {
            errors.push(syn::Error::new_spanned(
                &p.arg.pat,
                "`#[parallel_chunks]` hands this parameter to every chunk, so it needs a plain name",
            ));
            continue;
        };
        if matches!(p.role, Role::MutRef) {
            errors.push(syn::Error::new_spanned(
                p.arg,
                format_args!(
                    "`{name}` is a `&mut` reference, which the chunks cannot share; pass `&` (with a `Mutex` or atomics inside if chunks must write), or cut it with `split = {name}`"
                ),
            ));
        }
    }
    if args.backend.crosses() && matches!(sig.cut, CutChoice::Found(_)) {
        check_processes(sig, args.backend.name(), errors);
    }
    if let (Some((_, span)), CutChoice::Found(i)) = (&args.cut_at, &sig.cut) {
        let p = &sig.params[*i];
        if !matches!(
            p.role,
            Role::Cut(CutKind::Str | CutKind::StringRef | CutKind::File)
        ) && !sig.cuts_bytes()
        {
            errors.push(syn::Error::new(
                *span,
                format_args!(
                    "`cut_at` says where a text or bytes may be cut, and `{}` is not a `&str`, `&String`, `&[u8]`, `Vec<u8>` or `&MappedFile`; remove `cut_at`, or cut text or bytes",
                    p.name.map_or_else(|| "the cut parameter".to_owned(), |n| n.to_string())
                ),
            ));
        }
    }
    if args.reduce.is_none() && !sig.returns_nothing() {
        errors.push(syn::Error::new_spanned(
            &item.sig.output,
            format_args!(
                "`{fn_name}` returns a value per chunk: say how they combine with `reduce = \"sum\"`, `reduce = \"concat\"` or `reduce = path::to::fn` (a `fn(R, R) -> R`)"
            ),
        ));
    }
}

fn check_cut(sig: &Signature<'_>, fn_name: &str, errors: &mut Errors) {
    match sig.cut {
        CutChoice::Found(_) => {}
        CutChoice::NoSuchParam(name) => {
            let names: Vec<String> = sig
                .params
                .iter()
                .filter_map(|p| p.name.map(|n| format!("`{n}`")))
                .collect();
            errors.push(syn::Error::new_spanned(
                name,
                format_args!(
                    "`split = {name}`: `{fn_name}` has no parameter `{name}`; its parameters are {}",
                    if names.is_empty() {
                        "none".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
            ));
        }
        CutChoice::NoneCuttable => errors.push(syn::Error::new_spanned(
            &sig.item.sig.ident,
            format_args!(
                "`{fn_name}` has no parameter `#[parallel_chunks]` can cut: give it {CUTTABLE} parameter (the first one is cut), or name a parameter of your own `decor::chunks::Chunkable` type with `split = …`"
            ),
        )),
    }
}

/// What only processes and MPI forbid: everything crosses to another process (the rules in
/// [`unfit`](super::unfit)).
fn check_processes(sig: &Signature<'_>, backend: &str, errors: &mut Errors) {
    for rule in super::unfit::unfit(sig) {
        errors.push(syn::Error::new_spanned(
            rule.at,
            rule.error.replace("{backend}", backend),
        ));
    }
}

/// `retries`, `backoff`, `retry_if`: what each needs of the others and of the function.
fn check_retries(args: &ParallelArgs, sig: &Signature<'_>, errors: &mut Errors) {
    let retrying = args.retrying();
    if let (Some(path), false) = (&args.retry_if, retrying) {
        errors.push(syn::Error::new_spanned(
            path,
            "`retry_if` says which errors are retried, and nothing is: add `retries = N` (attempts after the first)",
        ));
    }
    if let (Some((_, span)), false) = (&args.backoff, retrying) {
        errors.push(syn::Error::new(
            *span,
            "`backoff` is the wait before a retry, and nothing is retried: add `retries = N` (attempts after the first)",
        ));
    }
    if let (Some(path), false) = (&args.retry_if, sig.is_result) {
        errors.push(syn::Error::new_spanned(
            path,
            "`retry_if` judges the `Err` of a function that returns `Result<T, E>`, and this one returns no `Result`; remove it (`retries` alone reruns a chunk whose worker died or timed out)",
        ));
    }
    if let (Some((_, span)), true, CutChoice::Found(i)) =
        (&args.retries, retrying && sig.is_result, &sig.cut)
        && matches!(sig.params[*i].role, Role::Cut(CutKind::MutSlice))
    {
        errors.push(syn::Error::new(
            *span,
            "`retries` runs a chunk that returned `Err` again on the same input, and a `&mut [T]` chunk may have been changed by the failed attempt; cut a `&[T]` and return the new values, or remove `retries`",
        ));
    }
}
