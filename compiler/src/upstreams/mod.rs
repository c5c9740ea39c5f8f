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
    compile_upstreams_with(sources, &[], ctx)
}

/// [`compile_upstreams`] plus service lists a provider generated (`generated`: each source a
/// YAML/JSON sequence of service entries, as in the provider section's `services`, e.g. from
/// Consul's `aralez.*` tags). They join the plan when the selected provider discovers services.
/// A generated entry never fails the plan: one that does not compile, or whose route exists
/// already, is left out with a W0014 warning naming the problem, and the others serve.
pub fn compile_upstreams_with(
    sources: &[Source<'_>],
    generated: &[Source<'_>],
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
        let mut extra: Vec<(Sink<'_>, Vec<providers::Service>)> = generated
            .iter()
            .map(|src| {
                let mut gen_sink = Sink::new(src.name);
                let kind = globals
                    .provider
                    .map_or(crate::plan::Provider::Consul, |(p, _)| p);
                let services = providers::generated(&mut gen_sink, ctx, kind, src.text);
                (gen_sink, services)
            })
            .collect();
        plan = build::plan(&mut sink, ctx, globals, &hosts, &mut extra);
        all.append(&mut sink.diags);
        for (mut gen_sink, _) in extra {
            all.append(&mut gen_sink.diags);
        }
    }
    let names: Vec<&str> = sources.iter().chain(generated).map(|s| s.name).collect();
    conclude(plan, diag::finish(all, &names))
}

#[cfg(test)]
pub(crate) fn host_table_for_test(routes: &[crate::plan::Route]) -> crate::plan::HostTable {
    build::host_table(routes)
}
