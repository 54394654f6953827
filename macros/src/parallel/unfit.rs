//! What keeps a function from running in another process, whatever its types: one table, read
//! twice. Written `backend = "processes"` or `"mpi"`, each rule that applies is a compile error
//! on its token ([`valid`](super::valid)); otherwise the first one is the reason a call that
//! `DECOR_BACKEND` moves stays on threads, said in its WARN (the expansion in [`super`]).
//! Whether the types themselves can cross (serde, plain data) is decided where the function
//! expands, by autoref on each type.

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::Type;

use super::classify::{CutKind, Role, Signature, vec_elem};

/// One rule the function breaks.
pub(crate) struct Unfit {
    /// The tokens the compile error points at.
    pub(crate) at: TokenStream,
    /// Why it cannot cross, as the WARN says it.
    pub(crate) why: &'static str,
    /// The compile error: what crossing would need, and what to write; `{backend}` stands for
    /// the backend asked for.
    pub(crate) error: &'static str,
}

/// Every rule the function breaks, in the order of the signature.
pub(crate) fn unfit(sig: &Signature<'_>) -> Vec<Unfit> {
    let item = sig.item;
    let mut found = Vec::new();
    let mut rule = |at: &dyn ToTokens, why, error| {
        found.push(Unfit {
            at: at.to_token_stream(),
            why,
            error,
        });
    };
    if let Some(a) = &item.sig.asyncness {
        rule(
            a,
            "an `async fn` runs its chunks as futures on the caller's executor",
            "an `async fn` runs its chunks as futures on the caller's executor, which cannot cross to worker processes or ranks: use `backend = \"threads\"` (at most `workers` chunks in flight) or make it a plain `fn`",
        );
    }
    if let Some(r) = item.sig.receiver() {
        rule(
            r,
            "a method's receiver would have to be sent to every worker (make it an associated function taking what it needs)",
            "on `backend = \"{backend}\"` the receiver would have to be sent to every worker: make it a free function taking what it needs, or use `backend = \"threads\"`",
        );
    }
    if let syn::ReturnType::Type(_, ty) = &item.sig.output
        && (crate::signature::mentions_impl(quote!(#ty)) || matches!(**ty, Type::Never(_)))
    {
        rule(
            ty,
            "its result type cannot be named (`impl Trait` or `!`)",
            "on `backend = \"{backend}\"` the result is sent back from the worker, so it needs a concrete type that implements serde's traits, not `impl Trait` or `!`",
        );
    }
    for p in &sig.params {
        params_rules(&p.arg.ty, &p.role, &mut rule);
    }
    found
}

/// The rules of one parameter of type `ty`, as the signature uses it (`role`).
fn params_rules(
    ty: &Type,
    role: &Role<'_>,
    rule: &mut impl FnMut(&dyn ToTokens, &'static str, &'static str),
) {
    if crate::signature::mentions_impl(quote!(#ty)) {
        rule(
            ty,
            "a parameter is `impl Trait`",
            "on `backend = \"{backend}\"` this parameter is decoded in the worker, so it needs a concrete type that implements serde's traits, not `impl Trait`",
        );
    }
    if let Some(inner) = borrowed_inside(ty) {
        rule(
            inner,
            "a parameter holds references, which a worker cannot decode",
            "on `backend = \"{backend}\"` this is decoded in the worker into values it owns, so it cannot hold references: write `String` for `&str`, `Vec<T>` for `&[T]`, `T` for `&T` inside it (e.g. `&[String]` instead of `&[&str]`)",
        );
    }
    match role {
        // A `&mut` shared parameter is an error on every backend (see `valid`).
        Role::Cut(CutKind::MutSlice) => rule(
            ty,
            "a `&mut` parameter's writes would be lost in another process",
            "on `backend = \"{backend}\"` each chunk is a copy in another process, so writes through `&mut [T]` would be lost: return the new values (`reduce = \"concat\"`) or use `backend = \"threads\"`",
        ),
        Role::Cut(CutKind::Custom) => rule(
            match ty {
                Type::Reference(r) => &*r.elem,
                other => other,
            },
            "its cut parameter is not a slice, text or `Vec`",
            "on `backend = \"{backend}\"` write the cut parameter as `&[T]`, `&str`, `&String`, `Vec<T>` or `&Vec<T>`",
        ),
        Role::Cut(CutKind::Vec | CutKind::VecRef) if vec_elem(ty).is_none() => rule(
            ty,
            "its cut `Vec`'s element type is not written",
            "on `backend = \"{backend}\"` the cut `Vec`'s element type is sent to the workers: write it (`Vec<T>`)",
        ),
        Role::Shared if unsized_referent(ty) => rule(
            ty,
            "a parameter is a reference to a type a worker cannot own",
            "on `backend = \"{backend}\"` this parameter is decoded in the worker into a value it owns, and it has no owned form there: write a type that has one and implements serde's traits (`&PathBuf` for `&Path`, `&OsString` for `&OsStr`)",
        ),
        _ => {}
    }
}

/// A reference to a type with no owned serde form a worker could decode (`&dyn Trait`, `&Path`).
fn unsized_referent(ty: &Type) -> bool {
    let Type::Reference(r) = ty else { return false };
    match &*r.elem {
        Type::TraitObject(_) => true,
        Type::Slice(_) => false,
        Type::Path(p) => p
            .path
            .segments
            .last()
            .is_some_and(|s| ["Path", "OsStr", "CStr"].iter().any(|n| s.ident == n)),
        _ => false,
    }
}

/// A reference inside a parameter's type, below the one reference a parameter may be passed by
/// (`&str` in `&[&str]`, in `Vec<&str>`): what a worker cannot decode into owned values.
fn borrowed_inside(ty: &Type) -> Option<&Type> {
    fn find(ty: &Type) -> Option<&Type> {
        match ty {
            Type::Reference(_) => Some(ty),
            Type::Slice(s) => find(&s.elem),
            Type::Array(a) => find(&a.elem),
            Type::Tuple(t) => t.elems.iter().find_map(find),
            Type::Paren(p) => find(&p.elem),
            Type::Group(g) => find(&g.elem),
            Type::Path(p) => p.path.segments.iter().find_map(|s| match &s.arguments {
                syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
                    syn::GenericArgument::Type(t) => find(t),
                    _ => None,
                }),
                _ => None,
            }),
            _ => None,
        }
    }
    match ty {
        Type::Reference(r) => find(&r.elem),
        other => find(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The token each rule points at, and its reason, for the function `source`.
    fn rules(source: &str) -> Vec<(String, &'static str)> {
        let item: syn::ItemFn = syn::parse_str(source).expect("a function");
        let sig = Signature::of(&item, None);
        unfit(&sig)
            .into_iter()
            .map(|u| (u.at.to_string(), u.why))
            .collect()
    }

    #[test]
    fn each_rule_points_at_its_token_and_says_why() {
        let cases: [(&str, &str, &str); 8] = [
            ("async fn f(x: &[u8]) {}", "async", "`async fn`"),
            ("fn f(&self, x: &[u8]) {}", "& self", "receiver"),
            ("fn f(x: &[u8]) -> impl Eq {}", "impl Eq", "result type"),
            ("fn f(x: &[u8], k: impl Eq) {}", "impl Eq", "`impl Trait`"),
            ("fn f(x: &[&str]) {}", "& str", "holds references"),
            ("fn f(x: &mut [u8]) {}", "& mut [u8]", "`&mut`"),
            ("fn f(x: &[u8], p: &Path) {}", "& Path", "cannot own"),
            (
                "fn f(x: &[u8], k: &dyn Fn()) {}",
                "& dyn Fn ()",
                "cannot own",
            ),
        ];
        for (source, at, why) in cases {
            let found = rules(source);
            assert_eq!(found.len(), 1, "{source}: {found:?}");
            assert_eq!(found[0].0, at, "{source}");
            assert!(found[0].1.contains(why), "{source}: {}", found[0].1);
        }
    }

    #[test]
    fn a_function_that_can_cross_breaks_no_rule() {
        for source in [
            "fn f(xs: &[u64], k: &String, n: u32) -> u64 {}",
            "fn f(text: &str, words: Vec<String>) -> Vec<(String, u32)> {}",
            "fn f(xs: Vec<u8>) {}",
        ] {
            assert!(rules(source).is_empty(), "{source}: {:?}", rules(source));
        }
    }

    #[test]
    fn every_error_names_the_backend_or_says_why_none_can_cross() {
        let item: syn::ItemFn =
            syn::parse_str("async fn f(&self, xs: &mut [&str], k: impl Clone) -> impl Clone {}")
                .expect("a function");
        let found = unfit(&Signature::of(&item, None));
        assert_eq!(found.len(), 6, "each rule that applies, not only the first");
        for rule in found {
            let error = rule.error.replace("{backend}", "mpi");
            assert!(
                error.starts_with("on `backend = \"mpi\"`")
                    || error.contains("worker processes or ranks"),
                "{error}"
            );
        }
    }
}
