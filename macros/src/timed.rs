//! `#[timed]`: options, checks and expansion.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use crate::options::{self, Begin, Errors, Level, RawOption};
use crate::signature::FnShape;

const ACCEPTED: &[&str] = &["level", "name", "warn_over"];

/// The options of `#[timed(…)]`, checked.
struct TimedArgs {
    level: Level,
    name: Option<String>,
    warn_over_ns: Option<u64>,
}

impl TimedArgs {
    fn from_options(opts: &[RawOption], errors: &mut Errors) -> TimedArgs {
        let mut args = TimedArgs {
            level: Level::Info,
            name: None,
            warn_over_ns: None,
        };
        for opt in opts {
            match opt.key.to_string().as_str() {
                "level" => {
                    if let Some(l) = errors.keep(Level::parse(opt)) {
                        args.level = l;
                    }
                }
                "name" => args.name = errors.keep(opt.str("\"parse\"")).map(|s| s.value()),
                "warn_over" => args.warn_over_ns = errors.keep(options::duration(opt)),
                _ => errors.push(options::unknown(opt, "timed", ACCEPTED)),
            }
        }
        args
    }
}

pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let (mut item, opts, mut errors) = match options::begin("timed", attr, item)? {
        Begin::Expand(item, opts, errors) => (*item, opts, errors),
        Begin::Wait(tokens) => return Ok(tokens),
    };
    let args = TimedArgs::from_options(&opts, &mut errors);
    if let Some(c) = &item.sig.constness {
        errors.push(syn::Error::new_spanned(
            c,
            "`#[timed]` cannot go on a `const fn`: it reads the clock, which const evaluation cannot do; remove `const` or the attribute",
        ));
    }
    errors.finish()?;

    let shape = FnShape::of(&item);
    let short = args.name.unwrap_or_else(|| shape.name());
    let level = args.level;
    let warn = args
        .warn_over_ns
        .map(|ns| quote!(.warn_over(::decor::__private::Duration::from_nanos(#ns))));
    let line = quote_spanned!(item.sig.ident.span()=> ::core::line!());
    let site = quote! {
        static __DECOR_TIMED: ::decor::__private::TimedSite = ::decor::__private::TimedSite::new(
            #short,
            ::core::concat!(::core::module_path!(), "::", #short),
        )
        .at(::core::module_path!(), ::core::file!(), #line)
        .level(#level)
        #warn;
    };
    let block = crate::signature::statements(&item.block);
    let hint = shape.return_type_hint();
    let ok_of = |ret: TokenStream| {
        quote! {{
            use ::decor::__private::outcome::{OutcomeOfResult as _, OutcomeUnknown as _};
            (&&::decor::__private::Wrap(#ret)).__decor_ok()
        }}
    };
    // A `Result` is judged from the value the body gives, which `?` and `return` only hand to a
    // closure; `#[track_caller]` cannot reach through one, so it keeps the plain guard.
    let track_caller = item.attrs.iter().any(|a| a.path().is_ident("track_caller"));
    let body = if shape.is_async() {
        let judged = shape.returns_result().then(|| {
            let ok = ok_of(quote!(__decor_ret));
            quote!(.judged_by(|__decor_ret| #ok))
        });
        quote!({
            #site
            __DECOR_TIMED.future(async move { #hint #block }) #judged .await
        })
    } else if shape.returns_result() && !track_caller {
        let ok = ok_of(quote!(&__decor_ret));
        quote!({
            #site
            let mut __decor_timer = __DECOR_TIMED.start();
            #[allow(clippy::redundant_closure_call)]
            let __decor_ret = (move || { #hint #block })();
            __decor_timer.set_ok(#ok);
            __decor_ret
        })
    } else {
        quote!({
            #site
            let __decor_timer = __DECOR_TIMED.start();
            #block
        })
    };
    crate::signature::replace_body(&mut item, body)?;
    Ok(quote!(#item))
}
