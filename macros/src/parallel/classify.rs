//! The one reading of a `#[parallel_chunks]` function's signature that every check and every
//! backend's generation uses: which parameter is cut and how it is written, which parameters are
//! shared by reference and which are owned, and what the function returns.

use syn::ext::IdentExt;
use syn::{FnArg, Ident, ItemFn, Pat, PatType, Type};

use crate::signature::{FnShape, Output};

/// How the cut parameter is written.
pub(crate) enum CutKind<'a> {
    /// `&[T]`, with `T`.
    Slice(&'a Type),
    /// `&mut [T]`.
    MutSlice,
    /// `&str`.
    Str,
    /// `&String`: cut like a `&str` on threads, not sent to processes as written.
    StringRef,
    /// `&Vec<T>`: cut like a `&[T]` on threads, not sent to processes as written.
    VecRef,
    /// Any other type, named by `split = …`: the user's own `decor::chunks::Chunkable`.
    Custom,
    /// `Vec<T>`.
    Vec,
    /// `&MappedFile`: its chunks are views of the file.
    File,
}

impl<'a> CutKind<'a> {
    /// How `ty` can be cut, if it can.
    fn of(ty: &'a Type) -> Option<Self> {
        match ty {
            Type::Reference(r) => match &*r.elem {
                Type::Slice(_) if r.mutability.is_some() => Some(CutKind::MutSlice),
                Type::Slice(s) => Some(CutKind::Slice(&s.elem)),
                Type::Path(p) if r.mutability.is_none() => {
                    let last = p.path.segments.last()?;
                    if last.ident == "str" {
                        Some(CutKind::Str)
                    } else if last.ident == "String" {
                        Some(CutKind::StringRef)
                    } else if last.ident == "Vec" {
                        Some(CutKind::VecRef)
                    } else if last.ident == "MappedFile" {
                        Some(CutKind::File)
                    } else {
                        None
                    }
                }
                _ => None,
            },
            Type::Path(p) => p
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "Vec")
                .then_some(CutKind::Vec),
            Type::Group(g) => Self::of(&g.elem),
            Type::Paren(p) => Self::of(&p.elem),
            _ => None,
        }
    }
}

/// What a parameter is to the chunks.
pub(crate) enum Role<'a> {
    /// The parameter that is cut.
    Cut(CutKind<'a>),
    /// A `&T` handed to every chunk.
    Shared,
    /// A `&mut T` that is not cut: no chunk may have it.
    MutRef,
    /// A value cloned for every chunk.
    Owned,
}

/// One typed parameter (the receiver aside).
pub(crate) struct Param<'a> {
    pub(crate) arg: &'a PatType,
    /// The bound name, when the pattern is a plain name.
    pub(crate) name: Option<&'a Ident>,
    pub(crate) role: Role<'a>,
}

/// Which parameter is cut, or why none is.
pub(crate) enum CutChoice<'a> {
    /// The parameter at this index of [`Signature::params`].
    Found(usize),
    /// `split = name` names no parameter.
    NoSuchParam(&'a Ident),
    /// No `split`, and no parameter of a type that can be cut.
    NoneCuttable,
}

/// The function as `#[parallel_chunks]` reads it.
pub(crate) struct Signature<'a> {
    pub(crate) item: &'a ItemFn,
    pub(crate) shape: FnShape<'a>,
    pub(crate) params: Vec<Param<'a>>,
    pub(crate) cut: CutChoice<'a>,
    /// The return type is written `Result<T, E>`.
    pub(crate) is_result: bool,
    /// … with `T` written `()`.
    pub(crate) ok_is_unit: bool,
    /// The cut parameter is bytes (`&[u8]`, `Vec<u8>`, `&Vec<u8>`) cut at lines or whitespace.
    pub(crate) bytes_cut_at: bool,
}

impl<'a> Signature<'a> {
    /// Reads `item`, cutting the parameter `split` names (any type: the trait `Chunkable` is
    /// checked by the compiler), else the first of a type known to be cuttable.
    pub(crate) fn of(item: &'a ItemFn, split: Option<&'a Ident>) -> Self {
        let typed: Vec<(&PatType, Option<&Ident>)> = item
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
        let cut = match split {
            Some(name) => match typed
                .iter()
                .position(|(_, n)| n.is_some_and(|n| n.unraw() == name.unraw()))
            {
                Some(i) => CutChoice::Found(i),
                None => CutChoice::NoSuchParam(name),
            },
            None => typed
                .iter()
                .position(|(t, _)| CutKind::of(&t.ty).is_some())
                .map_or(CutChoice::NoneCuttable, CutChoice::Found),
        };
        let params = typed
            .into_iter()
            .enumerate()
            .map(|(i, (arg, name))| {
                let role = match (&cut, &*arg.ty) {
                    (CutChoice::Found(c), ty) if *c == i => {
                        Role::Cut(CutKind::of(ty).unwrap_or(CutKind::Custom))
                    }
                    (_, Type::Reference(r)) if r.mutability.is_some() => Role::MutRef,
                    (_, Type::Reference(_)) => Role::Shared,
                    _ => Role::Owned,
                };
                Param { arg, name, role }
            })
            .collect();
        let shape = FnShape::of(item);
        let (is_result, ok_is_unit) = result_shape(&shape);
        Signature {
            item,
            shape,
            params,
            cut,
            is_result,
            ok_is_unit,
            bytes_cut_at: false,
        }
    }

    /// Whether the cut parameter is bytes: `&[u8]`, `Vec<u8>` or `&Vec<u8>`.
    pub(crate) fn cuts_bytes(&self) -> bool {
        let CutChoice::Found(i) = self.cut else {
            return false;
        };
        let p = &self.params[i];
        let is_u8 = |t: &Type| matches!(t, Type::Path(p) if p.path.is_ident("u8"));
        match &p.role {
            Role::Cut(CutKind::Slice(elem)) => is_u8(elem),
            Role::Cut(CutKind::Vec | CutKind::VecRef) => vec_elem(&p.arg.ty).is_some_and(is_u8),
            _ => false,
        }
    }

    /// The cut parameter; only after validation, which makes sure there is one.
    pub(crate) fn cut_param(&self) -> &Param<'a> {
        match self.cut {
            CutChoice::Found(i) => &self.params[i],
            _ => unreachable!("validated: a parameter is cut"),
        }
    }

    /// The parameters handed to every chunk, in order, with their (validated) names.
    pub(crate) fn others(&self) -> impl Iterator<Item = (&'a Ident, &Param<'a>)> {
        self.params
            .iter()
            .filter(|p| !matches!(p.role, Role::Cut(_)))
            .map(|p| (p.name.expect("validated: named"), p))
    }

    /// The name of a parameter; only after validation.
    pub(crate) fn name(p: &Param<'a>) -> &'a Ident {
        p.name.expect("validated: every parameter is named")
    }

    /// The function returns nothing to combine: `()`, or `Result<(), E>`.
    pub(crate) fn returns_nothing(&self) -> bool {
        matches!(self.shape.output, Output::Unit) || (self.is_result && self.ok_is_unit)
    }
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

/// `T` of `Vec<T>` or `&Vec<T>`, when written.
pub(crate) fn vec_elem(ty: &Type) -> Option<&Type> {
    let ty = match ty {
        Type::Reference(r) => &*r.elem,
        other => other,
    };
    let Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    match &last.arguments {
        syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        }),
        _ => None,
    }
}
