//! A progress bar for long `#[parallel_chunks]` calls: chunks done of the total, the rate and the
//! time left, drawn on stderr once a call has run for a second, and only when stderr is a
//! terminal. [`Trace::init`](crate::trace::Trace::init) adds it; [`Progress`] is the layer, for a
//! subscriber of your own.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::Subscriber;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// A `tracing_subscriber` layer that draws a progress bar on stderr for every `parallel_chunks`
/// call that lasts longer than [`after`](Self::after) (one second by default).
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt;
/// let subscriber = tracing_subscriber::registry().with(decor::progress::Progress::new());
/// tracing::subscriber::with_default(subscriber, || {
///     // calls here show a bar when stderr is a terminal and they take a while
/// });
/// ```
#[derive(Debug, Clone)]
pub struct Progress {
    after: Duration,
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress {
    /// A bar after one second.
    pub fn new() -> Self {
        Progress {
            after: Duration::from_secs(1),
        }
    }

    /// A bar for calls that have run this long.
    pub fn after(mut self, after: Duration) -> Self {
        self.after = after;
        self
    }
}

/// One call's progress, kept in its span.
struct CallProgress {
    function: String,
    start: Instant,
    total: AtomicU64,
    done: AtomicU64,
    bar: Mutex<Option<ProgressBar>>,
}

impl CallProgress {
    fn chunk_done(&self, after: Duration) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let mut bar = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        match &*bar {
            Some(b) => b.set_position(done),
            None if self.start.elapsed() >= after => {
                let b = ProgressBar::with_draw_target(
                    Some(self.total.load(Ordering::Relaxed)),
                    ProgressDrawTarget::stderr(),
                );
                b.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {pos}/{len} chunks, {per_sec}, {eta} left",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b.set_message(self.function.clone());
                b.set_position(done);
                b.enable_steady_tick(Duration::from_millis(200));
                *bar = Some(b);
            }
            None => {}
        }
    }

    fn finish(&self) {
        if let Some(b) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

/// Reads `function` and `chunks` from the call span's fields.
struct CallFields<'a>(&'a mut Option<String>, &'a mut Option<u64>);

impl Visit for CallFields<'_> {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "chunks" {
            *self.1 = Some(value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "function" {
            *self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

impl<S> Layer<S> for Progress
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != "parallel_chunks" {
            return;
        }
        let (mut function, mut chunks) = (None, None);
        attrs.record(&mut CallFields(&mut function, &mut chunks));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(CallProgress {
                function: function.unwrap_or_default(),
                start: Instant::now(),
                total: AtomicU64::new(chunks.unwrap_or(0)),
                done: AtomicU64::new(0),
                bar: Mutex::new(None),
            });
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if span.name() != "parallel_chunks" {
            return;
        }
        let (mut function, mut chunks) = (None, None);
        values.record(&mut CallFields(&mut function, &mut chunks));
        if let (Some(n), Some(p)) = (chunks, span.extensions().get::<CallProgress>()) {
            p.total.store(n, Ordering::Relaxed);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        match span.name() {
            "chunk" => {
                if let Some(call) = span.parent()
                    && let Some(p) = call.extensions().get::<CallProgress>()
                {
                    p.chunk_done(self.after);
                }
            }
            "parallel_chunks" => {
                if let Some(p) = span.extensions().get::<CallProgress>() {
                    p.finish();
                }
            }
            _ => {}
        }
    }
}
