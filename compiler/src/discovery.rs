//! Filling the backends of provider-discovered routes (Consul, Kubernetes) into a new plan.

use crate::plan::{Backend, Discovery, Plan};

impl Plan {
    /// A copy of this plan in which every route with a [`Discovery`] gets the backends that
    /// `lookup` returns for it (`None` leaves the route's current backends). The hash is
    /// recomputed, so a changed upstream set is a new plan; route ids and order are unchanged.
    pub fn with_discovered(&self, lookup: impl Fn(&Discovery) -> Option<Vec<Backend>>) -> Plan {
        let mut plan = self.clone();
        for route in &mut plan.routes {
            if let Some(found) = route.discovery.as_ref().and_then(&lookup) {
                route.backends = found;
            }
        }
        plan.hash = crate::canon::hash(&plan);
        plan
    }
}

#[cfg(test)]
mod tests {
    use crate::{compile_upstreams, Backend, Context, Source};

    #[test]
    fn fills_discovered_backends() {
        let text = "provider: consul\nconsul:\n  servers: [\"http://127.0.0.1:8500\"]\n  services:\n    - {hostname: a.example.com, upstream: svc}\n";
        let plan = compile_upstreams(&[Source { name: "u", text }], &Context::default())
            .map(|c| c.value)
            .ok();
        let Some(plan) = plan else { unreachable!() };
        assert!(plan.routes.iter().all(|r| r.backends.is_empty()));
        let filled = plan.with_discovered(|d| {
            (d.service == "svc").then(|| {
                vec![Backend {
                    host: "10.0.0.9".into(),
                    port: 80,
                }]
            })
        });
        assert_eq!(filled.routes.first().map(|r| r.backends.len()), Some(1));
        assert_ne!(filled.hash, plan.hash);
        assert_eq!(filled.route("a.example.com", "/x"), Ok(0));
    }
}
