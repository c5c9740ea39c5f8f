//! Compiling upstreams.yaml (+ conf.d) into a [`Plan`].

pub(crate) mod auth;
mod build;
mod forward_auth;
pub(crate) mod policy;
pub(crate) mod providers;
mod schema;

use std::collections::BTreeMap;

use crate::codes;
use crate::diag::{self, Diagnostic, Sink};
use crate::document;
use crate::input::{conclude, Compiled, Context, Source};
use crate::plan::Plan;
use crate::yaml;

/// Compiles `sources[0]` (upstreams.yaml) and `sources[1..]` (conf.d files, already sorted by the
/// caller) into a [`Plan`]. A host defined in a later source replaces the whole host. All
/// diagnostics are collected, sorted (file, line, column, code) and deduplicated; any error fails.
pub fn compile_upstreams(
    sources: &[Source<'_>],
    ctx: &Context<'_>,
) -> Result<Compiled<Plan>, Vec<Diagnostic>> {
    let Some(first) = sources.first() else {
        return Err(vec![Diagnostic::new(
            codes::EMPTY,
            "upstreams.yaml",
            (0, 0),
            "",
            "no upstreams source was given",
        )]);
    };
    let mut all = Vec::new();
    let mut globals = None;
    let mut hosts = BTreeMap::new();
    for (i, src) in sources.iter().enumerate() {
        let mut sink = Sink::new(src.name);
        if i > 0 && yaml::is_blank(src.text) {
            // an empty conf.d file contributes nothing (placeholders are common)
            continue;
        }
        if let Some(root) = document::load_root(&mut sink, src.text) {
            let doc = schema::file(&mut sink, ctx, &root, i == 0);
            if i == 0 {
                globals = Some(doc.globals);
            }
            for h in doc.hosts {
                hosts.insert(h.key.display(), h);
            }
        }
        all.append(&mut sink.diags);
    }
    let mut plan = None;
    if let Some(globals) = &globals {
        let mut sink = Sink::new(first.name);
        plan = build::plan(&mut sink, ctx, globals, &hosts);
        all.append(&mut sink.diags);
    }
    let names: Vec<&str> = sources.iter().map(|s| s.name).collect();
    conclude(plan, diag::finish(all, &names))
}

#[cfg(test)]
pub(crate) fn host_table_for_test(routes: &[crate::plan::Route]) -> crate::plan::HostTable {
    build::host_table(routes)
}
