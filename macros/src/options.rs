//! One parser for the `key = value` syntax of every attribute, and the typed reading of values.
//!
//! An attribute's arguments are a comma-separated list of `key`, `key = value` or
//! `key(name, …)`. Parsing keeps every token's span so that each later error points at the
//! offending token. Errors are collected, not returned at the first.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, Lit, LitStr, Token};

/// One `key`, `key = value` or `key(a, b)` item.
pub(crate) struct RawOption {
    pub(crate) key: Ident,
    pub(crate) value: RawValue,
}

pub(crate) enum RawValue {
    /// `key` alone.
    Flag,
    /// `key = "text"`, `key = 8`, `key = true`.
    Lit(Lit),
    /// `key = some::path`.
    Path(syn::Path),
    /// `key(a, b)`.
    List(Vec<Ident>),
}

impl RawOption {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let key = input.call(Ident::parse_any)?;
        let value = if input.peek(Token![=]) {
            input.parse::<Token![=]>()?;
            if input.peek(Lit) {
                RawValue::Lit(input.parse()?)
            } else if input.peek(Ident::peek_any) || input.peek(Token![::]) {
                RawValue::Path(input.call(syn::Path::parse_mod_style)?)
            } else {
                return Err(input.error(format!(
                    "expected a value after `{key} =`: a string, a number, `true`/`false` or a path"
                )));
            }
        } else if input.peek(syn::token::Paren) {
            let content;
            syn::parenthesized!(content in input);
            let names =
                Punctuated::<Ident, Token![,]>::parse_terminated_with(&content, Ident::parse_any)?;
            RawValue::List(names.into_iter().collect())
        } else {
            RawValue::Flag
        };
        Ok(RawOption { key, value })
    }

    fn value_tokens(&self) -> TokenStream {
        match &self.value {
            RawValue::Flag => self.key.to_token_stream(),
            RawValue::Lit(l) => l.to_token_stream(),
            RawValue::Path(p) => p.to_token_stream(),
            RawValue::List(v) => match v.first() {
                Some(first) => first.to_token_stream(),
                None => self.key.to_token_stream(),
            },
        }
    }

    /// An error at this option's value.
    pub(crate) fn error(&self, msg: impl std::fmt::Display) -> syn::Error {
        syn::Error::new_spanned(self.value_tokens(), msg)
    }

    /// `key = "…"`.
    pub(crate) fn str(&self, example: &str) -> syn::Result<LitStr> {
        match &self.value {
            RawValue::Lit(Lit::Str(s)) => Ok(s.clone()),
            _ => Err(self.error(format_args!(
                "`{}` takes a string, e.g. `{} = {example}`",
                self.key, self.key
            ))),
        }
    }

    /// `key = N`, N at least `min`.
    pub(crate) fn int(&self, min: u64, example: &str) -> syn::Result<u64> {
        let bad = || {
            self.error(format_args!(
                "`{}` takes a whole number of at least {min}, e.g. `{} = {example}`",
                self.key, self.key
            ))
        };
        match &self.value {
            RawValue::Lit(Lit::Int(i)) => match i.base10_parse::<u64>() {
                Ok(n) if n >= min => Ok(n),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        }
    }

    /// `key = true | false`.
    pub(crate) fn bool(&self) -> syn::Result<bool> {
        match &self.value {
            RawValue::Lit(Lit::Bool(b)) => Ok(b.value),
            _ => Err(self.error(format_args!(
                "`{}` takes `true` or `false`, e.g. `{} = false`",
                self.key, self.key
            ))),
        }
    }

    /// `key(a, b)`.
    pub(crate) fn list(&self) -> syn::Result<&[Ident]> {
        match &self.value {
            RawValue::List(v) => Ok(v),
            _ => Err(self.error(format_args!(
                "`{}` takes a list of parameter names, e.g. `{}(password, token)`",
                self.key, self.key
            ))),
        }
    }

    /// `key` alone.
    pub(crate) fn flag(&self) -> syn::Result<()> {
        match &self.value {
            RawValue::Flag => Ok(()),
            _ => Err(self.error(format_args!(
                "`{}` takes no value: write it alone, as `{}`",
                self.key, self.key
            ))),
        }
    }
}

/// What every attribute does first, before its own checks.
pub(crate) enum Begin {
    /// Expand now: the function, the options, the errors found so far.
    Expand(Box<syn::ItemFn>, Vec<RawOption>, Errors),
    /// Emit these tokens instead: the attribute waits for inner decor attributes.
    Wait(TokenStream),
}

/// Reads the function the attribute `name` is on, lets inner decor attributes expand first (see
/// [`crate::stacking`]), and parses the options, keeping their errors for later.
pub(crate) fn begin(name: &str, attr: TokenStream, item: TokenStream) -> syn::Result<Begin> {
    let item = crate::signature::parse_fn(name, item)?;
    let attr = match crate::stacking::turn(name, attr, &item) {
        crate::stacking::Turn::Now(attr) => attr,
        crate::stacking::Turn::Later(tokens) => return Ok(Begin::Wait(tokens)),
    };
    let mut errors = Errors::default();
    let opts = errors.keep(parse(attr)).unwrap_or_default();
    Ok(Begin::Expand(Box::new(item), opts, errors))
}

/// Parses an attribute's arguments; a repeated key is an error at its second use.
pub(crate) fn parse(args: TokenStream) -> syn::Result<Vec<RawOption>> {
    let parser = Punctuated::<RawOption, Token![,]>::parse_terminated_with;
    let list = (|input: ParseStream<'_>| parser(input, RawOption::parse)).parse2(args)?;
    let mut seen: Vec<String> = Vec::new();
    let mut errors = Errors::default();
    let mut out = Vec::new();
    for opt in list {
        let key = opt.key.unraw().to_string();
        if seen.contains(&key) {
            errors.push(syn::Error::new_spanned(
                &opt.key,
                format_args!("`{key}` is given twice; keep one"),
            ));
            continue;
        }
        seen.push(key);
        out.push(opt);
    }
    errors.finish()?;
    Ok(out)
}

/// The error for a key the attribute does not know, listing the ones it does.
pub(crate) fn unknown(opt: &RawOption, attr: &str, accepted: &[&str]) -> syn::Error {
    let list = accepted
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    syn::Error::new_spanned(
        &opt.key,
        format_args!(
            "unknown option `{}` for `#[{attr}]`; accepted: {list}",
            opt.key
        ),
    )
}

/// Errors gathered while checking, reported together.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, e: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    /// Keeps the value of `r`, or records its error.
    pub(crate) fn keep<T>(&mut self, r: syn::Result<T>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// A `tracing` level, as written in `level = "…"`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub(crate) fn parse(opt: &RawOption) -> syn::Result<Level> {
        let s = opt.str("\"debug\"")?;
        match s.value().to_ascii_lowercase().as_str() {
            "trace" => Ok(Level::Trace),
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" => Ok(Level::Warn),
            "error" => Ok(Level::Error),
            other => Err(syn::Error::new_spanned(
                &s,
                format_args!(
                    "unknown level \"{other}\"; accepted: \"trace\", \"debug\", \"info\", \"warn\", \"error\""
                ),
            )),
        }
    }
}

impl ToTokens for Level {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        let name = Ident::new(
            match self {
                Level::Trace => "TRACE",
                Level::Debug => "DEBUG",
                Level::Info => "INFO",
                Level::Warn => "WARN",
                Level::Error => "ERROR",
            },
            Span::call_site(),
        );
        tokens.extend(quote!(::decor::__private::Level::#name));
    }
}

/// A duration written `"<number><ns|us|ms|s>"`, in nanoseconds.
pub(crate) fn duration(opt: &RawOption) -> syn::Result<u64> {
    let s = opt.str("\"250ms\"")?;
    let text = s.value();
    duration_ns(&text).map_err(|why| {
        syn::Error::new_spanned(
            &s,
            format_args!(
                "invalid duration \"{text}\": {why}; write a number and a unit (ns, us, ms or s), e.g. \"250ms\" or \"1.5s\""
            ),
        )
    })
}

/// A duration written as a number and a unit (`"250ms"`, `"1.5s"`), in nanoseconds, or why not.
pub(crate) fn duration_ns(text: &str) -> Result<u64, &'static str> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '_'))
        .ok_or("no unit")?;
    let (num, unit) = t.split_at(split);
    let unit_ns: f64 = match unit.trim() {
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return Err("unknown unit"),
    };
    let num: f64 = num.replace('_', "").parse().map_err(|_| "no number")?;
    let ns = num * unit_ns;
    if !ns.is_finite() || ns >= u64::MAX as f64 {
        return Err("too long");
    }
    Ok(ns.round() as u64)
}
