//! Re-emitting, in the parent, the events of chunk bodies that ran in workers.
//!
//! Each distinct (level, target, field names) gets one callsite, made and registered once, with a
//! `worker_pid` field added, so filters and subscribers treat a worker's events like the parent's
//! own. They are emitted on the slot's thread inside the chunk's span.

use std::collections::HashMap;
use std::sync::Mutex;

use tracing_core::Level;
use tracing_core::field::{Value, display};
use tracing_core::metadata::Kind;

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
    let level = match level {
        1 => Level::ERROR,
        2 => Level::WARN,
        3 => Level::INFO,
        4 => Level::DEBUG,
        _ => Level::TRACE,
    };
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
pub(crate) fn event(level: u8, target: &str, fields: &[(String, String)], pid: u32) {
    let names: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    let cs = callsite(level, target, &names);
    if !cs.is_enabled() {
        return;
    }
    let shown: Vec<_> = fields.iter().map(|(_, v)| display(v.as_str())).collect();
    let mut values: Vec<Option<&dyn Value>> = shown.iter().map(|v| Some(v as &dyn Value)).collect();
    values.push(Some(&pid));
    cs.event(None, &cs.fields().value_set_all(&values));
}
