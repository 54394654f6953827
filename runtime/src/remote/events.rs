//! Tracing events of chunk bodies that run in workers: forwarded by the worker's subscriber
//! ([`Forwarder`]), re-emitted in the parent ([`relay`]).
//!
//! In the parent, each distinct (level, target, field names) gets one callsite, made and registered once, with a
//! `worker_pid` field added, so filters and subscribers treat a worker's events like the parent's
//! own. They are emitted on the thread that waits for the chunk, inside the chunk's span.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};
use tracing_core::field::{Value, display};
use tracing_core::metadata::Kind;

use super::protocol::{FieldValue, Message, level_from_wire, level_to_wire};
use crate::callsite::{DynCallsite, Location};

type Key = (u8, String, Vec<String>);

fn callsite(level: u8, target: &str, names: &[&str]) -> &'static DynCallsite {
    static SITES: Mutex<Option<HashMap<Key, &'static DynCallsite>>> = Mutex::new(None);
    let key: Key = (
        level,
        target.to_owned(),
        names.iter().map(|s| (*s).to_owned()).collect(),
    );
    let mut sites = SITES.lock().unwrap_or_else(|e| e.into_inner());
    let sites = sites.get_or_insert_with(HashMap::new);
    if let Some(cs) = sites.get(&key) {
        return cs;
    }
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let mut fields: Vec<&'static str> = names.iter().map(|n| leak(n)).collect();
    fields.push("worker_pid");
    let fields: &'static [&'static str] = Box::leak(fields.into_boxed_slice());
    let level = level_from_wire(level);
    let target = leak(target);
    let loc = Location {
        target,
        file: "<worker process>",
        line: 0,
    };
    let cs = DynCallsite::leak(
        "event from a worker process",
        loc,
        level,
        fields,
        Kind::EVENT,
    );
    sites.insert(key, cs);
    cs
}

/// Emits one event a worker sent, in the current span.
pub(crate) fn relay(level: u8, target: &str, fields: &[(String, FieldValue)], pid: u32) {
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    let cs = callsite(level, target, &names);
    if !cs.is_enabled() {
        return;
    }
    let shown: Vec<_> = fields
        .iter()
        .map(|(_, v)| match v {
            FieldValue::Shown(s) => Some(display(s.as_str())),
            _ => None,
        })
        .collect();
    let mut values: Vec<Option<&dyn Value>> = fields
        .iter()
        .zip(&shown)
        .map(|((_, v), shown)| -> Option<&dyn Value> {
            match (v, shown) {
                (_, Some(s)) => Some(s),
                (FieldValue::Text(s), _) => Some(s),
                (FieldValue::U64(n), _) => Some(n),
                (FieldValue::I64(n), _) => Some(n),
                (FieldValue::F64(n), _) => Some(n),
                (FieldValue::Bool(b), _) => Some(b),
                (FieldValue::Shown(_), None) => None,
            }
        })
        .collect();
    values.push(Some(&pid));
    cs.event(None, &cs.fields().value_set_all(&values));
}

/// The worker's subscriber: sends every event of a chunk body to the parent, which re-emits it
/// inside the chunk's span with the worker's pid.
pub(crate) struct Forwarder {
    out: Box<dyn Fn(&Message) + Send + Sync>,
    /// Follows the parent's level, sent with every chunk; so no interest is cached.
    max_level: Arc<AtomicU8>,
}

impl Forwarder {
    /// Sends with `out`, whatever the transport.
    pub(crate) fn sending(
        out: Box<dyn Fn(&Message) + Send + Sync>,
        max_level: Arc<AtomicU8>,
    ) -> Self {
        Forwarder { out, max_level }
    }
}

#[derive(Default)]
struct Fields(Vec<(String, FieldValue)>);

impl Fields {
    fn push(&mut self, field: &Field, value: FieldValue) {
        self.0.push((field.name().to_owned(), value));
    }
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, FieldValue::Text(value.to_owned()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.push(field, FieldValue::Shown(format!("{value:?}")));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, FieldValue::U64(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, FieldValue::I64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, FieldValue::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, FieldValue::Bool(value));
    }
}

impl Subscriber for Forwarder {
    fn register_callsite(
        &self,
        _meta: &'static Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }
    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        level_to_wire(meta.level()) <= self.max_level.load(Ordering::Relaxed)
    }
    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _span: &Id, _values: &Record<'_>) {}
    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let meta = event.metadata();
        (self.out)(&Message::Event {
            level: level_to_wire(meta.level()),
            target: meta.target().to_owned(),
            fields: fields.0,
        });
    }
    fn enter(&self, _span: &Id) {}
    fn exit(&self, _span: &Id) {}
}
