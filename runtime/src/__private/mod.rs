//! What generated code names: `::decor::__private::…`. Not a public API; may change at any time.
//!
//! One module per attribute's needs; everything is re-exported by name, so that this page lists
//! what the expansions use.

mod logged;
mod parallel;
pub mod remote;

pub use core::time::Duration;
pub use tracing_core::Level;

pub use crate::call::Call;
pub use crate::logged::{LoggedCall, LoggedSite, Recorded};
pub use crate::timed::TimedSite;
pub use logged::{
    RecordedArg, RecordedRet, ReportedErr, Shown, Wrap, arg, body, err, maybe_debug, outcome,
    record, recorded, ret, show_error,
};
pub use parallel::{
    ConvertChunkError, ErrorOf, OwnedParam, PanicOnChunkError, RetryIf, SharedParam,
    check_environment, or_convert, or_panic, owned_param, resolve, retry_if, shared_param,
};
