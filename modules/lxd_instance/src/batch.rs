//! `instances`: several instances in one task, converged side by side. Each
//! entry names an instance and what differs for it (profiles, config,
//! groups, its LXD host); every other option is the task's. One module run
//! instead of one per instance: a topology of 33 is launched, or found as it
//! should be, in the time of the slowest one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ansible_module::{Fail, Module};
use anyhow::Result;
use serde_json::{json, Map, Value};

use crate::engine::{converge_one, One};
use crate::params::{InstanceItem, Params};
use crate::plan;

/// How many instances are worked on at once (Ansible's own default is 5
/// forks; LXD queues the rest of its work anyway).
const AT_ONCE: usize = 16;

/// The task's options with one entry's on top.
fn params_for(p: &Params, item: &InstanceItem) -> Params {
    let mut one = p.clone();
    one.instances = None;
    one.name = item.name.clone();
    macro_rules! over {
        ($($field:ident),*) => {
            $(if item.$field.is_some() { one.$field = item.$field.clone(); })*
        };
    }
    over!(
        description,
        config,
        devices,
        profiles,
        groups,
        target,
        project,
        url,
        client_cert,
        client_key,
        server_cert,
        server_cert_fingerprint
    );
    one
}

/// An instance's entry in the result's `instances`.
fn entry(name: &str, one: &One) -> Value {
    let mut e = Map::new();
    e.insert("name".into(), name.into());
    e.insert("changed".into(), one.changed().into());
    e.insert("actions".into(), json!(one.actions));
    if let Some(s) = &one.old_state {
        e.insert("old_state".into(), json!(s));
    }
    if let Ok(out) = &one.outcome {
        for (key, value) in out.results() {
            e.insert(key.into(), value);
        }
    }
    if let Some(msg) = one.failure() {
        e.insert("failed".into(), true.into());
        e.insert("msg".into(), msg.into());
    }
    Value::Object(e)
}

pub fn run(m: &mut Module, p: &Params) -> Result<()> {
    let items = p.instances.as_deref().unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = items.iter().find(|i| !seen.insert(i.name.as_str())) {
        return Err(Fail::new(format!("instances lists {} twice", dup.name)).into());
    }
    if !p.show_secrets {
        // A secret config value of an entry is masked wherever it would show.
        for item in items {
            for (key, value) in item.config.iter().flatten() {
                if plan::secret_key(key) {
                    if let Some(v) = value.as_str() {
                        m.hide(v);
                    }
                }
            }
        }
    }
    let check = m.check_mode();
    let next = AtomicUsize::new(0);
    let done: Mutex<Vec<Option<One>>> = Mutex::new(items.iter().map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..AT_ONCE.min(items.len()) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { break };
                let one = converge_one(&params_for(p, item), check);
                if let Ok(mut d) = done.lock() {
                    d[i] = Some(one);
                }
            });
        }
    });
    let done = done
        .into_inner()
        .map_err(|_| anyhow::anyhow!("internal error: a worker panicked"))?;
    let mut results = vec![];
    let mut failures = vec![];
    let mut log = vec![];
    for (item, one) in items.iter().zip(done) {
        let one = one.ok_or_else(|| anyhow::anyhow!("internal error: {} not run", item.name))?;
        m.set_changed(one.changed());
        for w in &one.warnings {
            m.warn(w.clone());
        }
        log.extend(one.log.iter().cloned());
        if let Some(msg) = one.failure() {
            failures.push(format!("{}: {msg}", item.name));
        }
        results.push(entry(&item.name, &one));
        if let Ok(out) = one.outcome {
            m.add_diff(out.diff);
        }
    }
    m.set("log_verbose", &log);
    m.set("log_verbosity", m.internal.verbosity);
    if !failures.is_empty() {
        return Err(Fail::new(format!(
            "{} of {} instances failed: {}",
            failures.len(),
            results.len(),
            failures.join("; ")
        ))
        .with("instances", &results)
        .into());
    }
    m.set("instances", &results);
    Ok(())
}
