//! What a decorated function looks like: receiver, parameters, `async`/`const`, return shape.

use proc_macro2::{TokenStream, TokenTree};
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::{FnArg, Ident, ItemFn, Pat, ReturnType, Type};

/// One parameter of the function, `self` included.
pub(crate) struct Param<'a> {
    /// The bound name, if the pattern is a plain name (`x`, `mut x`, `self`).
    pub(crate) name: Option<Ident>,
    /// The whole parameter, for error spans.
    pub(crate) arg: &'a FnArg,
    pub(crate) is_self: bool,
}

/// The shape of the function's return.
pub(crate) enum Output<'a> {
    /// No return type, or `()`.
    Unit,
    /// Anything else.
    Type(&'a Type),
}

/// The facts the expansions need, read once from the function.
pub(crate) struct FnShape<'a> {
    pub(crate) item: &'a ItemFn,
    pub(crate) params: Vec<Param<'a>>,
    pub(crate) output: Output<'a>,
}

impl<'a> FnShape<'a> {
    pub(crate) fn of(item: &'a ItemFn) -> Self {
        let params = item
            .sig
            .inputs
            .iter()
            .map(|arg| match arg {
                FnArg::Receiver(r) => Param {
                    name: Some(Ident::new("self", r.self_token.span)),
                    arg,
                    is_self: true,
                },
                FnArg::Typed(t) => Param {
                    name: match &*t.pat {
                        Pat::Ident(p) if p.subpat.is_none() => Some(p.ident.clone()),
                        _ => None,
                    },
                    arg,
                    is_self: false,
                },
            })
            .collect();
        let output = match &item.sig.output {
            ReturnType::Default => Output::Unit,
            ReturnType::Type(_, ty) => match &**ty {
                Type::Tuple(t) if t.elems.is_empty() => Output::Unit,
                ty => Output::Type(ty),
            },
        };
        FnShape {
            item,
            params,
            output,
        }
    }

    pub(crate) fn name(&self) -> String {
        self.item.sig.ident.unraw().to_string()
    }

    pub(crate) fn is_async(&self) -> bool {
        self.item.sig.asyncness.is_some()
    }

    /// The return type is written `Result<…>` (any path ending in `Result`).
    pub(crate) fn returns_result(&self) -> bool {
        match self.output {
            Output::Type(Type::Path(p)) => p
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "Result" && !s.arguments.is_empty()),
            _ => false,
        }
    }

    /// The return type can be written in a `let` (it has no `impl Trait`).
    fn nameable_output(&self) -> Option<&'a Type> {
        match self.output {
            // `!` cannot be written in a `let` on stable Rust.
            Output::Type(Type::Never(_)) => None,
            Output::Type(ty) if !mentions_impl(ty.to_token_stream()) => Some(ty),
            _ => None,
        }
    }

    /// `E` of a return type written `Result<T, E>` where `T` mentions `impl Trait` and `E` does not.
    fn nameable_error_of_unnameable_result(&self) -> Option<&'a Type> {
        let Output::Type(Type::Path(p)) = self.output else {
            return None;
        };
        let last = p.path.segments.last()?;
        if last.ident != "Result" {
            return None;
        }
        let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
            return None;
        };
        let mut types = args.args.iter().filter_map(|a| match a {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        });
        let (ok, err) = (types.next()?, types.next()?);
        (mentions_impl(ok.to_token_stream()) && !mentions_impl(err.to_token_stream()))
            .then_some(err)
    }

    /// A statement that pins the type of a closure's or async block's `return` to the function's
    /// return type, so that `?` and `return` inside the moved body infer as in the function.
    pub(crate) fn return_type_hint(&self) -> TokenStream {
        // `Result<impl Trait, E>`: the whole type cannot be written, but its error type can,
        // and the choice of how to show an error is made from it.
        let pinned = match (
            self.nameable_error_of_unnameable_result(),
            self.nameable_output(),
        ) {
            (Some(err), _) => quote! {
                let __decor_fake_error: #err = ::core::unreachable!();
                return ::core::result::Result::Err(__decor_fake_error);
            },
            (None, Some(ty)) => quote! {
                let __decor_fake_return: #ty = ::core::unreachable!();
                return __decor_fake_return;
            },
            (None, None) => return TokenStream::new(),
        };
        quote! {
            #[allow(
                unreachable_code,
                clippy::diverging_sub_expression,
                clippy::needless_return,
                clippy::unreachable
            )]
            if false {
                #pinned
            }
        }
    }
}

/// Whether `impl Trait` appears anywhere in these tokens.
pub(crate) fn mentions_impl(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == "impl",
        TokenTree::Group(g) => mentions_impl(g.stream()),
        _ => false,
    })
}

/// Reads the item an attribute is on; anything but a function with a body is an error.
pub(crate) fn parse_fn(attr: &str, item: TokenStream) -> syn::Result<ItemFn> {
    syn::parse2::<ItemFn>(item.clone()).map_err(|_| {
        syn::Error::new_spanned(
            item,
            format_args!(
                "`#[{attr}]` goes on a function with a body (a free function, a method or an associated function)"
            ),
        )
    })
}

/// The statements of a body, to splice into the generated one: a block written as the tail of
/// another would trip `unused_braces` in the user's crate.
pub(crate) fn statements(block: &syn::Block) -> TokenStream {
    // Items of a block (a `use` above all) are seen from anywhere in it: a body that declares
    // any keeps its own braces, so that what generated code names before it (the return type)
    // means what it means outside the body.
    if block.stmts.iter().any(|s| matches!(s, syn::Stmt::Item(_))) {
        return quote!(#block);
    }
    let stmts = &block.stmts;
    quote!(#(#stmts)*)
}

/// Puts `body` (a block) in place of the function's body, keeping the original braces: their
/// span is the user's, so lints about the function (`dead_code`, and `#[expect]` of it) still
/// find it.
pub(crate) fn replace_body(item: &mut ItemFn, body: TokenStream) -> syn::Result<()> {
    let mut block: syn::Block = syn::parse2(body)?;
    block.brace_token = item.block.brace_token;
    *item.block = block;
    Ok(())
}
