//! `#[logged]`: options, checks and expansion.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::Ident;
use syn::ext::IdentExt;
use syn::spanned::Spanned;

use crate::options::{self, Begin, Errors, Level, RawOption};
use crate::signature::{FnShape, Output};

const ACCEPTED: &[&str] = &["level", "name", "skip", "skip_all", "ret", "err", "max_len"];

/// The options of `#[logged(…)]`, checked.
struct LoggedArgs {
    level: Level,
    name: Option<String>,
    skip: Vec<Ident>,
    skip_all: bool,
    /// `Some` when written, with the span of its value.
    ret: Option<(bool, proc_macro2::Span)>,
    err: Option<(bool, proc_macro2::Span)>,
    max_len: Option<u64>,
}

impl LoggedArgs {
    fn from_options(opts: &[RawOption], errors: &mut Errors) -> LoggedArgs {
        let mut args = LoggedArgs {
            level: Level::Info,
            name: None,
            skip: Vec::new(),
            skip_all: false,
            ret: None,
            err: None,
            max_len: None,
        };
        for opt in opts {
            match opt.key.to_string().as_str() {
                "level" => {
                    if let Some(l) = errors.keep(Level::parse(opt)) {
                        args.level = l;
                    }
                }
                "name" => args.name = errors.keep(opt.str("\"login\"")).map(|s| s.value()),
                "skip" => {
                    if let Some(names) = errors.keep(opt.list()) {
                        args.skip = names.to_vec();
                    }
                }
                "skip_all" => args.skip_all = errors.keep(opt.flag()).is_some(),
                "ret" => args.ret = errors.keep(opt.bool()).map(|b| (b, opt.key.span())),
                "err" => args.err = errors.keep(opt.bool()).map(|b| (b, opt.key.span())),
                "max_len" => args.max_len = errors.keep(opt.int(1, "64")),
                _ => errors.push(options::unknown(opt, "logged", ACCEPTED)),
            }
        }
        args
    }
}

/// `#[logged]` on a function: its options checked, the function wrapped in a span that
/// records its arguments and reports its outcome.
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let (mut item, opts, mut errors) = match options::begin("logged", attr, item)? {
        Begin::Expand(item, opts, errors) => (*item, opts, errors),
        Begin::Wait(tokens) => return Ok(tokens),
    };
    let args = LoggedArgs::from_options(&opts, &mut errors);
    let shape = FnShape::of(&item);
    check(&args, &shape, &item, &mut errors);
    errors.finish()?;

    let (fields, values) = recorded_params(&args, &shape);
    let err_on = args.err.map_or(shape.returns_result(), |(b, _)| b);
    let expansion = Expansion {
        site: site(&args, &shape, &item, &fields, err_on),
        values,
        report: report(&args, &shape, err_on),
        err_on,
        level: args.level,
        hint: shape.return_type_hint(),
        block: crate::signature::statements(&item.block),
        // A function that never returns (`-> !`) has no value to report: its body runs in the
        // span and the function diverges after it (`!` cannot be named in a `let` on stable).
        never: matches!(item.sig.output, syn::ReturnType::Type(_, ref ty) if matches!(**ty, syn::Type::Never(_))),
    };
    let body = if shape.is_async() {
        expansion.async_body()
    } else {
        expansion.sync_body()
    };
    crate::signature::replace_body(&mut item, body)?;
    Ok(quote!(#item))
}

/// What the options cannot ask of this function: `const fn`, a `skip` of no parameter, `err`
/// on a function that returns no `Result`.
fn check(args: &LoggedArgs, shape: &FnShape<'_>, item: &syn::ItemFn, errors: &mut Errors) {
    if let Some(c) = &item.sig.constness {
        errors.push(syn::Error::new_spanned(
            c,
            "`#[logged]` cannot go on a `const fn`: it records spans and events, which const evaluation cannot do; remove `const` or the attribute",
        ));
    }
    let names: Vec<String> = shape
        .params
        .iter()
        .filter_map(|p| p.name.as_ref().map(|n| n.unraw().to_string()))
        .collect();
    for s in &args.skip {
        if !names.contains(&s.unraw().to_string()) {
            let list = if names.is_empty() {
                "it has none".to_owned()
            } else {
                format!(
                    "its parameters are {}",
                    names
                        .iter()
                        .map(|n| format!("`{n}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            errors.push(syn::Error::new_spanned(
                s,
                format_args!(
                    "`skip({s})`: `{}` has no parameter `{s}`; {list}",
                    shape.name()
                ),
            ));
        }
    }
    if let (Some((true, span)), Output::Unit) = (args.err, &shape.output) {
        errors.push(syn::Error::new(
            span,
            "`err = true` needs a function that returns a `Result`",
        ));
    }
}

/// The recorded parameters, in order: their field names and the expressions of their values.
fn recorded_params(args: &LoggedArgs, shape: &FnShape<'_>) -> (Vec<String>, Vec<TokenStream>) {
    let mut fields = Vec::new();
    let mut values = Vec::new();
    for p in &shape.params {
        let Some(name) = &p.name else { continue };
        let key = name.unraw().to_string();
        if args.skip_all || args.skip.iter().any(|s| s.unraw() == key) {
            continue;
        }
        fields.push(key);
        values.push(if p.is_self {
            // `self` is recorded when its type is `Debug`, left out otherwise.
            quote! {{
                use ::decor::__private::maybe_debug::{MaybeDebugNo as _, MaybeDebugYes as _};
                (&&::decor::__private::Wrap(&self)).__decor_debug().map(::decor::__private::Recorded::Plain)
            }}
        } else {
            let checked = quote_spanned!(p.arg.span()=> ::decor::__private::arg(&#name));
            previewed(quote!(&#name), checked)
        });
    }
    (fields, values)
}

/// The `static` call site: the span's name and fields, where it was written, its level.
fn site(
    args: &LoggedArgs,
    shape: &FnShape<'_>,
    item: &syn::ItemFn,
    fields: &[String],
    err_on: bool,
) -> TokenStream {
    let span_name = args.name.clone().unwrap_or_else(|| shape.name());
    let level = args.level;
    let max_len = args
        .max_len
        .map(|n| quote!(.max_len(#n as usize)))
        .unwrap_or_default();
    // An error is then reported with the arguments even when the span is filtered out.
    let fallible = err_on.then(|| quote!(.fallible()));
    let line = quote_spanned!(item.sig.ident.span()=> ::core::line!());
    quote! {
        static __DECOR_LOGGED: ::decor::__private::LoggedSite =
            ::decor::__private::LoggedSite::new(#span_name, &[#(#fields),*])
                .at(::core::module_path!(), ::core::file!(), #line)
                .level(#level)
                #max_len
                #fallible;
    }
}

/// The statements that report `__decor_ret` on `__decor_call`: its `Ok` value or its error
/// when `err` is on, its value when `ret` is on, nothing else.
fn report(args: &LoggedArgs, shape: &FnShape<'_>, err_on: bool) -> TokenStream {
    let ret_on = args
        .ret
        .map_or(!matches!(shape.output, Output::Unit), |(b, _)| b);
    let show_ret = |v: TokenStream| {
        let shown = match args.ret {
            Some((true, span)) => quote_spanned!(span=> ::decor::__private::ret(#v)),
            _ => quote! {{
                use ::decor::__private::maybe_debug::{MaybeDebugNo as _, MaybeDebugYes as _};
                (&&::decor::__private::Wrap(#v)).__decor_debug()
            }},
        };
        previewed(v, shown)
    };
    if err_on {
        let ok = if ret_on {
            show_ret(quote!(__decor_ok))
        } else {
            quote!(::core::option::Option::None)
        };
        let shown_err = match args.err {
            Some((true, span)) => quote_spanned!(span=> ::decor::__private::err(__decor_err)),
            _ => quote! {&{
                use ::decor::__private::show_error::{ShowDebug as _, ShowDisplay as _, ShowTypeName as _};
                (&&&::decor::__private::Wrap(__decor_err)).__decor_show()
            }},
        };
        quote! {
            match &__decor_ret {
                ::core::result::Result::Ok(__decor_ok) => __decor_call.returned_recorded(#ok),
                ::core::result::Result::Err(__decor_err) => __decor_call.failed(#shown_err),
            }
        }
    } else if ret_on {
        let v = show_ret(quote!(&__decor_ret));
        quote!(__decor_call.returned_recorded(#v);)
    } else {
        quote!(__decor_call.returned(::core::option::Option::None);)
    }
}

/// The pieces of a `#[logged]` body, made once and put together for a sync or an async fn.
struct Expansion {
    site: TokenStream,
    values: Vec<TokenStream>,
    report: TokenStream,
    err_on: bool,
    level: Level,
    hint: TokenStream,
    block: TokenStream,
    never: bool,
}

impl Expansion {
    /// After the body's value (run by `run`): report it, or diverge for `-> !`.
    fn tail(&self, run: TokenStream) -> TokenStream {
        let report = &self.report;
        if self.never {
            quote! {
                #run;
                ::core::unreachable!()
            }
        } else {
            quote! {
                let __decor_ret = #run;
                #report
                __decor_ret
            }
        }
    }

    /// An async fn: the call entered, the future instrumented and awaited, its value reported.
    fn async_body(&self) -> TokenStream {
        let Expansion {
            site,
            values,
            err_on,
            level,
            hint,
            block,
            ..
        } = self;
        let tail = self.tail(quote!(__decor_call.instrument(async move { #hint #block }).await));
        quote!({
            #site
            let __decor_call = __DECOR_LOGGED.enter_at(#level, #err_on, ::decor::__private::recorded([#(#values),*]));
            #tail
        })
    }

    /// A sync fn. A call that records nothing runs the body with no call to build, report or
    /// drop; the recorded call runs out of line, so the quiet path is a level check and the
    /// body, with no registers to save for the rest. The arguments are read (lazily) before
    /// the body's closure takes them.
    fn sync_body(&self) -> TokenStream {
        let Expansion {
            site,
            values,
            report,
            err_on,
            level,
            hint,
            block,
            never,
        } = self;
        let (recorded, quiet) = if *never {
            let tail = self.tail(quote!(__decor_call.run(__decor_body)));
            let quiet = quote!({
                __DECOR_LOGGED.run_quiet(__decor_body);
                ::core::unreachable!()
            });
            (quote!({ #tail }), quiet)
        } else {
            let recorded = quote! {
                __decor_call.run_recorded(__decor_body, |__decor_call, __decor_ret| {
                    #report
                    __decor_ret
                })
            };
            (recorded, quote!(__DECOR_LOGGED.run_quiet(__decor_body)))
        };
        quote!({
            #site
            let __decor_call = __DECOR_LOGGED.try_enter_at(#level, #err_on, || ::decor::__private::recorded([#(#values),*]));
            let __decor_body = ::decor::__private::body(move || { #hint #block });
            match __decor_call {
                ::core::option::Option::None => #quiet,
                ::core::option::Option::Some(__decor_call) => #recorded,
            }
        })
    }
}

/// `value` (a reference) as an `Option<Recorded>`: by its bounded preview when it is a
/// collection, as a short value when its type bounds its `Debug` form, else by `shown` (an
/// `Option<&dyn Debug>`, which also carries the `Debug` check at the user's tokens).
fn previewed(value: TokenStream, shown: TokenStream) -> TokenStream {
    quote! {{
        use ::decor::__private::record::{RecordOther as _, RecordPreview as _, RecordShort as _};
        match (&&&::decor::__private::Wrap(#value)).__decor_record() {
            ::core::option::Option::None => (#shown).map(::decor::__private::Recorded::Plain),
            __decor_recorded => __decor_recorded,
        }
    }}
}
