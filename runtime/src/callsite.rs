//! Callsites built at run time.
//!
//! `tracing` normally gets its callsites from `static`s that its macros put in the user's code. An
//! attribute of ours would have to expand the whole `event!` machinery into every decorated
//! function for that; instead the generated code holds one small `static` site (names, level,
//! location), and the runtime builds the `tracing` callsites for it on the first call, leaks them
//! (a few hundred bytes, once per decorated function) and registers them like any macro callsite,
//! so filters, `RUST_LOG` directives and interest caching behave exactly as for `tracing`'s own
//! macros.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing_core::callsite::Callsite;
use tracing_core::field::{FieldSet, ValueSet};
use tracing_core::metadata::Kind;
use tracing_core::subscriber::Interest;
use tracing_core::{Level, Metadata};

/// Where a decorated function was written; the same for every callsite of one site.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Location {
    pub(crate) target: &'static str,
    pub(crate) file: &'static str,
    pub(crate) line: u32,
}

impl Location {
    /// Where a site is until its builder's `at` says: in `decor`, no file.
    pub(crate) const UNKNOWN: Location = Location {
        target: "decor",
        file: "",
        line: 0,
    };
}

/// The two builder steps every site has, written once: `at` (where the function is) and
/// `level`, on a site type with fields `loc` and `level`; the docs say what each sets there.
macro_rules! site_place {
    ($site:ty, target: $target:literal, level: $level:literal) => {
        impl $site {
            #[doc = concat!("Where the function is: ", $target, " (its module path), file and line.")]
            pub const fn at(mut self, target: &'static str, file: &'static str, line: u32) -> Self {
                self.loc = $crate::callsite::Location { target, file, line };
                self
            }

            #[doc = concat!("The level of ", $level, ".")]
            pub const fn level(mut self, level: ::tracing_core::Level) -> Self {
                self.level = level;
                self
            }
        }
    };
}
pub(crate) use site_place;

const INTEREST_UNKNOWN: u8 = 0;
const INTEREST_NEVER: u8 = 1;
const INTEREST_SOMETIMES: u8 = 2;
const INTEREST_ALWAYS: u8 = 3;

/// A callsite whose metadata is made once at run time and then lives for the whole process.
pub(crate) struct DynCallsite {
    interest: AtomicU8,
    meta: OnceLock<Metadata<'static>>,
}

impl DynCallsite {
    /// Builds, leaks and registers a callsite.
    pub(crate) fn leak(
        name: &'static str,
        loc: Location,
        level: Level,
        fields: &'static [&'static str],
        kind: Kind,
    ) -> &'static DynCallsite {
        let cs: &'static DynCallsite = Box::leak(Box::new(DynCallsite {
            interest: AtomicU8::new(INTEREST_UNKNOWN),
            meta: OnceLock::new(),
        }));
        let fieldset = FieldSet::new(fields, tracing_core::identify_callsite!(cs));
        let meta = Metadata::new(
            name,
            loc.target,
            level,
            Some(loc.file),
            Some(loc.line),
            Some(loc.target),
            fieldset,
            kind,
        );
        if cs.meta.set(meta).is_err() {
            unreachable!("a fresh callsite has no metadata yet");
        }
        tracing_core::callsite::register(cs);
        cs
    }

    pub(crate) fn meta(&'static self) -> &'static Metadata<'static> {
        self.meta
            .get()
            .expect("metadata is set before the callsite is shared")
    }

    /// Whether the current subscriber wants this callsite, with the same fast paths as
    /// `tracing`'s macros: the compile-time ceiling (`tracing`'s `max_level_*` features), the
    /// global maximum level, then the cached interest.
    #[inline]
    pub(crate) fn is_enabled(&'static self) -> bool {
        let meta = self.meta();
        if *meta.level() > STATIC_MAX_LEVEL || *meta.level() > LevelFilter::current() {
            return false;
        }
        match self.interest.load(Ordering::Relaxed) {
            INTEREST_NEVER => false,
            INTEREST_ALWAYS => true,
            _ => tracing_core::dispatcher::get_default(|d| d.enabled(meta)),
        }
    }

    pub(crate) fn fields(&'static self) -> &'static FieldSet {
        self.meta().fields()
    }

    /// Dispatches an event from this callsite under `parent` (the current span when `None`).
    pub(crate) fn event(&'static self, parent: Option<&tracing::Span>, values: &ValueSet<'_>) {
        let meta = self.meta();
        match parent.and_then(|s| s.id()) {
            Some(id) => tracing_core::Event::child_of(id, meta, values),
            None => tracing_core::Event::dispatch(meta, values),
        }
    }
}

impl Callsite for DynCallsite {
    fn set_interest(&self, interest: Interest) {
        let v = if interest.is_never() {
            INTEREST_NEVER
        } else if interest.is_always() {
            INTEREST_ALWAYS
        } else {
            INTEREST_SOMETIMES
        };
        self.interest.store(v, Ordering::Relaxed);
    }

    fn metadata(&self) -> &Metadata<'_> {
        self.meta
            .get()
            .expect("metadata is set before registration")
    }
}

/// The name `tracing` gives an event: `event file:line`.
pub(crate) fn event_name(loc: Location) -> &'static str {
    Box::leak(format!("event {}:{}", loc.file, loc.line).into_boxed_str())
}
